"""INIT is all or nothing even when its manager dies: its record is unconfirmed until the success reply
goes back, the reaper never restarts an unconfirmed record, and terminates and removes one whose
deadline passed (its manager is gone); a record written before the field existed reads as confirmed."""

import threading
import time
from typing import Any

import redis

from services.core import keys
from services.core.control import Command, ControlCommand
from services.core.records import DesiredState, PipelineRecord
from services.manager.store import PipelineStore
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeTask, FakeWorker, call, push_reply, register_worker
from tests.manager.test_server import INIT_PAYLOAD
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until


def record_of(client: redis.Redis, pipeline_id: str) -> PipelineRecord:
    return PipelineRecord.from_hash(client.hgetall(keys.pipeline_record(pipeline_id)))  # type: ignore[arg-type]


def leftovers(client: redis.Redis, pipeline_id: str) -> int:
    return int(client.exists(*keys.pipeline_keys(pipeline_id))) + int(client.sismember(keys.pipelines_index(),
                                                                                        pipeline_id))


def orphaned_init(client: redis.Redis, pipeline_id: str, confirm_in: float | None, state: str = "PENDING",
                  created_ago: float = 0.0) -> None:
    """The record an INIT wrote before its manager died: unconfirmed, its deadline ``confirm_in`` s away;
    ``None`` writes it without the field, as a manager from before the field did (in one write: a sweep
    between writing a deadline and deleting it would see an unconfirmed record past its deadline)."""
    now = time.time()
    record = PipelineRecord(pipeline_id, created_at=now - created_ago, updated_at=now - created_ago,
                            dispatched_at=now - created_ago, confirm_by=now + (confirm_in or 0.0))
    fields = {**record.to_hash(), "state": state}
    if confirm_in is None:
        del fields["confirm_by"]
    client.hset(keys.pipeline_record(pipeline_id), mapping=fields)  # type: ignore[arg-type]
    client.set(keys.pipeline_spec(pipeline_id), '{"video_references": ["rtsp://camera"]}')
    client.sadd(keys.pipelines_index(), pipeline_id)


def test_an_init_record_is_unconfirmed_while_it_waits_and_confirmed_with_its_success_reply(
        start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis) -> None:
    manager = start_manager(init_timeout=3.0)
    register_worker(redis_client)
    fake_worker.behaviour = "silent"  # claims nothing, answers nothing: the INIT waits
    replies: list[dict[str, Any]] = []
    waiting = threading.Thread(target=lambda: replies.append(call(manager.port, INIT_PAYLOAD)))
    waiting.start()
    wait_until(lambda: len(fake_worker.calls) == 1, timeout=5)
    pipeline_id = fake_worker.calls[0]["pipeline_id"]
    pending = record_of(redis_client, pipeline_id)
    assert pending.created_at + 3.0 < pending.confirm_by <= pending.created_at + 3.0 + 0.3 + 0.01  # + heartbeat grace

    task = FakeTask(fake_worker.url, pipeline_id, 1, fake_worker.calls[0]["reply_to"], "run")
    fake_worker.tasks.append(task)
    task.start()  # the task starts and replies: the INIT confirms its record as it answers
    waiting.join(10)
    assert replies[0]["response"] == {"status": "success"} and replies[0]["pipeline_id"] == pipeline_id
    assert record_of(redis_client, pipeline_id).confirm_by == 0.0
    time.sleep(0.5)  # past the deadline it had: a confirmed record is the reaper's as any other
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == [pipeline_id]


def test_an_init_that_fails_removes_its_unconfirmed_record(
        start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis) -> None:
    manager = start_manager(init_timeout=0.5)
    register_worker(redis_client)
    fake_worker.behaviour = "silent"
    reply = call(manager.port, INIT_PAYLOAD)
    assert reply["response"]["error_type"] == "operation_error", reply
    assert leftovers(redis_client, reply["pipeline_id"]) == 0


