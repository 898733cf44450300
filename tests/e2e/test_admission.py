"""Admission control with real processes: Celery workers publish their room, the manager refuses an INIT
that no worker has room for, naming the missing resource, and leaves nothing behind.

One stack for the module: a worker with one slot on ``pipelines.cpu``, and a worker with two slots and a
30 MB RAM budget (the reference's ``STREAM_MANAGER_MAX_RAM_MB``) on ``pipelines.edge``. The manager
assumes 1 MB per pipeline until a worker has run one, so the budget worker admits its first pipeline
and, once it has measured it (its PSS: well over 30 MB with its decoded frames), refuses the next.
"""

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest

from services.core import keys
from tests.manager.fakes import call
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until
from tools.payloads import newer_init

VTEST = "data/media/vtest.avi"
SLOTS, BUDGET = "slots@test", "budget@test"
BUDGET_MB = 30
INIT_TIMEOUT = 4  # seconds the race's loser waits; a pipeline starts in under a second on a ready pool process


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with running_stack(redis_server.url, devices="cpu,edge") as running:
        running.start_manager(MANAGER_PIPELINE_RAM_ESTIMATE_MB="1", MANAGER_INIT_TIMEOUT=str(INIT_TIMEOUT))
        running.start_worker_with_env("slots", "pipelines.cpu", {}, concurrency=1)
        running.start_worker_with_env("budget", "pipelines.edge", {"STREAM_MANAGER_MAX_RAM_MB": str(BUDGET_MB)},
                                      concurrency=2)
        yield running


def _init(stack: Stack, device: str = "cpu") -> dict[str, Any]:
    return call(stack.port, newer_init(VTEST, max_fps=2, device=device))


def _started(reply: dict[str, Any]) -> str:
    assert reply["response"]["status"] == "success", reply
    return str(reply["pipeline_id"])


def _listed(stack: Stack) -> list[str]:
    return list(call(stack.port, {"type": "list_pipelines"})["response"]["pipelines"])


def _terminate(stack: Stack, pipeline_id: str) -> None:
    assert call(stack.port, {"type": "terminate", "pipeline_id": pipeline_id})["response"]["status"] == "success"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _traces(stack: Stack) -> set[str]:
    """Every pipeline id that has a key in Redis (running, or ended and still readable)."""
    names = [_text(name) for name in stack.client.keys(f"{keys.PREFIX}:pipeline:*")]
    return {name.split(":")[2] for name in names} | {_text(m) for m in stack.client.smembers(keys.pipelines_index())}


def _registration(stack: Stack, hostname: str) -> dict[str, Any]:
    return dict(stack.registration(hostname) or {})


def _pool_ready(stack: Stack, hostname: str) -> bool:
    """The worker has a process for each slot and none of them has run a pipeline yet.

    Each pipeline gets a fresh process (one task per child), and Celery replaces an exited child only
    at its next pool maintenance, up to 5 s later (measured with Celery 5.7 and a bare task); an INIT
    sent meanwhile is admitted (the slot is free) but starts only then, so the tests wait for it.
    """
    registration = _registration(stack, hostname)
    records = [name for name in map(_text, stack.client.keys(f"{keys.PREFIX}:pipeline:*")) if name.count(":") == 2]
    owners = {_text(stack.client.hget(name, "owner") or "") for name in records}
    used = {int(owner.rsplit(":", 1)[1]) for owner in owners if owner.startswith(f"{hostname}:")}
    try:
        live = [child.pid for child in psutil.Process(int(registration["pid"])).children()
                if child.status() != psutil.STATUS_ZOMBIE
                and "services.worker.inference" not in " ".join(child.cmdline())]  # not a pool process
    except (KeyError, psutil.Error):
        return False
    return len(live) == registration["concurrency"] and not used.intersection(live)


def _refusal(reply: dict[str, Any]) -> str:
    assert reply["response"]["status"] == "failure", reply
    assert reply["response"]["error_type"] == "operation_error"
    assert reply["pipeline_id"] is None  # refused before a pipeline was made
    return str(reply["response"]["error_message"])


