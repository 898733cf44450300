"""Admission of INIT: the pure decision for every reason, reading the registrations, and refusals
through the running manager that leave nothing behind."""

import asyncio
import json
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from services.core import keys
from services.core.errors import OperationError
from services.core.tasks import queue_for
from services.infra import registry
from services.manager.admission import AdmissionPolicy, Ledger, WorkerRegistration, admit, read_registrations
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call
from tests.manager.test_init import pipeline_keys
from tests.manager.test_server import INIT_PAYLOAD
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

CPU = queue_for("cpu")
POLICY = AdmissionPolicy(pipeline_ram_estimate_mb=500, min_free_ram_mb=256)


def worker(hostname: str = "w1@host", **fields: Any) -> WorkerRegistration:
    """A registration as a current worker writes it: 2 slots, both free, plenty of RAM, no budget."""
    values: dict[str, Any] = {"hostname": hostname, "queues": [CPU], "concurrency": 2, "free_slots": 2,
                              "ram_available_mb": 8000, "pipelines_ram_mb": 0, "largest_pipeline_ram_mb": None,
                              "max_ram_mb": None}
    return WorkerRegistration.model_validate({**values, **fields})


def refusal(*workers: WorkerRegistration, queue: str = CPU, policy: AdmissionPolicy = POLICY) -> str:
    with pytest.raises(OperationError) as refused:
        admit(queue, workers, policy)
    return str(refused.value)


# --- the decision ---------------------------------------------------------------------------------

def test_a_worker_with_a_free_slot_and_ram_admits() -> None:
    admit(CPU, [worker(free_slots=1, max_ram_mb=2000, pipelines_ram_mb=1000, largest_pipeline_ram_mb=1000)],
          POLICY)


def test_no_worker_on_the_queue_keeps_the_plain_message() -> None:
    assert refusal(worker(queues=[queue_for("gpu")])) == f"no worker serves queue {CPU}"
    assert refusal() == f"no worker serves queue {CPU}"


def test_no_free_slot() -> None:
    assert refusal(worker(free_slots=0)) == f"no capacity on {CPU}: w1@host: no free slot (2 of 2 busy)"


def test_ram_budget_counts_the_largest_pipeline_observed() -> None:
    crowded = worker("w2@host", max_ram_mb=2000, pipelines_ram_mb=1700, largest_pipeline_ram_mb=450)

    assert refusal(crowded) == (f"no capacity on {CPU}: w2@host: RAM budget 2000 MB, 1700 MB used + 450 MB "
                                "per pipeline (largest observed)")


def test_ram_budget_uses_the_estimate_before_any_pipeline_ran() -> None:
    fresh = worker(max_ram_mb=400)

    assert refusal(fresh) == (f"no capacity on {CPU}: w1@host: RAM budget 400 MB, 0 MB used + 500 MB per "
                              "pipeline (estimate)")
    admit(CPU, [fresh], AdmissionPolicy(pipeline_ram_estimate_mb=400, min_free_ram_mb=256))  # exactly fits


def test_ram_budget_that_fits_exactly_admits() -> None:
    admit(CPU, [worker(max_ram_mb=2000, pipelines_ram_mb=1550, largest_pipeline_ram_mb=450)], POLICY)


def test_host_ram_below_the_floor() -> None:
    assert refusal(worker(ram_available_mb=200)) == (
        f"no capacity on {CPU}: w1@host: 200 MB RAM available on its host, below the 256 MB floor")
    admit(CPU, [worker(ram_available_mb=256)], POLICY)


def test_every_missing_resource_of_every_worker_is_named() -> None:
    message = refusal(
        worker("w2@host", max_ram_mb=2000, pipelines_ram_mb=1700, largest_pipeline_ram_mb=450),
        worker("w1@host", free_slots=0, ram_available_mb=100),
    )

    assert message == (f"no capacity on {CPU}: w1@host: no free slot (2 of 2 busy) and 100 MB RAM available "
                       "on its host, below the 256 MB floor; w2@host: RAM budget 2000 MB, 1700 MB used + "
                       "450 MB per pipeline (largest observed)")


def test_one_worker_with_room_is_enough() -> None:
    admit(CPU, [worker("w1@host", free_slots=0), worker("w2@host", free_slots=1)], POLICY)


