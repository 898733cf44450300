"""Fault injection on real processes: a task or a whole worker killed, a task frozen and woken, a
worker shut down, the manager killed, a pipeline outliving the broker's visibility timeout.

Two Celery workers serve ``pipelines.cpu`` (one slot each) with a 3 s visibility timeout; the
pipelines read a live RTSP camera (GStreamer, several clients allowed). Every assertion about
duplicates is made on the results stream itself: each entry carries its producer's epoch.
"""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from services.client import ManagerClient
from services.core.records import WORKER_SHUTDOWN
from tests.support import faults
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.streams import rtsp_live_stream
from tests.support.waiting import wait_until
from tools.payloads import newer_init

VTEST = "data/media/vtest.avi"
WORKERS = ("a", "b")
WORKER_ENV = {"WORKER_VISIBILITY_TIMEOUT": "3"}


@pytest.fixture(scope="module")
def camera() -> Iterator[str]:
    with rtsp_live_stream() as url:  # an endless test pattern; several clients share it
        yield url


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        running.start_manager()
        for name in WORKERS:
            running.start_worker_with_env(name, "pipelines.cpu", WORKER_ENV, concurrency=1)
        yield running


@pytest.fixture
def client(stack: Stack) -> ManagerClient:
    """Both workers alive before each test (a test may have killed one)."""
    for name in WORKERS:
        if stack.workers[name].poll() is not None:
            stack.start_worker_with_env(name, "pipelines.cpu", WORKER_ENV, concurrency=1)
    return ManagerClient(port=stack.port, timeout=15)


def start(client: ManagerClient, stack: Stack, camera: str) -> str:
    pipeline_id = client.initialise(newer_init(camera, max_fps=5)).context.pipeline_id
    assert pipeline_id is not None
    wait_until(lambda: faults.audit(stack.client, pipeline_id).count(1) >= 5, timeout=30)
    return pipeline_id


def worker_of(stack: Stack, pipeline_id: str) -> str:
    owner = faults.record(stack.client, pipeline_id).owner
    return owner.split("@", 1)[0]


def check_recovered(client: ManagerClient, stack: Stack, pipeline_id: str, outcome: faults.Recovery) -> None:
    print(outcome)  # the numbers, for the record (docs/benchmarks.md has the repeated runs)
    assert outcome.epochs == [1, 2], outcome
    assert outcome.interleaved == 0 and outcome.duplicated == 0, outcome
    assert outcome.new_epoch_results > 0
    status = client.status(pipeline_id).report
    assert status.pipeline_state == "RUNNING" and status.restarts == 1
    assert pipeline_id in client.list_pipelines().pipelines
    client.terminate(pipeline_id)


def test_a_killed_task_process_is_restarted_on_a_live_worker(client: ManagerClient, stack: Stack,
                                                              camera: str) -> None:
    pipeline_id = start(client, stack, camera)
    pid = faults.task_pid(stack.client, pipeline_id)

    outcome = faults.measure_restart(stack.client, pipeline_id, "task process killed",
                                     lambda: faults.kill_tree(pid))

    assert faults.record(stack.client, pipeline_id).failures == 1
    check_recovered(client, stack, pipeline_id, outcome)


def test_a_killed_worker_loses_its_pipeline_to_the_other_worker(client: ManagerClient, stack: Stack,
                                                                 camera: str) -> None:
    pipeline_id = start(client, stack, camera)
    victim = worker_of(stack, pipeline_id)

    outcome = faults.measure_restart(stack.client, pipeline_id, "whole worker killed",
                                     lambda: faults.kill_tree(stack.workers[victim].pid))

    assert worker_of(stack, pipeline_id) != victim
    status = client.status(pipeline_id).report
    assert status.last_error == "worker lost (no heartbeat)", faults.record(stack.client, pipeline_id)
    check_recovered(client, stack, pipeline_id, outcome)


