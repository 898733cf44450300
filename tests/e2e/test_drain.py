"""Rolling upgrade of a worker on real processes: drain it, its pipelines continue on the other one.

A manager, the HTTP API and two Celery workers (prefork, four slots each) on the tests' Redis; the
pipelines read a live RTSP camera (GStreamer, an endless test pattern). Four pipelines are started
while worker A is the only one, then B starts and A is drained through the command line. Checked on
the results streams themselves (every entry carries its producer's epoch): each pipeline's results
go on at epoch 2 on B, the old epoch's last result comes before the new epoch's first (never two
producers), and the gap between them (measured, printed) stays bounded. A takes no task while it is
draining (its busy slots only go down, an INIT meanwhile lands on B); the HTTP API lists the drain
and ends it, and A then consumes its queue again.
"""

import threading
import time
from collections.abc import Iterator

import pytest

from services.client import ApiClient, ManagerClient
from services.client.cli import main as vsim
from services.core.drain import owner_host
from services.core.records import WORKER_DRAINING
from tests.support import faults
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.streams import rtsp_live_stream
from tests.support.waiting import wait_until
from tools.payloads import newer_init

A, B = "a@test", "b@test"
PIPELINES = 4
MAX_GAP_S = 30.0  # generous: a move is a Celery delivery, a claim, a build and a camera opened on a loaded host


@pytest.fixture(scope="module")
def camera() -> Iterator[str]:
    with rtsp_live_stream() as url:
        yield url


@pytest.fixture
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        running.client.flushall()
        running.start_manager()
        yield running


def start(client: ManagerClient, stack: Stack, camera: str) -> str:
    pipeline_id = client.initialise(newer_init(camera, max_fps=2, results_buffer_size=2000)).context.pipeline_id
    assert pipeline_id is not None
    wait_until(lambda: faults.audit(stack.client, pipeline_id).count(1) >= 3, timeout=60,
               message=lambda: f"pipeline {pipeline_id} wrote no results")
    return pipeline_id


def host_of(stack: Stack, pipeline_id: str) -> str:
    return owner_host(faults.record(stack.client, pipeline_id).owner)


class SlotWatch(threading.Thread):
    """Samples A's busy slots from its registration until stopped (they must never go up while draining)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack, self.samples, self.stop = stack, list[int](), threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            registration = self.stack.registration(A)
            if registration is not None:
                self.samples.append(int(registration["busy_slots"]))  # type: ignore[call-overload]


def test_a_drained_worker_hands_every_pipeline_to_the_other_one(stack: Stack, camera: str) -> None:
    stack.start_worker("a", "pipelines.cpu", concurrency=PIPELINES)
    client = ManagerClient(port=stack.port, timeout=15)
    pipelines = [start(client, stack, camera) for _ in range(PIPELINES)]
    assert {host_of(stack, pipeline_id) for pipeline_id in pipelines} == {A}
    stack.start_worker("b", "pipelines.cpu", concurrency=PIPELINES + 1)
    with ApiClient(stack.start_api(), timeout=15) as api:
        check_drain(stack, client, api, camera, pipelines)


def check_drain(stack: Stack, client: ManagerClient, api: ApiClient, camera: str, pipelines: list[str]) -> None:
    drained_at = time.monotonic()
    assert vsim(["--port", str(stack.port), "drain", A]) == 0
    wait_until(lambda: (stack.registration(A) or {}).get("consuming") is False, timeout=10,
               message=lambda: f"A still consumes: {stack.registration(A)}")
    watch = SlotWatch(stack)
    watch.start()
    extra = start(client, stack, camera)  # an INIT while A drains: only B takes tasks
    assert host_of(stack, extra) == B

    wait_until(lambda: next(w for w in api.list_workers().workers if w.hostname == A).drain.done,  # type: ignore[union-attr]
               timeout=60 * PIPELINES, message=lambda: str(api.list_workers().workers))
    print(f"drain of {PIPELINES} pipelines done {time.monotonic() - drained_at:.1f} s after the request "
          "(an INIT on B meanwhile)")
    # the fenced tasks stop (within a tick and the engine's terminate) and their processes exit
    wait_until(lambda: (stack.registration(A) or {}).get("busy_slots") == 0, timeout=30)
    time.sleep(0.5)
    watch.stop.set()
    watch.join()
    assert watch.samples and watch.samples[-1] == 0
    pairs = zip(watch.samples, watch.samples[1:], strict=False)
    assert all(later <= earlier for earlier, later in pairs), watch.samples

    gaps = []
    for pipeline_id in pipelines:
        wait_until(lambda pid=pipeline_id: faults.audit(stack.client, pid).count(2) >= 3, timeout=30)  # type: ignore[misc]
        audit = faults.audit(stack.client, pipeline_id)
        assert audit.epochs == [1, 2] and audit.interleaved == 0, audit.epochs
        last_old, first_new = audit.last_at(1), audit.first_at(2)
        assert last_old is not None and first_new is not None and last_old < first_new
        gaps.append(first_new - last_old)
        record = faults.record(stack.client, pipeline_id)
        assert (owner_host(record.owner), record.state, record.epoch) == (B, "RUNNING", 2)
        assert (record.restarts, record.failures, record.last_error) == (1, 0, WORKER_DRAINING)
    print("gap per pipeline (last result of epoch 1 -> first of epoch 2): "
          + ", ".join(f"{gap:.2f} s" for gap in gaps))
    assert max(gaps) < MAX_GAP_S, gaps
    worker_a = next(w for w in api.list_workers().workers if w.hostname == A)
    assert worker_a.drain is not None and (worker_a.drain.moved, worker_a.pipelines) == (PIPELINES, 0)

    undrained = api.undrain_worker(A).worker
    assert undrained.draining is False and undrained.drain is None
    wait_until(lambda: (stack.registration(A) or {}).get("consuming") is True, timeout=10)
    assert (stack.registration(A) or {}).get("draining") is False
    for pipeline_id in [*pipelines, extra]:
        client.terminate(pipeline_id)
