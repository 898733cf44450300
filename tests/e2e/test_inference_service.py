"""The per-device inference service under real pipelines: the manager, a Celery worker with three
pipeline slots and its service process, real Redis, the real model on a live RTSP camera and a file.

Shown here: the worker's pipelines share one model load and their frames are batched together; a
pipeline process that crashes touches neither the service nor the other pipelines; the pipelines
ride out a crash of the service itself (the worker starts it again, their rounds resume).
"""

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from services.client import ManagerClient
from services.worker.inference.client import InferenceClient
from tests.support import faults
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.streams import rtsp_live_stream
from tests.support.waiting import wait_until
from tools.payloads import MODEL_ID, newer_init

VTEST = "data/media/vtest.avi"


@pytest.fixture(scope="module")
def camera() -> Iterator[str]:
    with rtsp_live_stream() as url:
        yield url


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        running.start_manager()
        # the automatic sizing, as shipped (the tests' stack otherwise pins 1 thread): live-only load switches
        running.start_worker_with_env("shared", "pipelines.cpu", {"WORKER_INTRA_OP_THREADS": "0"}, concurrency=3)
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[ManagerClient]:
    manager = ManagerClient(port=stack.port, timeout=15)
    yield manager
    for pipeline_id in manager.list_pipelines().pipelines:
        manager.terminate(pipeline_id)
    # every slot free again (each pipeline's process is replaced by a fresh one) before the next test's INITs
    wait_until(lambda: (stack.registration("shared@test") or {}).get("free_slots") == 3, timeout=30)


def _service(stack: Stack) -> psutil.Process:
    """The worker's inference service process (the one child that is not a pool process)."""
    def find() -> psutil.Process | None:
        for child in psutil.Process(stack.workers["shared"].pid).children():
            try:
                if "services.worker.inference" in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    wait_until(lambda: find() is not None, timeout=30)
    found = find()
    assert found is not None
    return found


def _stats(service: psutil.Process) -> dict[str, object]:
    command = service.cmdline()
    client = InferenceClient(Path(command[command.index("--socket") + 1]))
    try:
        return client.stats()
    finally:
        client.close()


def _start(client: ManagerClient, stack: Stack, video: str, **extra: object) -> str:
    pipeline_id = client.initialise(newer_init(video, **extra)).context.pipeline_id  # type: ignore[arg-type]
    assert pipeline_id is not None
    wait_until(lambda: faults.audit(stack.client, pipeline_id).count(1) >= 3, timeout=60)
    return pipeline_id


def test_pipelines_of_a_worker_share_one_model_load_and_their_frames_are_batched(
        client: ManagerClient, stack: Stack) -> None:
    service = _service(stack)
    before = _stats(service)
    pipelines = [_start(client, stack, VTEST, results_buffer_size=1000) for _ in range(3)]
    wait_until(lambda: all(faults.audit(stack.client, p).count(1) >= 100 for p in pipelines), timeout=120)
    stats = _stats(service)
    assert stats["models"] == [MODEL_ID], "one load of the model for all three pipelines"
    assert int(stats["frames"]) - int(before["frames"]) >= 300  # type: ignore[call-overload]
    sizes = {int(size) for size in stats["batch_sizes"]}  # type: ignore[attr-defined]
    assert max(sizes) > 1, f"frames of several pipelines were batched together: {stats['batch_sizes']}"
    assert stats["failed_requests"] == 0
    for pipeline_id in pipelines:
        report = client.status(pipeline_id).report
        assert report.inference_errors == 0  # type: ignore[attr-defined]
    # Each thread carries its stage's name at the OS level (top -H, /proc), where make bench reads it.
    assert {"runner-0", "runner-1", "connection"} <= _thread_names(service)
    pool = [child for child in psutil.Process(stack.workers["shared"].pid).children() if child.pid != service.pid]
    busy = [names for names in map(_thread_names, pool) if "post" in names]
    assert len(busy) == 3, f"three pipeline processes with named stages: {[sorted(n) for n in busy]}"
    assert all({"source-0", "collector", "inference-0", "post", "sink-redis_stre"} <= names for names in busy)
    # The control listener and the worker's own threads too (make bench counts a pipeline process's unnamed
    # threads as FFmpeg's, so as decode).
    assert all(any(name.startswith("control-") for name in names) for names in busy)
    worker = _thread_names(psutil.Process(stack.workers["shared"].pid))
    assert {"registration", "service-watch"} <= worker, sorted(worker)