def test_workers_of_other_queues_are_not_considered() -> None:
    message = refusal(worker("busy@host", free_slots=0), worker("gpu@host", queues=[queue_for("gpu")]))

    assert message == f"no capacity on {CPU}: busy@host: no free slot (2 of 2 busy)"


def test_a_worker_serving_several_queues_counts_for_each() -> None:
    both = worker(queues=[CPU, queue_for("edge")])

    admit(CPU, [both], POLICY)
    admit(queue_for("edge"), [both], POLICY)


def test_a_registration_without_capacity_fields_is_not_checked() -> None:
    """An older worker publishes only its hostname and queues: it is trusted, as before admission."""
    admit(CPU, [WorkerRegistration(hostname="old@host", queues=(CPU,))], POLICY)


# --- one read, several admissions (the reaper's sweep) -------------------------------------------

def test_a_ledger_books_each_admission_so_one_read_never_admits_more_than_the_free_slots() -> None:
    ledger = Ledger([worker("w1@host", free_slots=1), worker("w2@host", free_slots=1)], POLICY)

    ledger.admit(CPU)
    ledger.admit(CPU)

    with pytest.raises(OperationError) as refused:
        ledger.admit(CPU)
    assert str(refused.value) == (f"no capacity on {CPU}: w1@host: no free slot (2 of 2 busy); "
                                  "w2@host: no free slot (2 of 2 busy)")


def test_a_ledger_books_the_ram_of_each_admission_against_the_budget() -> None:
    ledger = Ledger([worker(max_ram_mb=1000, largest_pipeline_ram_mb=400)], POLICY)

    ledger.admit(CPU)
    ledger.admit(CPU)

    with pytest.raises(OperationError) as refused:
        ledger.admit(CPU)
    assert "RAM budget 1000 MB, 800 MB used + 400 MB per pipeline (largest observed)" in str(refused.value)


def test_booking_a_pipeline_already_sent_takes_its_slot_and_never_fails() -> None:
    ledger = Ledger([worker(free_slots=1)], POLICY)

    ledger.book(CPU)  # a dispatched task not yet claimed: its slot is not busy in the registration yet
    ledger.book(CPU)  # nothing left to book: no error, it waits in the queue

    with pytest.raises(OperationError):
        ledger.admit(CPU)


# --- reading the registrations --------------------------------------------------------------------