def test_a_full_worker_refuses_the_next_init_until_its_pipeline_ends(stack: Stack) -> None:
    running = _started(_init(stack))
    wait_until(lambda: _registration(stack, SLOTS).get("free_slots") == 0, timeout=15)
    registration = _registration(stack, SLOTS)
    assert registration["busy_slots"] == 1
    assert registration["pipelines_ram_mb"] > 0 and registration["largest_pipeline_ram_mb"] > 0
    before = _traces(stack)

    refused = _init(stack)

    assert _refusal(refused) == f"no capacity on pipelines.cpu: {SLOTS}: no free slot (1 of 1 busy)"
    assert _listed(stack) == [running]
    assert _traces(stack) == before
    assert stack.client.llen("pipelines.cpu") == 0  # no task was sent

    _terminate(stack, running)
    wait_until(lambda: _registration(stack, SLOTS).get("free_slots") == 1 and _pool_ready(stack, SLOTS), timeout=15)
    again = _started(_init(stack))
    _terminate(stack, again)


def test_a_worker_whose_ram_budget_is_smaller_than_a_pipeline_refuses_naming_the_budget(stack: Stack) -> None:
    running = _started(_init(stack, "edge"))  # admitted on the 1 MB estimate: nothing measured yet
    # Measured once a second: an early measure may catch the process before its model is loaded.
    wait_until(lambda: _registration(stack, BUDGET).get("pipelines_ram_mb", 0) > BUDGET_MB, timeout=15)
    before = _traces(stack)

    refused = _refusal(_init(stack, "edge"))

    budget = re.fullmatch(rf"no capacity on pipelines\.edge: {BUDGET}: RAM budget {BUDGET_MB} MB, (\d+) MB used \+ "
                          r"(\d+) MB per pipeline \(largest observed\)", refused)
    assert budget is not None, refused
    used, largest = int(budget[1]), int(budget[2])
    assert used > BUDGET_MB and largest > BUDGET_MB  # one pipeline runs: a free slot is left, the RAM is not
    assert _listed(stack) == [running] and _traces(stack) == before

    _terminate(stack, running)
    wait_until(lambda: _registration(stack, BUDGET).get("pipelines_ram_mb") == 0, timeout=15)
    idle = _refusal(_init(stack, "edge"))  # the worker remembers what a pipeline needs

    assert re.fullmatch(rf"no capacity on pipelines\.edge: {BUDGET}: RAM budget {BUDGET_MB} MB, 0 MB used \+ \d+ MB "
                        r"per pipeline \(largest observed\)", idle), idle
    assert _registration(stack, BUDGET)["free_slots"] == 2
    assert running not in _listed(stack)


def test_two_inits_racing_for_the_last_slot_leave_one_pipeline_and_nothing_else(stack: Stack) -> None:
    """Both usually pass admission (the slot shows busy only once a process has taken the task); the
    loser's task then waits in the Celery queue, the manager gives up after init_timeout and removes
    the pipeline, and when the slot frees the task finds no record and writes nothing."""
    wait_until(lambda: _registration(stack, SLOTS).get("free_slots") == 1 and _pool_ready(stack, SLOTS), timeout=15)
    barrier = threading.Barrier(2)

    def init(_: int) -> dict[str, Any]:
        barrier.wait()
        return _init(stack)

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(init, range(2)))

    [won] = [reply for reply in replies if reply["response"]["status"] == "success"]
    [lost] = [reply for reply in replies if reply["response"]["status"] == "failure"]
    winner, loser = won["pipeline_id"], lost["pipeline_id"]
    assert _listed(stack) == [winner]
    if loser is None:  # the registration had caught up: refused at admission, nothing was sent
        assert "no free slot" in lost["response"]["error_message"]
        _terminate(stack, winner)
        return
    assert lost["response"]["error_message"] == f"no worker started pipeline {loser} within {INIT_TIMEOUT} s"
    assert loser not in _traces(stack)
    assert stack.client.llen("pipelines.cpu") == 1  # its task still waits for the slot

    _terminate(stack, winner)
    log = stack.log_dir / "worker-slots.log"
    wait_until(lambda: f"pipeline {loser} epoch 1 not claimed: no record" in log.read_text(errors="replace"),
               timeout=20)
    assert loser not in _traces(stack) and stack.client.llen("pipelines.cpu") == 0
