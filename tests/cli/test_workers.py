"""``vsim workers|drain|undrain`` against a real manager (in-process, real Redis, fake tasks): the lines,
``--json``, ``--wait`` until the drain is done, and the exit code of an unknown worker (1)."""

import json

import pytest
import redis

from tests.cli.support import vsim
from tests.manager.conftest import RunningManager, fake_worker, manager, start_manager
from tests.manager.fakes import FakeWorker, register_worker
from tests.manager.test_drain import start_on

__all__ = ["fake_worker", "manager", "start_manager"]  # tests/manager's fixtures, used here too


def register(redis_client: redis.Redis, hostname: str, **fields: object) -> None:
    register_worker(redis_client, hostname=hostname, **{"free_slots": 2, "concurrency": 2, "busy_slots": 0,
                                                        "consuming": True, **fields})


def test_workers_drain_wait_and_undrain(manager: RunningManager, fake_worker: FakeWorker,
                                        redis_client: redis.Redis) -> None:
    register(redis_client, "a@test")
    start_on(manager, fake_worker, "a@test")
    register(redis_client, "b@test")
    fake_worker.owner = "b@test:2"
    register(redis_client, "a@test", consuming=False, draining=True)

    listed = vsim("--port", manager.port, "workers")
    drained = vsim("--port", manager.port, "drain", "a@test", "--wait", "--wait-timeout", "20")
    as_json = vsim("--port", manager.port, "workers", "--json")
    undrained = vsim("--port", manager.port, "undrain", "a@test")

    assert listed.code == 0 and listed.lines == ["a@test  serving  1 pipelines  slots 0/2",
                                                 "b@test  serving  0 pipelines  slots 0/2"], listed
    assert drained.code == 0, drained
    assert drained.lines == ["a@test  draining  0 pipelines  slots 0/2  drain: done, 1 moved, 0 left"]
    assert "drain: in progress" in drained.err  # the progress, on stderr
    workers = {w["hostname"]: w for w in json.loads(as_json.out)["workers"]}
    assert workers["a@test"]["drain"]["done"] is True and workers["b@test"]["pipelines"] == 1
    assert (undrained.code, undrained.lines) == (0, ["a@test  serving  0 pipelines  slots 0/2"])


@pytest.mark.parametrize("command", ["drain", "undrain"])
def test_an_unknown_worker_is_refused(manager: RunningManager, command: str) -> None:
    result = vsim("--port", manager.port, command, "ghost@test")
    assert result.code == 1 and result.err.startswith("error: not_found: worker ghost@test is not registered")
