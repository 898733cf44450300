"""The Celery task ``RUN_PIPELINE``: a thin adapter from a Celery message to ``runner.run``.

It validates the payload (``plan.load_task_spec``: any spec format this release reads; a newer major
is rejected with the reason, like an invalid spec), builds the task's Redis client, installs the SIGTERM handler of
``shutdown`` and calls the runner. The runner (and with it OpenCV and onnxruntime) is imported
inside the task, so the worker's main process never loads them.
"""

from typing import Any

import redis
from celery import Celery, Task
from pydantic import ValidationError

from services.core.errors import InvalidPayloadError, invalid_payload_from
from services.core.formats import FormatError
from services.core.plan import load_task_spec
from services.core.tasks import RUN_PIPELINE
from services.infra.redis_connect import sync_client
from services.worker import shutdown
from services.worker.settings import WorkerSettings


def register_tasks(app: Celery, settings: WorkerSettings) -> None:
    @app.task(name=RUN_PIPELINE, bind=True, shared=False)  # type: ignore[untyped-decorator]
    def run_pipeline(task: Task, pipeline_id: str, epoch: int, spec: dict[str, Any], reply_to: str) -> str | None:
        return run_pipeline_task(settings, str(task.request.hostname), pipeline_id, epoch, spec, reply_to)


def run_pipeline_task(
    settings: WorkerSettings,
    hostname: str,
    pipeline_id: str,
    epoch: int,
    spec: dict[str, Any],
    reply_to: str,
) -> str | None:
    """Runs the pipeline; the name of its last state (None when this dispatch was stale)."""
    from services.worker import runner

    client = redis_client(settings)
    restore_sigterm = shutdown.install_task_handler()
    try:
        try:
            parsed = load_task_spec(spec)
        except (ValidationError, FormatError) as exc:
            error = (invalid_payload_from(exc, "pipeline spec") if isinstance(exc, ValidationError)
                     else InvalidPayloadError(f"{exc}: upgrade this worker"))
            state = runner.reject(pipeline_id, epoch, error, reply_to, client, hostname)
        else:
            state = runner.run(
                pipeline_id, epoch, parsed, reply_to, client, settings, hostname, shutdown.SHUTDOWN
            )
    finally:
        restore_sigterm()
        client.close()
    return state.value if state is not None else None


def redis_client(settings: WorkerSettings) -> redis.Redis:
    """The worker's Redis client: ``WORKER_REDIS_URL``, a plain server or a Sentinel-managed master
    (``services.infra.redis_connect``; after a failover it reconnects to the promoted master)."""
    return sync_client(
        settings.redis_target(),
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        health_check_interval=30,
    )