def test_registrations_are_read_in_one_sweep_and_bad_ones_skipped(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    register(redis_client, "good@host", free_slots=1)
    registry.publish(redis_client, "junk@host", "not json", 60)
    registry.publish(redis_client, "negative@host", json.dumps({"hostname": "x", "free_slots": -1}), 60)
    registry.publish(redis_client, "nameless@host", json.dumps({"queues": [CPU]}), 60)
    redis_client.set("vsim:pipeline:unrelated", "{}")

    async def read() -> list[WorkerRegistration]:
        client = Redis.from_url(redis_server.url)
        try:
            return await read_registrations(client)
        finally:
            await client.aclose()

    registrations = asyncio.run(read())

    assert [(r.hostname, r.free_slots, r.queues) for r in registrations] == [("good@host", 1, (CPU,))]


def read_now(url: str) -> list[WorkerRegistration]:
    async def read() -> list[WorkerRegistration]:
        client = Redis.from_url(url)
        try:
            return await read_registrations(client)
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_registrations_come_from_the_registry_without_scanning_the_keyspace(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    register(redis_client, "w2@host")
    register(redis_client, "w1@host")
    redis_client.mset({f"vsim:pipeline:{n}:results:dropped": 0 for n in range(200)})  # other keys
    redis_client.config_resetstat()

    registrations = read_now(redis_server.url)

    assert [r.hostname for r in registrations] == ["w1@host", "w2@host"]
    commands = redis_client.info("commandstats")
    assert "cmdstat_scan" not in commands and "cmdstat_keys" not in commands


def test_an_expired_registration_is_pruned_from_the_registry(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    register(redis_client, "live@host")
    registry.publish(redis_client, "dead@host", json.dumps({"hostname": "dead@host", "queues": [CPU]}), 1)
    assert [r.hostname for r in read_now(redis_server.url)] == ["dead@host", "live@host"]

    wait_until(lambda: [r.hostname for r in read_now(redis_server.url)] == ["live@host"])  # its key expired

    assert redis_client.zrange(keys.workers_registry(), 0, -1) == [b"live@host"]


def test_a_key_without_a_registry_member_is_not_a_live_worker(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """A registration written the old way (the key alone) is not seen: workers upgrade before the manager."""
    redis_client.set(keys.worker_registration("old@host"), json.dumps({"hostname": "old@host", "queues": [CPU]}),
                     ex=60)

    assert read_now(redis_server.url) == []


# --- through the manager --------------------------------------------------------------------------

def register(client: redis.Redis, hostname: str, queue: str = CPU, **fields: Any) -> None:
    """Writes a registration like a worker's (2 free slots, plenty of RAM, no budget) with ``fields`` changed."""
    payload = {"hostname": hostname, "queues": [queue], "concurrency": 2, "free_slots": 2, "busy_slots": 0,
               "device": "cpu", "pid": 1, "ram_total_mb": 16000, "ram_available_mb": 8000,
               "pipelines_ram_mb": 0, "largest_pipeline_ram_mb": None, "max_ram_mb": None, **fields}
    registry.publish(client, hostname, json.dumps(payload), 60)


def assert_refused_without_trace(reply: dict[str, Any], message: str, manager: RunningManager,
                                 fake_worker: FakeWorker, client: redis.Redis) -> None:
    assert reply["response"]["status"] == "failure"
    assert reply["response"]["error_type"] == "operation_error"
    assert reply["response"]["error_message"] == message
    assert reply["pipeline_id"] is None
    assert fake_worker.calls == []
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []
    assert pipeline_keys(client) == []


def test_init_on_full_workers_is_refused_with_each_reason_and_leaves_nothing(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register(redis_client, "w1@host", free_slots=0, busy_slots=2)
    register(redis_client, "w2@host", max_ram_mb=2000, pipelines_ram_mb=1700, largest_pipeline_ram_mb=450)

    reply = call(manager.port, INIT_PAYLOAD)

    assert_refused_without_trace(
        reply, f"no capacity on {CPU}: w1@host: no free slot (2 of 2 busy); w2@host: RAM budget 2000 MB, "
               "1700 MB used + 450 MB per pipeline (largest observed)", manager, fake_worker, redis_client)
    assert reply["response"]["public_error_message"] == (
        "No worker has room for another pipeline on the requested device.")
    assert "API-KEY-SECRET" not in json.dumps(reply)


def test_the_floor_and_the_estimate_come_from_the_manager_settings(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    manager = start_manager(min_free_ram_mb=9000, pipeline_ram_estimate_mb=1500)
    register(redis_client, "w1@host", max_ram_mb=1000)

    reply = call(manager.port, INIT_PAYLOAD)

    assert_refused_without_trace(
        reply, f"no capacity on {CPU}: w1@host: RAM budget 1000 MB, 0 MB used + 1500 MB per pipeline (estimate) "
               "and 8000 MB RAM available on its host, below the 9000 MB floor", manager, fake_worker, redis_client)


def test_init_goes_ahead_when_one_worker_of_the_queue_has_room(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register(redis_client, "w1@host", free_slots=0)
    register(redis_client, "w2@host", free_slots=1, max_ram_mb=2000, pipelines_ram_mb=1000,
             largest_pipeline_ram_mb=450)

    reply = call(manager.port, INIT_PAYLOAD)

    assert reply["response"] == {"status": "success"}
    assert [dispatched["pipeline_id"] for dispatched in fake_worker.calls] == [reply["pipeline_id"]]


def test_no_worker_on_the_device_queue_keeps_the_plain_message(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register(redis_client, "w1@host", free_slots=0)

    reply = call(manager.port, {**INIT_PAYLOAD, "device": "gpu"})

    assert_refused_without_trace(reply, f"no worker serves queue {queue_for('gpu')}", manager, fake_worker,
                                 redis_client)


def test_admitted_on_a_stale_registration_the_init_times_out_and_leaves_nothing(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    """The race: the registration still shows the slot another INIT just took. The task then waits in
    the queue (here: never starts), the INIT fails after init_timeout and its pipeline is removed."""
    manager = start_manager(init_timeout=0.3)
    register(redis_client, "w1@host", free_slots=1)  # stale: the slot is already taken
    fake_worker.behaviour = "silent"

    reply = call(manager.port, INIT_PAYLOAD)

    assert reply["response"]["error_type"] == "operation_error"
    assert reply["response"]["error_message"] == (
        f"no worker started pipeline {reply['pipeline_id']} within 0.3 s")
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []
    assert pipeline_keys(redis_client) == []