def test_a_confirmation_that_comes_after_the_reaper_abandoned_the_record_fails_the_init(
        start_manager: ManagerFactory, redis_server: RedisServer, redis_client: redis.Redis) -> None:
    class LateWorker:
        """Starts the pipeline, but only once the reaper of another manager has begun to abandon it."""

        async def dispatch(self, pipeline_id: str, epoch: int, spec: dict[str, Any], reply_to: str,
                           device: str) -> None:
            redis_client.hset(keys.pipeline_record(pipeline_id), mapping={"confirm_by": "-1",
                                                                          "desired_state": "TERMINATED"})
            push_reply(redis_client, reply_to, {"status": "success"})

    manager = start_manager(dispatcher=LateWorker())
    register_worker(redis_client)
    reply = call(manager.port, INIT_PAYLOAD)
    assert reply["response"]["error_type"] == "operation_error", reply
    assert "abandoned" in reply["response"]["error_message"]
    assert leftovers(redis_client, reply["pipeline_id"]) == 0


def test_an_unconfirmed_running_pipeline_is_left_alone_until_its_deadline_then_terminated_and_removed(
        manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis) -> None:
    # The manager that wrote it was killed after dispatching; its task claimed it and then lost its
    # heartbeat too. A confirmed record would be restarted; this one waits for its deadline.
    register_worker(redis_client)
    orphaned_init(redis_client, "orphan", confirm_in=1.2, state="RUNNING")
    with redis_client.pubsub() as listener:  # type: ignore[no-untyped-call]
        listener.subscribe(keys.pipeline_control_channel("orphan"))  # where a running task listens
        assert listener.get_message(timeout=1.0) is not None  # the subscription's confirmation
        time.sleep(0.7)  # past heartbeat_grace (0.3 s) + a sweep: not restarted
        before = record_of(redis_client, "orphan")
        assert (before.epoch, before.state, before.desired_state) == (1, "RUNNING", DesiredState.RUNNING)

        wait_until(lambda: leftovers(redis_client, "orphan") == 0, timeout=5)
        message = listener.get_message(ignore_subscribe_messages=True, timeout=2.0)
    assert message is not None
    command = ControlCommand.model_validate_json(message["data"])
    assert (command.command, command.epoch) == (Command.TERMINATE, 1)
    assert fake_worker.calls == []  # never re-dispatched
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []


def test_an_unconfirmed_pending_record_is_never_redispatched_only_removed(
        manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis) -> None:
    register_worker(redis_client)
    # Created long ago: a confirmed PENDING record this old would be re-dispatched ("no worker claimed").
    orphaned_init(redis_client, "never-sent", confirm_in=0.8, created_ago=100.0)
    time.sleep(0.4)
    assert redis_client.sismember(keys.pipelines_index(), "never-sent") and fake_worker.calls == []
    wait_until(lambda: leftovers(redis_client, "never-sent") == 0, timeout=5)
    assert fake_worker.calls == []


def test_a_record_without_the_field_reads_as_confirmed_and_is_supervised_as_before(
        manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis) -> None:
    register_worker(redis_client)
    orphaned_init(redis_client, "older", confirm_in=None, created_ago=100.0)  # written before this field
    assert not redis_client.hexists(keys.pipeline_record("older"), "confirm_by")
    assert record_of(redis_client, "older").confirm_by == 0.0
    wait_until(lambda: len(fake_worker.calls) == 1, timeout=5)  # not claimed in time: sent again
    assert fake_worker.calls[0]["pipeline_id"] == "older" and fake_worker.calls[0]["epoch"] == 2


def test_confirm_and_abandon_exclude_each_other(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    import asyncio

    from services.manager.service import redis_client as manager_redis
    from services.manager.settings import ManagerSettings

    async def scenario() -> None:
        client = manager_redis(ManagerSettings(redis_url=redis_server.url), 2)
        store = PipelineStore(client, 600)
        try:
            orphaned_init(redis_client, "due", confirm_in=-1.0)
            orphaned_init(redis_client, "not-due", confirm_in=60.0)
            orphaned_init(redis_client, "confirmed", confirm_in=-1.0)
            assert await store.confirm("confirmed")
            assert not await store.abandon_unconfirmed("not-due")  # its INIT may still answer
            assert not await store.abandon_unconfirmed("confirmed")
            assert await store.abandon_unconfirmed("due")
            assert not await store.confirm("due")  # too late: the INIT fails instead
            assert await store.abandon_unconfirmed("due")  # an abandonment cut short is finished by the next sweep
            assert record_of(redis_client, "due").desired_state is DesiredState.TERMINATED
            assert not await store.confirm("gone")
        finally:
            await client.aclose()

    asyncio.run(scenario())
