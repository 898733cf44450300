"""The worker's registration: busy slots and pipeline RAM measured on real processes, the budget setting,
and the pids Celery's state names as running a pipeline."""

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
import redis
from celery.worker import state

from services.core import keys
from services.core.tasks import RUN_PIPELINE
from services.worker import registration
from services.worker.celery_app import _pipeline_pids
from services.worker.registration import Registration, SizeCache, WorkerIdentity, measure
from services.worker.settings import WorkerSettings
from tests.support.waiting import wait_until

BALLAST_MB = 48
# A process that holds BALLAST_MB of written memory (resident), says so, and waits; with an argument it
# first starts one more of itself as its own child and holds nothing itself.
HOLDER = f"""
import subprocess, sys, time
if len(sys.argv) > 1:
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=sys.stdout)
else:
    ballast = b"x" * ({BALLAST_MB} * 2**20)
    print("ready", flush=True)
time.sleep(120)
"""

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Factory: a child of this process holding BALLAST_MB (``nested=True``: held by its own child)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(nested: bool = False) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-c", HOLDER, *([HOLDER] if nested else [])]
        process = subprocess.Popen(args, stdout=subprocess.PIPE)
        started.append(process)
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        return process

    yield start
    for process in started:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_busy_slots_and_ram_count_the_children_running_a_pipeline(spawn: Spawn) -> None:
    pipeline, other = spawn(), spawn()

    one = measure({pipeline.pid}, psutil.Process())
    both = measure({pipeline.pid, other.pid}, psutil.Process())

    assert one.busy == 1 and BALLAST_MB <= one.ram_mb == one.largest_mb
    assert both.busy == 2 and both.ram_mb >= 2 * BALLAST_MB and BALLAST_MB <= both.largest_mb < both.ram_mb


def test_the_inference_service_is_measured_apart_from_the_pipelines(spawn: Spawn) -> None:
    pipeline, service = spawn(), spawn()

    usage = measure({pipeline.pid}, psutil.Process(), shared_pids={service.pid})

    assert usage.busy == 1 and BALLAST_MB <= usage.ram_mb == usage.largest_mb < 2 * BALLAST_MB
    assert usage.shared_mb >= BALLAST_MB


SHARER = f"""
import os, sys, time
ballast = bytearray({BALLAST_MB * 2} * 2**20)
for at in range(0, len(ballast), 4096):
    ballast[at] = 1  # resident in the parent
if os.fork() == 0:
    total = sum(ballast[at] for at in range(0, len(ballast), 4096))  # read: shared with the parent, not copied
    print("ready", flush=True)
    time.sleep(120)
    os._exit(0)
time.sleep(120)
"""


