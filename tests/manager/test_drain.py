"""Draining a worker through the manager (real manager, real Redis, fake tasks): the commands and
their errors, admission skipping a draining worker, the reaper's one-at-a-time hand-over (and its
waits: a worker still consuming, no room elsewhere, a pipeline that cannot move), and records and
specs of a newer format major left alone by the reaper."""

import asyncio
import json
import logging
import time
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from services.core import keys
from services.core.drain import DrainProgress
from services.core.records import WORKER_DRAINING, PipelineRecord
from services.manager.drain import Drains, list_workers
from services.manager.store import LiveRecord, PipelineStore
from tests.manager.conftest import RunningManager
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.manager.test_server import INIT_PAYLOAD
from tests.support.waiting import wait_until

A, B = "a@test", "b@test"


def record_of(redis_client: redis.Redis, pipeline_id: str) -> PipelineRecord:
    return PipelineRecord.from_hash(redis_client.hgetall(keys.pipeline_record(pipeline_id)))  # type: ignore[arg-type]


def register(redis_client: redis.Redis, hostname: str, **fields: Any) -> None:
    register_worker(redis_client, hostname=hostname, **{"free_slots": 4, "consuming": True, **fields})


def start_on(manager: RunningManager, fake_worker: FakeWorker, hostname: str) -> str:
    fake_worker.owner = f"{hostname}:1234"
    reply = call(manager.port, INIT_PAYLOAD)
    assert reply["response"] == {"status": "success"}, reply
    return str(reply["pipeline_id"])


def workers(manager: RunningManager) -> dict[str, dict[str, Any]]:
    reply = call(manager.port, {"type": "list_workers"})
    assert reply["response"]["status"] == "success", reply
    return {worker["hostname"]: worker for worker in reply["response"]["workers"]}


def drain_of(manager: RunningManager, hostname: str) -> dict[str, Any]:
    return workers(manager)[hostname]["drain"]  # type: ignore[no-any-return]


def test_drain_and_undrain_answer_the_worker_and_refuse_unknown_ones(
    manager: RunningManager, redis_client: redis.Redis
) -> None:
    register(redis_client, A)

    reply = call(manager.port, {"type": "drain_worker", "hostname": A})
    assert reply["response"]["status"] == "success", reply
    worker = reply["response"]["worker"]
    assert (worker["hostname"], worker["registered"], worker["draining"]) == (A, True, True)
    assert worker["drain"]["pipelines_left"] == 0 and worker["drain"]["moved"] == 0
    again = call(manager.port, {"type": "drain_worker", "hostname": A})["response"]["worker"]  # idempotent
    assert again["drain"]["requested_at"] == worker["drain"]["requested_at"]

    unknown = call(manager.port, {"type": "drain_worker", "hostname": "ghost@test"})["response"]
    assert unknown["error_type"] == "not_found" and "ghost@test" in unknown["error_message"]
    assert call(manager.port, {"type": "undrain_worker", "hostname": "ghost@test"})["response"]["error_type"] \
        == "not_found"
    bad = call(manager.port, {"type": "drain_worker", "hostname": "a b"})["response"]
    assert bad["error_type"] == "invalid_payload" and "hostname" in bad["error_message"]

    undrained = call(manager.port, {"type": "undrain_worker", "hostname": A})["response"]["worker"]
    assert undrained["draining"] is False and "drain" not in undrained
    assert redis_client.hlen(keys.worker_drains()) == 0


def test_a_stopped_worker_stays_listed_while_drained(manager: RunningManager, redis_client: redis.Redis) -> None:
    register(redis_client, A)
    call(manager.port, {"type": "drain_worker", "hostname": A})
    redis_client.delete(keys.worker_registration(A))  # it stopped (for its upgrade)
    redis_client.zrem(keys.workers_registry(), A)

    listed = workers(manager)[A]
    assert (listed["registered"], listed["draining"], listed["drain"]["done"]) == (False, True, True)
    assert call(manager.port, {"type": "undrain_worker", "hostname": A})["response"]["status"] == "success"
    assert A not in workers(manager)


def test_admission_skips_a_draining_worker(manager: RunningManager, fake_worker: FakeWorker,
                                           redis_client: redis.Redis) -> None:
    register(redis_client, A)
    call(manager.port, {"type": "drain_worker", "hostname": A})

    refused = call(manager.port, INIT_PAYLOAD)["response"]
    assert refused["error_type"] == "operation_error" and f"{A}: draining" in refused["error_message"], refused
    assert fake_worker.calls == []

    call(manager.port, {"type": "undrain_worker", "hostname": A})
    assert call(manager.port, INIT_PAYLOAD)["response"] == {"status": "success"}


