"""Ownership's Lua scripts when the record goes missing, against a redis-server of this module's own
that the tests restart EMPTY (no persistence): a record Redis lost is restored by the task that
owned it, one removed on purpose is never resurrected, and results writes follow the same rule."""

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from services.core import keys
from services.core.records import DesiredState, PipelineState
from services.core.states import StreamState
from services.worker.engine.pipeline import InferencePipeline
from services.worker.engine.results import RoundResult, SourceResult
from services.worker.engine.sinks.redis_stream import Fence, FencedOut, RedisStreamSink
from services.worker.ownership import Ownership
from services.worker.supervisor import Options, Supervisor
from tests.support.pipelines import create_record, read_record
from tests.support.redis_server import RedisServer, running_redis
from tests.support.waiting import wait_until

SPEC = json.dumps({"video_references": ["rtsp://camera/stream"], "model_id": "m/1", "device": "cpu"})
REPORT = json.dumps({"reported_at": 1.0})


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """Restarted by the tests, so not the session's shared server."""
    with running_redis() as running:
        yield running


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)
    connection.flushall()
    yield connection
    connection.close()


def restart_empty(server: RedisServer) -> None:
    server.stop()
    server.start()


def owned(client: redis.Redis, epoch: int = 1, owner: str = "worker@host:1") -> Ownership:
    """A pipeline as the manager creates it (record, spec, index entry), claimed by a task."""
    record = create_record(client, device="gpu")
    client.set(keys.pipeline_spec(record.pipeline_id), SPEC)
    client.sadd(keys.pipelines_index(), record.pipeline_id)
    ownership = Ownership(client, record.pipeline_id, epoch, owner)
    assert ownership.claim() is DesiredState.RUNNING
    return ownership


def indexed(client: redis.Redis, pipeline_id: str) -> bool:
    return bool(client.sismember(keys.pipelines_index(), pipeline_id))


def test_a_record_lost_with_redis_data_is_restored_by_its_task(server: RedisServer, client: redis.Redis) -> None:
    ownership = owned(client)
    pid = ownership.pipeline_id
    created_at = read_record(client, pid).created_at
    client.hset(keys.pipeline_record(pid), "desired_state", DesiredState.MUTED.value)  # a MUTE was requested
    assert ownership.tick(PipelineState.MUTED, REPORT).desired is DesiredState.MUTED

    restart_empty(server)
    assert ownership.desired_state() is None  # not "RUNNING": that would resume the muted pipeline

    tick = ownership.tick(PipelineState.MUTED, REPORT)
    assert tick.owned and tick.desired is DesiredState.MUTED
    record = read_record(client, pid)
    assert (record.epoch, record.owner, record.device, record.created_at) == (1, "worker@host:1", "gpu", created_at)
    assert (record.state, record.desired_state) == (PipelineState.MUTED, DesiredState.MUTED)
    assert client.get(keys.pipeline_spec(pid)) == SPEC.encode()  # what a re-dispatch needs
    assert indexed(client, pid)  # listed again
    assert client.exists(keys.pipeline_heartbeat(pid), keys.pipeline_report(pid)) == 2
    assert ownership.desired_state() is DesiredState.MUTED


def test_the_heartbeat_while_building_restores_too(server: RedisServer, client: redis.Redis) -> None:
    ownership = owned(client)
    restart_empty(server)
    assert ownership.beat()
    assert read_record(client, ownership.pipeline_id).state is PipelineState.INITIALISING
    assert indexed(client, ownership.pipeline_id)


def test_a_record_removed_on_purpose_is_never_resurrected(server: RedisServer, client: redis.Redis) -> None:
    ownership = owned(client)
    pid = ownership.pipeline_id
    assert ownership.tick(PipelineState.RUNNING, REPORT).owned
    client.delete(*keys.pipeline_keys(pid))  # the manager's store.remove (a failed init's clean-up)
    client.srem(keys.pipelines_index(), pid)

    assert not ownership.tick(PipelineState.RUNNING, REPORT).owned
    assert client.exists(keys.pipeline_record(pid), keys.pipeline_spec(pid), keys.pipeline_heartbeat(pid)) == 0
    assert not indexed(client, pid)
    restart_empty(server)  # not even after Redis lost its data later: the task stopped owning it
    assert not ownership.tick(PipelineState.RUNNING, REPORT).owned
    assert not ownership.restore()
    assert client.exists(keys.pipeline_record(pid)) == 0


def test_a_task_fenced_out_once_never_restores(server: RedisServer, client: redis.Redis) -> None:
    ownership = owned(client)
    client.hset(keys.pipeline_record(ownership.pipeline_id), mapping={"epoch": "2", "owner": ""})  # re-dispatched
    assert not ownership.tick(PipelineState.RUNNING, REPORT).owned

    restart_empty(server)
    assert not ownership.tick(PipelineState.RUNNING, REPORT).owned
    assert client.exists(keys.pipeline_record(ownership.pipeline_id)) == 0


def test_of_two_tasks_racing_to_restore_one_wins(server: RedisServer, client: redis.Redis) -> None:
    # A task that had not yet noticed its epoch was superseded, and the new epoch's task.
    old = owned(client, epoch=1, owner="old@host:1")
    client.hset(keys.pipeline_record(old.pipeline_id), mapping={"epoch": "2", "owner": "", "state": "PENDING"})
    new = Ownership(client, old.pipeline_id, 2, "new@host:2")
    assert new.claim() is not None and new.tick(PipelineState.RUNNING, REPORT).owned

    restart_empty(server)
    results = [ownership.tick(PipelineState.RUNNING, REPORT).owned for ownership in (old, new, old, new)]
    winner = read_record(client, old.pipeline_id)
    assert results in ([True, False, True, False], [False, True, False, True])
    assert (winner.epoch, winner.owner) in ((1, "old@host:1"), (2, "new@host:2"))