def test_pages_a_pipeline_shares_with_the_worker_count_once_not_in_every_process() -> None:
    parent = subprocess.Popen([sys.executable, "-c", SHARER], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"ready\n"
        worker = psutil.Process(parent.pid)
        (child,) = worker.children()
        assert child.memory_info().rss >= 2 * BALLAST_MB * 2**20  # RSS counts the shared pages in full

        usage = measure({child.pid}, worker)

        assert usage.ram_mb < 1.5 * BALLAST_MB, usage  # PSS: half of them (two processes share them)
    finally:
        for process in psutil.Process(parent.pid).children():
            process.kill()
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_a_pipelines_own_children_count_towards_it(spawn: Spawn) -> None:
    pipeline = spawn(nested=True)

    assert measure({pipeline.pid}, psutil.Process()).ram_mb >= BALLAST_MB


def test_only_the_workers_tree_is_read_not_the_hosts_process_table(
        spawn: Spawn, monkeypatch: pytest.MonkeyPatch) -> None:
    pipelines = [spawn(), spawn(), spawn(nested=True)]
    scans = []
    process_iter, children = psutil.process_iter, psutil.Process.children
    monkeypatch.setattr(psutil, "process_iter", lambda *a, **k: scans.append("process_iter") or process_iter(*a, **k))
    monkeypatch.setattr(psutil.Process, "children",
                        lambda self, *a, **k: scans.append("children") or children(self, *a, **k))

    usage = measure({pipeline.pid for pipeline in pipelines}, psutil.Process())

    assert usage.busy == 3 and usage.ram_mb >= 3 * BALLAST_MB
    assert scans == []  # both read every process of the host


def test_the_tree_read_from_proc_is_the_tree_the_process_table_gives(spawn: Spawn) -> None:
    spawn(), spawn(nested=True)
    me = os.getpid()
    from_proc = registration._children_by_parent(me)
    table = registration._scan_process_table()
    expected = {me: sorted(table[me])}
    for child in table[me]:
        if child in table:
            expected[child] = sorted(table[child])
    assert {pid: sorted(kids) for pid, kids in from_proc.items()} == expected


def test_without_proc_children_files_the_process_table_is_read(
        spawn: Spawn, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = spawn(nested=True)
    monkeypatch.setattr(registration.os.path, "exists", lambda path: False)  # a kernel without the files

    assert measure({pipeline.pid}, psutil.Process()).ram_mb >= BALLAST_MB


def test_a_zombie_is_not_a_busy_slot(spawn: Spawn) -> None:
    zombie = spawn()
    zombie.kill()
    wait_until(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, timeout=10)

    assert measure({zombie.pid}, psutil.Process()).busy == 0
    assert zombie.pid not in registration._children_by_parent(os.getpid()).get(os.getpid(), [])


def test_only_live_processes_of_the_worker_are_busy(spawn: Spawn) -> None:
    exited = spawn()
    exited.kill()
    exited.wait()

    usage = measure({exited.pid, os.getppid()}, psutil.Process())

    assert (usage.busy, usage.ram_mb, usage.largest_mb) == (0, 0, 0)
    assert measure({os.getpid()}, psutil.Process()).busy == 1  # the solo pool runs its task in the worker


def test_the_payload_publishes_slots_ram_and_the_largest_pipeline_seen(
    spawn: Spawn, redis_client: redis.Redis
) -> None:
    running: set[int] = set()
    identity = WorkerIdentity("w@host", ("pipelines.cpu",), concurrency=2, device="cpu", max_ram_mb=1000)
    registration = Registration(redis_client, identity, lambda: running)
    idle = registration.payload().model_dump()

    running.add(spawn().pid)
    busy = registration.payload().model_dump()
    running.clear()
    after = registration.payload().model_dump()

    assert (idle["busy_slots"], idle["free_slots"], idle["pipelines_ram_mb"]) == (0, 2, 0)
    assert idle["largest_pipeline_ram_mb"] is None and idle["max_ram_mb"] == 1000
    assert (busy["busy_slots"], busy["free_slots"]) == (1, 1)
    assert busy["pipelines_ram_mb"] >= BALLAST_MB and busy["largest_pipeline_ram_mb"] == busy["pipelines_ram_mb"]
    assert (after["busy_slots"], after["free_slots"], after["pipelines_ram_mb"]) == (0, 2, 0)
    assert after["largest_pipeline_ram_mb"] == busy["largest_pipeline_ram_mb"]  # the next one may need as much
    assert after["ram_total_mb"] >= after["ram_available_mb"] > 0 and after["pid"] == os.getpid()


def test_the_thread_refreshes_the_key_and_deletes_it_on_stop(redis_client: redis.Redis) -> None:
    identity = WorkerIdentity("w@host", ("pipelines.cpu",), concurrency=1, device="cpu")
    registration = Registration(redis_client, identity)
    key = keys.worker_registration("w@host")

    registration.start()
    wait_until(lambda: redis_client.exists(key))
    published: dict[str, Any] = json.loads(redis_client.get(key) or "{}")
    # Its member in the registry of live workers, scored by when the key expires (Redis's clock).
    expires_at = redis_client.zscore(keys.workers_registry(), "w@host")
    seconds, micros = redis_client.time()
    registration.stop()

    assert published["max_ram_mb"] is None and published["free_slots"] == 1
    assert expires_at is not None and 0 < expires_at - (seconds + micros / 1e6) <= 5
    assert redis_client.exists(key) == 0 and redis_client.zscore(keys.workers_registry(), "w@host") is None


@pytest.mark.parametrize(("environment", "budget"), [
    ({}, None),
    ({"WORKER_MAX_RAM_MB": "1500"}, 1500),
    ({"STREAM_MANAGER_MAX_RAM_MB": "2500"}, 2500),  # the reference's name
    ({"WORKER_MAX_RAM_MB": "1500", "STREAM_MANAGER_MAX_RAM_MB": "2500"}, 1500),
])
def test_the_ram_budget_setting_and_its_reference_alias(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], budget: int | None
) -> None:
    for name in ("WORKER_MAX_RAM_MB", "STREAM_MANAGER_MAX_RAM_MB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert WorkerSettings().max_ram_mb == budget
    assert WorkerSettings(max_ram_mb=700).max_ram_mb == 700


class FakeRequest:
    """What ``_pipeline_pids`` reads of a Celery request."""

    def __init__(self, task: str, worker_pid: int | None) -> None:
        self.type, self.worker_pid = task, worker_pid


def test_pipeline_pids_are_the_pool_processes_that_accepted_a_pipeline_task() -> None:
    requests = [FakeRequest(RUN_PIPELINE, 101), FakeRequest(RUN_PIPELINE, 102), FakeRequest("celery.ping", 103),
                FakeRequest(RUN_PIPELINE, None)]
    for request in requests:
        state.active_requests.add(request)
    try:
        assert _pipeline_pids() == {101, 102}
    finally:
        for request in requests:
            state.active_requests.discard(request)


def test_memory_is_read_again_once_its_reading_is_old_and_busy_slots_are_always_fresh(spawn: Spawn) -> None:
    pipeline, other = spawn(), spawn()
    reads: list[int] = []
    sizes = SizeCache(max_age=60.0)
    real = registration._tree_memory

    def counting(pid: int, children: dict[int, list[int]]) -> int | None:
        reads.append(pid)
        return real(pid, children)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registration, "_tree_memory", counting)
        first = measure({pipeline.pid, other.pid}, psutil.Process(), sizes=sizes)
        again = measure({pipeline.pid, other.pid}, psutil.Process(), sizes=sizes)
        assert sorted(reads) == sorted([pipeline.pid, other.pid])  # the second call used the readings
        assert again == first

        other.kill()
        other.wait()
        after_exit = measure({pipeline.pid, other.pid}, psutil.Process(), sizes=sizes)
        assert after_exit.busy == 1 and after_exit.ram_mb < first.ram_mb  # gone at once, cache or not

        fresh = SizeCache(max_age=0.0)
        measure({pipeline.pid}, psutil.Process(), sizes=fresh)
        measure({pipeline.pid}, psutil.Process(), sizes=fresh)
        assert reads[-2:] == [pipeline.pid, pipeline.pid]  # no age allowed: read on every call
