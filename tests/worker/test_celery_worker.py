"""The pipeline task behind real Celery workers, dispatched the way the manager does it.

The manager's side is a Celery app configured from ``services.core.tasks`` only (no worker import):
it sends ``RUN_PIPELINE`` by name onto the device queue. One test runs an in-process worker; one
starts ``python -m services.worker`` (prefork) to check its registration and its SIGTERM handling.
"""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery, signals
from celery.contrib.testing.worker import start_worker

from services.core import keys
from services.core.control import Command
from services.core.plan import PipelineSpec
from services.core.records import DesiredState, PipelineState
from services.core.tasks import RUN_PIPELINE, celery_config, queue_for
from services.worker.celery_app import create_app
from services.worker.inference import client as inference_client
from services.worker.models.repository import ModelSpec
from services.worker.settings import WorkerSettings
from tests.support.pipelines import (
    create_record,
    last_result_id,
    new_reply_list,
    pop_reply,
    read_record,
    send_command,
    wait_for,
)
from tests.support.redis_server import RedisServer
from tests.worker.conftest import MEDIA, MODELS, ROOT

QUEUE = queue_for("cpu")


@pytest.fixture
def manager_app(redis_server: RedisServer) -> Iterator[Celery]:
    app = Celery("test-manager", set_as_current=False)
    app.conf.update(celery_config(redis_server.url))
    yield app
    app.close()


def dispatch(app: Celery, pipeline_id: str, epoch: int, spec: PipelineSpec, reply_to: str) -> None:
    kwargs = {"pipeline_id": pipeline_id, "epoch": epoch, "spec": spec.task_payload(), "reply_to": reply_to}
    app.send_task(RUN_PIPELINE, kwargs=kwargs, queue=QUEUE)


def paced_spec() -> PipelineSpec:
    return PipelineSpec(video_references=[str(MEDIA / "vtest.avi")], model_id="yolov3-tiny/coco-416", max_fps=5)


def test_in_process_worker_runs_a_dispatched_pipeline(
    redis_server: RedisServer, redis_client: redis.Redis, manager_app: Celery, default_model: ModelSpec
) -> None:
    worker_app = create_app(WorkerSettings(redis_url=redis_server.url, model_repository=MODELS))
    record, reply_to = create_record(redis_client), new_reply_list()

    with start_worker(worker_app, pool="solo", perform_ping_check=False, queues=[QUEUE], shutdown_timeout=20) as worker:
        dispatch(manager_app, record.pipeline_id, record.epoch, paced_spec(), reply_to)

        assert pop_reply(redis_client, reply_to, timeout=30) == {"status": "success"}
        wait_for(lambda: last_result_id(redis_client, record.pipeline_id), timeout=10)
        assert send_command(redis_client, record.pipeline_id, record.epoch, Command.TERMINATE,
                            desired=DesiredState.TERMINATED) == {"status": "success"}

    final = read_record(redis_client, record.pipeline_id)
    assert final.state is PipelineState.TERMINATED
    assert final.owner.endswith(f":{os.getpid()}")  # the solo pool runs the task in this process
    assert inference_client._SHARED  # the pipeline ran its model at the worker's inference service
    signals.worker_shutdown.send(sender=worker)  # as a real worker does at its exit (this harness does not)
    assert not inference_client._SHARED  # the shutdown closed the clients the pipeline used in this process


@pytest.fixture
def worker_process(redis_server: RedisServer, default_model: ModelSpec, tmp_path: Path) -> Iterator[
        subprocess.Popen[bytes]]:
    """``python -m services.worker`` with one prefork child, its log in tmp_path (shown on failure)."""
    env = {**os.environ, "WORKER_REDIS_URL": redis_server.url, "WORKER_MODEL_REPOSITORY": str(MODELS)}
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.worker", "--queues", QUEUE, "--concurrency", "1",
             "--hostname", "vsim-test@localhost"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        sys.stderr.write(log_path.read_text(errors="replace")[-4000:])


def test_worker_registers_and_sigterm_stops_its_pipelines(
    worker_process: subprocess.Popen[bytes], redis_client: redis.Redis, manager_app: Celery
) -> None:
    registration_key = keys.worker_registration("vsim-test@localhost")
    raw = wait_for(lambda: redis_client.get(registration_key), timeout=20)
    registration: dict[str, Any] = json.loads(raw)
    assert registration["queues"] == [QUEUE]
    assert (registration["concurrency"], registration["device"]) == (1, "cpu")
    assert registration["pid"] == worker_process.pid
    assert registration["ram_total_mb"] >= registration["ram_available_mb"] > 0
    assert 0 < redis_client.ttl(registration_key) <= 5

    record, reply_to = create_record(redis_client), new_reply_list()
    dispatch(manager_app, record.pipeline_id, record.epoch, paced_spec(), reply_to)
    assert pop_reply(redis_client, reply_to, timeout=30) == {"status": "success"}
    wait_for(lambda: read_record(redis_client, record.pipeline_id).state is PipelineState.RUNNING, timeout=5)

    worker_process.send_signal(signal.SIGTERM)
    assert worker_process.wait(timeout=15) == 0

    final = read_record(redis_client, record.pipeline_id)
    assert (final.state, final.last_error) == (PipelineState.RUNNING, "worker shutting down")
    assert final.owner.startswith("vsim-test@localhost:") and final.owner != f"vsim-test@localhost:{worker_process.pid}"
    assert redis_client.exists(keys.pipeline_heartbeat(record.pipeline_id)) == 0
    assert redis_client.exists(registration_key) == 0