def test_pipelines_move_one_at_a_time_once_the_worker_stopped_consuming(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register(redis_client, A)
    first, second = start_on(manager, fake_worker, A), start_on(manager, fake_worker, A)
    register(redis_client, B)
    fake_worker.owner = f"{B}:5678"

    call(manager.port, {"type": "drain_worker", "hostname": A})
    wait_until(lambda: "stopped consuming" in (drain_of(manager, A)["waiting"] or ""), timeout=5)
    time.sleep(0.5)  # several sweeps: nothing moves while the worker may still take the re-dispatch
    assert len(fake_worker.calls) == 2

    fake_worker.behaviour = "silent"  # the first move's task does not start yet
    register(redis_client, A, consuming=False, draining=True)  # its next beat, once its consumer stopped
    wait_until(lambda: len(fake_worker.calls) == 3, timeout=5)
    assert fake_worker.calls[2]["pipeline_id"] == first and fake_worker.calls[2]["epoch"] == 2  # the oldest first
    fake_worker.tasks[0].lose()  # a real task is fenced out by the new epoch: it stops writing its heartbeat
    redis_client.delete(keys.pipeline_heartbeat(first))
    wait_until(lambda: "is starting on another worker" in (drain_of(manager, A)["waiting"] or ""), timeout=5)
    time.sleep(0.5)  # one at a time: the second stays where it is while the first is not running elsewhere
    assert len(fake_worker.calls) == 3 and record_of(redis_client, second).epoch == 1
    assert drain_of(manager, A)["moving"] == first

    fake_worker.behaviour = "run"  # the unclaimed dispatch is sent again after init_timeout, then runs on B
    wait_until(lambda: drain_of(manager, A)["done"], timeout=15)

    assert [c["pipeline_id"] for c in fake_worker.calls[2:]] == [first, first, second]
    first_record, second_record = record_of(redis_client, first), record_of(redis_client, second)
    assert (first_record.epoch, first_record.owner, first_record.state) == (3, f"{B}:5678", "RUNNING")
    assert (second_record.epoch, second_record.owner, second_record.state) == (2, f"{B}:5678", "RUNNING")
    assert (second_record.restarts, second_record.failures, second_record.last_error) == (1, 0, WORKER_DRAINING)
    assert (first_record.restarts, first_record.failures) == (2, 0)  # the drain, then the unclaimed dispatch
    drain = drain_of(manager, A)
    assert (drain["moved"], drain["pipelines_left"], drain["moving"]) == (2, 0, None)
    assert drain["last_move_s"] is not None


def test_a_drain_waits_for_room_and_leaves_unmovable_pipelines_running(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register(redis_client, A)
    movable, peer_bound = start_on(manager, fake_worker, A), start_on(manager, fake_worker, A)
    redis_client.hset(keys.pipeline_record(peer_bound), "movable", "False")  # as a WebRTC pipeline's
    register(redis_client, B, free_slots=0)
    fake_worker.owner = f"{B}:5678"
    register(redis_client, A, consuming=False, draining=True)

    call(manager.port, {"type": "drain_worker", "hostname": A})
    wait_until(lambda: "no other worker has room" in (drain_of(manager, A)["waiting"] or ""), timeout=5)
    drain = drain_of(manager, A)
    assert f"{B}: no free slot" in drain["waiting"] and drain["unmovable"] == [peer_bound]
    assert record_of(redis_client, movable).epoch == 1 and len(fake_worker.calls) == 2  # nothing stopped

    register(redis_client, B, free_slots=4)
    wait_until(lambda: drain_of(manager, A)["done"], timeout=10)
    assert record_of(redis_client, movable).owner == f"{B}:5678"
    peer = record_of(redis_client, peer_bound)
    assert (peer.epoch, peer.owner, peer.state) == (1, f"{A}:1234", "RUNNING")  # left running, not killed
    drain = drain_of(manager, A)
    assert (drain["pipelines_left"], drain["movable_left"], drain["unmovable"]) == (1, 0, [peer_bound])


def test_a_drain_survives_a_manager_restart(start_manager: Any, fake_worker: FakeWorker,
                                            redis_client: redis.Redis) -> None:
    first_manager = start_manager()
    register(redis_client, A)
    pipeline_id = start_on(first_manager, fake_worker, A)
    call(first_manager.port, {"type": "drain_worker", "hostname": A})
    first_manager.stop()

    register(redis_client, B)
    register(redis_client, A, consuming=False, draining=True)
    fake_worker.owner = f"{B}:5678"
    second_manager = start_manager()
    wait_until(lambda: drain_of(second_manager, A)["done"], timeout=10)
    assert record_of(redis_client, pipeline_id).owner == f"{B}:5678"


def test_a_hand_over_names_the_move_in_the_drain_in_the_same_step(redis_server: Any,
                                                                  redis_client: redis.Redis) -> None:
    """No reader may see the pipeline gone from the draining worker while the drain names no move:
    that reads as a finished drain (a flaky "done" before the pipeline ran elsewhere)."""
    record = PipelineRecord("p-moved", created_at=time.time(), state="RUNNING", owner=f"{A}:1")  # type: ignore[arg-type]
    redis_client.hset(keys.pipeline_record("p-moved"), mapping=record.to_hash())  # type: ignore[arg-type]
    stored = record_of(redis_client, "p-moved")

    async def hand_over(progress: DrainProgress) -> int | None:
        client = AsyncRedis.from_url(redis_server.url)
        try:
            return await Drains(client).hand_over(stored, A, progress)
        finally:
            await client.aclose()

    moving = DrainProgress(requested_at=time.time(), moving="p-moved", moving_from_epoch=stored.epoch,
                           moving_since=time.time())
    assert asyncio.run(hand_over(moving)) is None  # no drain of A (cancelled meanwhile): nothing moves
    assert record_of(redis_client, "p-moved").epoch == stored.epoch

    redis_client.hset(keys.worker_drains(), A, DrainProgress(requested_at=time.time()).model_dump_json())
    assert asyncio.run(hand_over(moving)) == stored.epoch + 1
    moved = record_of(redis_client, "p-moved")
    assert (moved.epoch, moved.owner, moved.state.value) == (stored.epoch + 1, "", "PENDING")
    saved = DrainProgress.model_validate_json(redis_client.hget(keys.worker_drains(), A))  # type: ignore[arg-type]
    assert (saved.moving, saved.moving_from_epoch) == ("p-moved", stored.epoch)
    assert asyncio.run(hand_over(moving)) is None  # the record changed: a second hand-over is refused


def test_a_listing_never_reads_a_drain_as_done_while_its_pipeline_is_between_workers(
    redis_server: Any, redis_client: redis.Redis
) -> None:
    """A hand-over that lands between the listing's reads of the records and of the drains."""
    register(redis_client, A, consuming=False, draining=True)
    record = PipelineRecord("p-moved", created_at=time.time(), state="RUNNING", owner=f"{A}:1")  # type: ignore[arg-type]
    redis_client.hset(keys.pipeline_record("p-moved"), mapping=record.to_hash())  # type: ignore[arg-type]
    redis_client.sadd(keys.pipelines_index(), "p-moved")
    redis_client.hset(keys.worker_drains(), A, DrainProgress(requested_at=time.time()).model_dump_json())
    stored = record_of(redis_client, "p-moved")
    moved: list[int | None] = []

    class HandOverMidway(PipelineStore):  # another manager's sweep moves the pipeline during the listing
        async def live_records(self) -> list[LiveRecord]:
            if not moved:
                moving = DrainProgress(requested_at=time.time(), moving="p-moved", moving_from_epoch=stored.epoch,
                                       moving_since=time.time())
                moved.append(await Drains(self._redis).hand_over(stored, A, moving))
            return await super().live_records()

    async def listing() -> dict[str, Any]:
        client = AsyncRedis.from_url(redis_server.url)
        try:
            return {view["hostname"]: view for view in await list_workers(client, HandOverMidway(client, 600))}[A]
        finally:
            await client.aclose()

    drain = asyncio.run(listing())["drain"]
    assert moved == [stored.epoch + 1] and record_of(redis_client, "p-moved").owner == ""  # it did move meanwhile
    assert (drain["done"], drain["moving"], drain["pipelines_left"]) == (False, "p-moved", 0)


def newer_record(redis_client: redis.Redis, pipeline_id: str, **fields: str) -> None:
    record = PipelineRecord(pipeline_id, created_at=time.time(), state="RUNNING", owner=f"{A}:1")  # type: ignore[arg-type]
    redis_client.hset(keys.pipeline_record(pipeline_id), mapping={**record.to_hash(), **fields})  # type: ignore[arg-type]
    redis_client.sadd(keys.pipelines_index(), pipeline_id)


def test_the_reaper_leaves_a_record_of_a_newer_major_alone(
    manager: RunningManager, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "services.manager")
    newer_record(redis_client, "from-the-future", format_version="2.0", shape="new")  # no heartbeat either

    time.sleep(1.0)  # ten sweeps
    assert redis_client.hget(keys.pipeline_record("from-the-future"), "epoch") == b"1"  # not restarted
    assert redis_client.sismember(keys.pipelines_index(), "from-the-future")  # nor retired
    reasons = [r.getMessage() for r in caplog.records
               if r.name == "services.manager.store" and "from-the-future" in r.getMessage()]
    assert reasons == ["pipeline from-the-future left as it is: pipeline record format 2.0 is newer than this "
                       "release reads (1.x and older)"]  # once, without a traceback
    status = call(manager.port, {"type": "status", "pipeline_id": "from-the-future"})["response"]
    assert status["error_type"] == "operation_error" and "format 2.0" in status["error_message"]
    assert call(manager.port, {"type": "list_pipelines"})["response"]["status"] == "success"


def test_the_reaper_does_not_redispatch_a_spec_of_a_newer_major(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "services.manager")
    register(redis_client, A)
    # the spec first: a sweep between the two writes would find a record without its spec (and fail it)
    redis_client.set(keys.pipeline_spec("newer-spec"), json.dumps({"format_version": "2.0", "sources": []}))
    newer_record(redis_client, "newer-spec", state="PENDING", restart_at=str(time.time()), epoch="2")

    time.sleep(1.0)
    assert fake_worker.calls == []
    assert record_of(redis_client, "newer-spec").state == "PENDING"  # kept for a manager that reads it
    told = [r.getMessage() for r in caplog.records
            if r.name == "services.manager.reaper" and "newer-spec" in r.getMessage()]
    assert told == ["pipeline newer-spec not re-dispatched: pipeline newer-spec's spec format 2.0 is newer than "
                    "this release reads (1.x and older)"]
