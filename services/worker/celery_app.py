"""The worker's Celery app: the shared configuration, the pipeline task, and the main-process hooks.

``celery -A services.worker.celery_app worker -Q pipelines.cpu --pool prefork --concurrency N``
finds ``app`` here (built on first access from ``WorkerSettings``); ``python -m services.worker``
builds its own with ``create_app``. Importing this module connects to nothing and loads neither
OpenCV nor onnxruntime. Hooks, all in the worker's main process: ``worker_init`` imports the
engine (``preload_engine``) and starts the inference service process, both before the pool forks
(the pipeline processes share the modules' pages and inherit the service's socket path),
``worker_ready`` starts the registration thread (which also stops and resumes the consumption of
the worker's queues while it is drained: ``services.worker.drain``), ``worker_shutting_down`` stops the running
pipelines (``shutdown``), ``worker_shutdown`` deletes the registration and stops the service.
"""

import logging
from typing import Any

from celery import Celery, signals

from services.core import logs
from services.core.logs import LogFormat
from services.core.tasks import RUN_PIPELINE, celery_config, queue_for
from services.infra.redis_connect import with_celery_connection
from services.worker import shutdown
from services.worker.drain import ConsumerSwitch
from services.worker.inference.process import InferenceServiceProcess
from services.worker.registration import Registration, WorkerIdentity
from services.worker.settings import WorkerSettings
from services.worker.tasks import redis_client, register_tasks

log = logging.getLogger(__name__)

# The text format; a pipeline's process tags its lines with "[<pipeline_id>] " (services.core.logs).
LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(pipeline_tag)s%(name)s: %(message)s"


def create_app(settings: WorkerSettings) -> Celery:
    app = Celery("vsim-worker", set_as_current=False)
    app.conf.update(with_celery_connection(celery_config("", settings.visibility_timeout), settings.redis_target()))
    register_tasks(app, settings)
    _connect_hooks(app, settings)
    return app


def configure_logging(level: str | int = logging.INFO, log_format: LogFormat = "text") -> None:
    """The worker's one logging configuration (Celery is told not to touch the root logger)."""
    logs.configure_logging(level, log_format, LOG_FORMAT)


def _connect_hooks(app: Celery, settings: WorkerSettings) -> None:
    registrations: dict[str, Registration] = {}
    services: list[InferenceServiceProcess] = []

    def on_init(sender: Any, **kwargs: Any) -> None:
        if sender.app is not app:
            return
        preload_engine()
        if not settings.inference_service:
            return
        service = InferenceServiceProcess()
        service.start()
        services.append(service)
        log.info("inference service for %s on %s", settings.device, service.socket_path)

    def on_ready(sender: Any, **kwargs: Any) -> None:
        if sender.app is not app:
            return
        identity = _identity(sender, settings)
        registration = Registration(redis_client(settings), identity, _pipeline_pids,
                                    lambda: {pid for service in services if (pid := service.pid) is not None},
                                    ConsumerSwitch(sender, identity.queues))
        registrations[sender.hostname] = registration
        registration.start()
        log.info("worker %s registered for %s", sender.hostname, ", ".join(_queues(sender)))

    def on_shutdown(sender: Any, **kwargs: Any) -> None:
        registration = registrations.pop(getattr(sender, "hostname", ""), None)
        if registration is not None:
            registration.stop()
        while services:
            services.pop().stop()
        from services.worker.inference.client import close_shared  # here: importing it loads OpenCV

        close_shared()  # clients of the service a solo pool's pipelines used in this process

    uid = f"vsim-worker-{id(app)}"
    signals.worker_init.connect(on_init, weak=False, dispatch_uid=f"{uid}-init")
    signals.worker_ready.connect(on_ready, weak=False, dispatch_uid=f"{uid}-ready")
    signals.worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid=f"{uid}-shutdown")
    signals.worker_shutting_down.connect(
        shutdown.on_worker_shutting_down, weak=False, dispatch_uid="vsim-worker-shutting-down"
    )

    def setup_logging(loglevel: Any = None, **kwargs: Any) -> None:
        """Celery's ``setup_logging``: connecting it stops Celery from configuring logging its own way."""
        configure_logging(loglevel or logging.INFO, settings.log_format)

    signals.setup_logging.connect(setup_logging, weak=False, dispatch_uid="vsim-worker-logging")
    signals.worker_process_init.connect(warm_up, weak=False, dispatch_uid="vsim-worker-warm-up")
    signals.task_prerun.connect(_bind_pipeline_logs, weak=False, dispatch_uid="vsim-worker-bind-logs")
    signals.task_postrun.connect(_unbind_pipeline_logs, weak=False, dispatch_uid="vsim-worker-unbind-logs")