def test_the_last_write_after_data_loss_restores_the_end_for_the_manager(
    server: RedisServer, client: redis.Redis
) -> None:
    ownership = owned(client)
    restart_empty(server)
    assert ownership.release(PipelineState.ENDED, "", REPORT)
    record = read_record(client, ownership.pipeline_id)
    assert record.state is PipelineState.ENDED  # the reaper retires it and its status stays readable
    assert indexed(client, ownership.pipeline_id)
    assert client.exists(keys.pipeline_heartbeat(ownership.pipeline_id)) == 0
    client.delete(keys.pipeline_record(ownership.pipeline_id))
    assert not ownership.restore()  # after its last write a task restores nothing


def one_round(frame_id: int) -> RoundResult:
    slot = SourceResult(0, frame_id, datetime.now(UTC), 0.0, {"image": {"width": 1, "height": 1}, "predictions": []})
    return RoundResult((slot,))


def test_results_sink_restores_a_lost_record_and_writes(server: RedisServer, client: redis.Redis) -> None:
    ownership = owned(client)
    pid = ownership.pipeline_id
    fenced = threading.Event()
    sink = RedisStreamSink(client, pid, maxlen=100, fence=Fence(1, ownership.owner, fenced.set, ownership.restore))
    sink.write([one_round(1)], 0)
    first_id = client.xrange(keys.results_stream(pid))[0][0]

    restart_empty(server)
    sink.write([one_round(2)], 3)  # the first write after the outage carries the rounds it dropped
    # the result Redis lost is written back first, with its original id (redis_stream: replay)
    assert client.xrange(keys.results_stream(pid))[0][0] == first_id
    assert client.xlen(keys.results_stream(pid)) == 2
    assert (sink.recovery().replayed, sink.recovery().lost) == (1, 0)
    assert client.get(keys.results_dropped(pid)) == b"3"
    assert read_record(client, pid).epoch == 1 and indexed(client, pid)
    assert not fenced.is_set()

    client.delete(keys.pipeline_record(pid))  # removed on purpose: the same server
    with pytest.raises(FencedOut, match="removed"):
        sink.write([one_round(3)], 0)
    assert fenced.is_set()
    assert client.xlen(keys.results_stream(pid)) == 2 and client.exists(keys.pipeline_record(pid)) == 0


def test_a_sink_without_a_restore_treats_a_missing_record_as_fenced(client: redis.Redis) -> None:
    fenced = threading.Event()
    sink = RedisStreamSink(client, "nobody", maxlen=10, fence=Fence(1, "worker@host:1", fenced.set))
    with pytest.raises(FencedOut):
        sink.write([one_round(1)], 0)
    assert fenced.is_set() and client.exists(keys.results_stream("nobody")) == 0


class RunningEngine:
    """The little of ``InferencePipeline`` a supervision tick touches: a pipeline that just runs."""

    state = StreamState.RUNNING

    def status_report(self) -> dict[str, Any]:
        return {"inference_throughput": 5.0}

    def resume(self) -> None:
        pass


def test_consumption_timeout_is_not_hit_because_redis_lost_the_consumption_cursor(
    server: RedisServer, client: redis.Redis
) -> None:
    ownership = owned(client)
    supervisor = Supervisor(cast(InferencePipeline, RunningEngine()), ownership, threading.Event(),
                            threading.Event(), Options(consumption_timeout=30))
    supervisor._started_at = time.time() - 3600  # running for an hour, consumed a moment ago
    client.hset(keys.pipeline_consumed(ownership.pipeline_id), "last_non_empty", time.time())
    supervisor._tick()

    restart_empty(server)  # the cursor, and its last_non_empty, are gone
    supervisor._tick()
    assert supervisor._stop_reason is None
    assert read_record(client, ownership.pipeline_id).state is PipelineState.RUNNING


def test_a_record_restored_after_data_loss_comes_back_confirmed(server: RedisServer, client: redis.Redis) -> None:
    # Claimed while its INIT was still unconfirmed (the manager confirms after the task's reply): restored
    # with that deadline, the manager's reaper would terminate a pipeline its client is using.
    record = create_record(client, device="gpu", confirm_by=time.time() + 30)
    client.set(keys.pipeline_spec(record.pipeline_id), SPEC)
    client.sadd(keys.pipelines_index(), record.pipeline_id)
    ownership = Ownership(client, record.pipeline_id, 1, "worker@host:1")
    assert ownership.claim() is DesiredState.RUNNING
    client.hset(keys.pipeline_record(record.pipeline_id), "confirm_by", "0")  # its INIT's reply went out

    restart_empty(server)
    assert ownership.tick(PipelineState.RUNNING, REPORT).owned
    restored = read_record(client, record.pipeline_id)
    assert restored.confirm_by == 0.0 and restored.state is PipelineState.RUNNING
    assert not client.hexists(keys.pipeline_record(record.pipeline_id), "confirm_by")


def test_the_heartbeat_while_building_runs_on_a_thread_named_for_the_pipeline(client: redis.Redis) -> None:
    ownership = owned(client)
    with ownership.beating():
        beats = [thread for thread in threading.enumerate() if thread.name == f"beat-{ownership.pipeline_id}"]
        assert len(beats) == 1 and beats[0].native_id is not None
        # Named at the OS level too (top -H, /proc), cut to the kernel's 15 bytes; set as the thread starts.
        comm = Path(f"/proc/self/task/{beats[0].native_id}/comm")
        wait_until(lambda: comm.read_text().strip() == f"beat-{ownership.pipeline_id}"[:15], timeout=5)
    assert not beats[0].is_alive()