def test_a_frozen_task_that_wakes_up_is_fenced_out(client: ManagerClient, stack: Stack, camera: str) -> None:
    pipeline_id = start(client, stack, camera)
    pid = faults.task_pid(stack.client, pipeline_id)
    frozen = psutil.Process(pid)

    outcome = faults.measure_restart(stack.client, pipeline_id, "task frozen (SIGSTOP), then woken",
                                     lambda: frozen.send_signal(signal.SIGSTOP))
    frozen.send_signal(signal.SIGCONT)  # the zombie wakes up with results in its buffers
    wait_until(lambda: not frozen.is_running() or frozen.status() == psutil.STATUS_ZOMBIE
               or faults.task_pid(stack.client, pipeline_id) != pid, timeout=10)
    time.sleep(3)  # let it try to write whatever it had

    after = faults.audit(stack.client, pipeline_id)
    assert after.interleaved == 0 and after.epochs == [1, 2], after.epochs
    check_recovered(client, stack, pipeline_id, outcome)


def test_a_worker_shutdown_hands_its_pipeline_over(client: ManagerClient, stack: Stack, camera: str) -> None:
    pipeline_id = start(client, stack, camera)
    victim = worker_of(stack, pipeline_id)
    process = stack.workers[victim]
    exited: list[float] = []

    def shutdown() -> None:
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)  # bounded: the pipeline stops, the worker exits
        exited.append(time.monotonic() - sent)

    outcome = faults.measure_restart(stack.client, pipeline_id, "worker SIGTERM (hand-over)", shutdown)
    print(f"worker exited {exited[0]:.2f} s after SIGTERM")

    record = faults.record(stack.client, pipeline_id)
    assert (record.restarts, record.failures) == (1, 0) and record.last_error == WORKER_SHUTDOWN
    assert worker_of(stack, pipeline_id) != victim
    check_recovered(client, stack, pipeline_id, outcome)


def test_a_pipeline_outliving_the_visibility_timeout_runs_once(client: ManagerClient, stack: Stack,
                                                               camera: str) -> None:
    pipeline_id = start(client, stack, camera)
    time.sleep(10)  # more than three visibility timeouts (3 s) of the workers' broker

    record = faults.record(stack.client, pipeline_id)
    stream = faults.audit(stack.client, pipeline_id)
    assert (record.epoch, record.restarts) == (1, 0)
    assert stream.epochs == [1] and stream.duplicated == 0
    logs = "".join(path.read_text(errors="replace") for path in Path(stack.log_dir).glob("worker-*.log"))
    claims = [line for line in logs.splitlines() if pipeline_id in line and "claimed" in line]
    assert len(claims) == 1 and "not claimed" not in claims[0], claims  # one delivery, no duplicate
    client.terminate(pipeline_id)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_pipelines_run_on_while_the_manager_restarts(client: ManagerClient, stack: Stack, camera: str,
                                                      sig: int) -> None:
    pipeline_id = start(client, stack, camera)
    stack.stop_manager(sig)
    during = faults.audit(stack.client, pipeline_id).count(1)
    wait_until(lambda: faults.audit(stack.client, pipeline_id).count(1) >= during + 5, timeout=10,
               message=lambda: "no results while the manager was down")
    stack.start_manager()

    client = ManagerClient(port=stack.port, timeout=15)
    assert pipeline_id in client.list_pipelines().pipelines
    assert client.status(pipeline_id).report.pipeline_state == "RUNNING"
    assert client.consume(pipeline_id, max_entries=10).entries
    client.pause(pipeline_id)
    wait_until(lambda: client.status(pipeline_id).report.pipeline_state == "MUTED", timeout=10)
    client.resume(pipeline_id)
    wait_until(lambda: client.status(pipeline_id).report.pipeline_state == "RUNNING", timeout=10)
    client.terminate(pipeline_id)
    assert pipeline_id not in client.list_pipelines().pipelines
    assert faults.record(stack.client, pipeline_id).epoch == 1  # never restarted: it never stopped