def _thread_names(process: psutil.Process) -> set[str]:
    names = set()
    for thread in process.threads():
        try:
            names.add(Path(f"/proc/{process.pid}/task/{thread.id}/comm").read_text().strip())
        except OSError:
            continue  # ended meanwhile
    return names


def test_a_live_pipeline_with_max_staleness_takes_turns_at_the_service(client: ManagerClient, stack: Stack,
                                                                       camera: str) -> None:
    service = _service(stack)
    before = int(_stats(service)["turns"])  # type: ignore[call-overload]
    payload = newer_init(camera)
    payload["video_configuration"].update(processing_mode="freshest", max_staleness=0.5)
    pipeline_id = client.initialise(payload).context.pipeline_id
    assert pipeline_id is not None
    wait_until(lambda: faults.audit(stack.client, pipeline_id).count(1) >= 20, timeout=60)
    stats = _stats(service)
    assert int(stats["turns"]) - before >= 20  # type: ignore[call-overload]
    assert client.status(pipeline_id).report.inference_errors == 0  # type: ignore[attr-defined]


def test_live_only_load_runs_one_batch_at_a_time_and_a_file_pipeline_brings_back_runs_side_by_side(
        client: ManagerClient, stack: Stack, camera: str) -> None:
    service = _service(stack)
    if int(_stats(service)["runners"]) < 2:  # type: ignore[call-overload]
        pytest.fail("this test needs a host with at least 2 usable cores (CI has 2)")
    payload = newer_init(camera)
    payload["video_configuration"].update(processing_mode="freshest", max_staleness=0.5)
    live = client.initialise(payload).context.pipeline_id
    assert live is not None
    wait_until(lambda: faults.audit(stack.client, live).count(1) >= 5, timeout=60)
    before = int(_stats(service)["live_only_batches"])  # type: ignore[call-overload]
    wait_until(lambda: int(_stats(service)["live_only_batches"]) >= before + 10, timeout=30)  # type: ignore[call-overload]
    assert _stats(service)["live_only"] is True
    assert _stats(service)["live_sessions"] == [MODEL_ID]  # loaded when the live pipeline first asked
    _start(client, stack, VTEST, results_buffer_size=1000)  # a file: requests without a deadline
    during = _stats(service)
    assert during["live_only"] is False
    wait_until(lambda: int(_stats(service)["batches"]) >= int(during["batches"]) + 30,  # type: ignore[call-overload]
               timeout=30)
    after = _stats(service)
    assert after["live_only_batches"] == during["live_only_batches"], "both pipelines' batches ran side by side"
    assert after["live_only"] is False
    assert client.status(live).report.inference_errors == 0  # type: ignore[attr-defined]


def test_a_crashed_pipeline_process_touches_neither_the_service_nor_the_other_pipelines(
        client: ManagerClient, stack: Stack, camera: str) -> None:
    service = _service(stack)
    victim = _start(client, stack, camera, max_fps=10)
    survivor = _start(client, stack, camera, max_fps=10)
    faults.kill_tree(faults.task_pid(stack.client, victim))
    counted = faults.audit(stack.client, survivor).count(1)
    wait_until(lambda: faults.audit(stack.client, survivor).count(1) >= counted + 30, timeout=30)
    assert _service(stack).pid == service.pid and service.is_running()
    assert client.status(survivor).report.inference_errors == 0  # type: ignore[attr-defined]
    # the manager restarts the victim (epoch 2), on the same service
    wait_until(lambda: faults.audit(stack.client, victim).count(2) >= 3, timeout=60)
    assert _stats(service)["models"] == [MODEL_ID]


def test_pipelines_ride_out_a_crash_of_the_inference_service(client: ManagerClient, stack: Stack,
                                                            camera: str) -> None:
    pipeline_id = _start(client, stack, camera, max_fps=10)
    old = _service(stack)
    old.kill()
    old.wait(10)
    killed_at = faults.audit(stack.client, pipeline_id).count(1)
    wait_until(lambda: _service(stack).pid != old.pid, timeout=30)  # the worker started a new one
    wait_until(lambda: faults.audit(stack.client, pipeline_id).count(1) >= killed_at + 20, timeout=60)
    time.sleep(1.5)  # the next stored status report
    report = client.status(pipeline_id).report
    assert report.pipeline_state == "RUNNING"
    assert faults.record(stack.client, pipeline_id).epoch == 1, "the pipeline itself was not restarted"
    stats = _stats(_service(stack))
    assert stats["models"] == [MODEL_ID], "the new service loaded the model again"
    assert stats["live_sessions"] == [], "no live pipeline asked the new service: no second session"