def preload_engine() -> None:
    """Import the engine and every workflow block in the worker's main process, before the pool forks.

    Every pipeline process is forked from here, so they share these modules' pages instead of each
    importing its own copy: measured, an idle pipeline process's private memory (USS) drops from
    86 MiB to 1 MiB (docs/benchmarks.md, "Many streams"). ``gc.freeze`` keeps the collector of a
    child from writing to these objects, which would copy their pages. Safe to fork after: no
    CUDA (onnxruntime is not imported here; the inference service holds the device) and no thread
    of ours; the BLAS thread pools numpy and OpenCV start re-create themselves in a child.
    """
    import gc

    from services.worker import assembly, runner  # noqa: F401  (imported for their side effect: loaded modules)
    from services.worker.engine import pyav_capture  # noqa: F401  (PyAV: imported on a live stream's first open)

    gc.freeze()


def warm_up(**kwargs: Any) -> None:
    """In each new pipeline process, right after the fork and before a task reaches it: import the
    engine and every workflow block (already there when ``preload_engine`` ran in the main process;
    kept for a pool started without it). An INIT never waits for these imports."""
    from services.worker import assembly, runner  # noqa: F401  (imported for their side effect: loaded modules)


def _identity(consumer: Any, settings: WorkerSettings) -> WorkerIdentity:
    return WorkerIdentity(
        hostname=consumer.hostname,
        queues=tuple(_queues(consumer)),
        concurrency=int(consumer.controller.concurrency or 1),
        device=settings.device,
        max_ram_mb=settings.max_ram_mb,
    )


def _queues(consumer: Any) -> list[str]:
    return sorted(consumer.app.amqp.queues.consume_from or [queue_for("cpu")])


def _pipeline_pids() -> set[int]:
    """Pids of the pool processes running a pipeline task: Celery's accepted requests, by the pid that took them.

    Called from the registration thread while the main thread may change Celery's ``WeakSet`` of
    active requests, which makes copying it raise ``RuntimeError``; a retry sees it settled.
    """
    from celery.worker import state

    for _ in range(10):
        try:
            requests = list(state.active_requests)
        except RuntimeError:  # "set changed size during iteration"
            continue
        return {request.worker_pid for request in requests
                if request.type == RUN_PIPELINE and isinstance(request.worker_pid, int)}
    raise RuntimeError("Celery's active requests kept changing while read")


def _bind_pipeline_logs(task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    """Tags every log line of the pool process with the pipeline it runs, from before the task's
    first line to after Celery's "succeeded" line (``task_postrun`` comes after it); the process
    runs this one task (``worker_max_tasks_per_child=1``), on many threads."""
    if getattr(task, "name", None) != RUN_PIPELINE:
        return
    pipeline_id = (kwargs or {}).get("pipeline_id") or (args[0] if args else None)
    if isinstance(pipeline_id, str):
        logs.bind_pipeline(pipeline_id)


def _unbind_pipeline_logs(task: Any = None, **_: Any) -> None:
    if getattr(task, "name", None) == RUN_PIPELINE:
        logs.unbind_pipeline()


def __getattr__(name: str) -> Celery:
    """``app``, built once on first access, for ``celery -A services.worker.celery_app``."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global _app
    if _app is None:
        _app = create_app(WorkerSettings())
    return _app


_app: Celery | None = None
