"""Results through Redis outages: the buffered sink retries what a passing outage refused, the fenced
stream sink makes those retries idempotent and writes back what the server lost (real Redis; the
outages are injected at the sink's boundary)."""

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from services.core import keys
from services.worker.engine.events import StatusUpdate
from services.worker.engine.results import RoundResult, SourceResult
from services.worker.engine.sinks import SinkUnavailable
from services.worker.engine.sinks.buffered import BufferedSink
from services.worker.engine.sinks.redis_stream import Fence, RedisStreamSink
from tests.support.pipelines import create_record
from tests.support.waiting import wait_until

OWNER = "worker@test:1"


def _round(frame_id: int) -> RoundResult:
    slot = SourceResult(0, frame_id, datetime.now(UTC), time.monotonic(),
                        {"image": {"width": 1, "height": 1}, "predictions": []})
    return RoundResult((slot,))


class _Outage:
    """A sink whose server is unavailable while ``down`` is set."""

    name = "flaky"

    def __init__(self) -> None:
        self.down = threading.Event()
        self.written: list[int] = []
        self.attempts = 0

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        self.attempts += 1
        if self.down.is_set():
            raise SinkUnavailable("connection refused")
        self.written.extend(r.slots[0].frame_id for r in results if r.slots[0])

    def close(self) -> None:
        pass


def test_a_passing_outage_is_retried_not_dropped_and_the_queue_stays_bounded() -> None:
    updates: list[StatusUpdate] = []
    inner = _Outage()
    inner.down.set()
    sink = BufferedSink(inner, updates.append, capacity=8, batch_size=4)
    sink.submit(_round(1))
    wait_until(lambda: sink.stats().retries >= 2, timeout=5)
    for frame_id in range(2, 31):  # the queue fills: its oldest are dropped and counted, never the retried batch
        sink.submit(_round(frame_id))
    stats = sink.stats()
    assert not stats.healthy and stats.retrying == 1 and stats.queued == 8
    assert stats.dropped_queue_full == 29 - 8 and stats.dropped_sink_error == 0
    assert len(updates) == 1  # reported once per outage
    inner.down.clear()
    wait_until(lambda: len(inner.written) == 9, timeout=5)
    assert inner.written == [1, *range(23, 31)]
    stats = sink.stats()
    assert stats.healthy and stats.delivered == 9 and stats.retrying == 0 and stats.queued == 0
    sink.close()


def test_closing_during_an_outage_gives_up_and_counts() -> None:
    inner = _Outage()
    inner.down.set()
    sink = BufferedSink(inner, lambda update: None, capacity=8, batch_size=2)
    for frame_id in range(1, 4):
        sink.submit(_round(frame_id))
    wait_until(lambda: sink.stats().retries >= 1, timeout=5)
    sink.close(timeout=5)
    stats = sink.stats()
    assert stats.dropped_sink_error == 3 and stats.delivered == 0 and stats.retrying == 0


@pytest.fixture
def owned(redis_client: redis.Redis) -> Iterator[str]:
    record = create_record(redis_client)
    redis_client.hset(keys.pipeline_record(record.pipeline_id), "owner", OWNER)
    yield record.pipeline_id


def _sink(client: redis.Redis, pipeline_id: str, window: int = 256, maxlen: int = 1000) -> RedisStreamSink:
    return RedisStreamSink(client, pipeline_id, maxlen=maxlen, fence=Fence(1, OWNER), replay_window=window)


def _stream(client: redis.Redis, pipeline_id: str) -> list[tuple[bytes, int]]:
    import json

    return [(entry_id, json.loads(fields[b"frames_metadata"])[0]["frame_id"])
            for entry_id, fields in client.xrange(keys.results_stream(pipeline_id))]


def test_a_retry_after_a_lost_reply_does_not_write_twice(redis_client: redis.Redis, owned: str) -> None:
    sink = _sink(redis_client, owned)
    sink.write([_round(1)], 0)
    real = sink._append
    assert real is not None

    def reply_lost(*args: Any, **kwargs: Any) -> Any:  # the script ran, the connection died before its reply
        real(*args, **kwargs)
        raise redis.ConnectionError("Connection closed by server.")

    sink._append = reply_lost  # type: ignore[assignment]
    batch = [_round(2), _round(3)]
    with pytest.raises(SinkUnavailable):
        sink.write(batch, 5)
    sink._append = real
    sink.write(batch, 5)  # the BufferedSink's retry: the same batch object
    sink.write([_round(4)], 0)
    entries = _stream(redis_client, owned)
    assert [frame for _, frame in entries] == [1, 2, 3, 4]
    assert [entry_id.split(b"-")[1] for entry_id, _ in entries] == [b"1", b"2", b"3", b"4"]  # seq = ordinal
    assert redis_client.get(keys.results_dropped(owned)) == b"5"  # counted once
    assert (sink.recovery().replayed, sink.recovery().lost) == (0, 0)


def _as_a_replica_had_it(client: redis.Redis, pipeline_id: str, keep: int) -> None:
    """The stream as a promoted replica has it: only its first ``keep`` entries arrived (same ids)."""
    stream = keys.results_stream(pipeline_id)
    entries = client.xrange(stream)
    client.delete(stream)
    for entry_id, fields in entries[:keep]:
        client.xadd(stream, fields, id=entry_id)


def test_entries_the_server_lost_are_written_back_with_their_ids(redis_client: redis.Redis, owned: str) -> None:
    sink = _sink(redis_client, owned)
    for frame_id in range(1, 7):
        sink.write([_round(frame_id)], 0)
    before = _stream(redis_client, owned)
    _as_a_replica_had_it(redis_client, owned, keep=3)
    sink.write([_round(7)], 0)
    after = _stream(redis_client, owned)
    assert after[:6] == before and after[6][1] == 7
    assert (sink.recovery().replayed, sink.recovery().lost) == (3, 0)


def test_what_is_beyond_the_replay_window_counts_as_lost(redis_client: redis.Redis, owned: str) -> None:
    sink = _sink(redis_client, owned, window=2)
    for frame_id in range(1, 11):
        sink.write([_round(frame_id)], 0)
    _as_a_replica_had_it(redis_client, owned, keep=5)
    sink.write([_round(11)], 0)
    assert [frame for _, frame in _stream(redis_client, owned)] == [1, 2, 3, 4, 5, 9, 10, 11]
    assert (sink.recovery().replayed, sink.recovery().lost) == (2, 3)


def test_newest_entries_deleted_by_someone_count_as_lost_and_writing_goes_on(redis_client: redis.Redis,
                                                                           owned: str) -> None:
    sink = _sink(redis_client, owned)
    for frame_id in range(1, 5):
        sink.write([_round(frame_id)], 0)
    newest = [entry_id for entry_id, _ in _stream(redis_client, owned)][2:]
    redis_client.xdel(keys.results_stream(owned), *newest)  # ids at or below the stream's last generated id
    sink.write([_round(5)], 0)
    sink.write([_round(6)], 0)
    assert [frame for _, frame in _stream(redis_client, owned)] == [1, 2, 5, 6]
    assert (sink.recovery().replayed, sink.recovery().lost) == (0, 2)


def test_a_stream_redis_lost_entirely_gets_the_window_back(redis_client: redis.Redis, owned: str) -> None:
    sink = _sink(redis_client, owned, window=4, maxlen=5)
    for frame_id in range(1, 21):
        sink.write([_round(frame_id)], 0)
    redis_client.delete(keys.results_stream(owned))  # a Redis restarted without its data
    sink.write([_round(21)], 0)
    assert [frame for _, frame in _stream(redis_client, owned)] == [17, 18, 19, 20, 21]
    # at most maxlen (5) of the task's results could still have been in the stream: 4 replayed, 1 lost
    assert (sink.recovery().replayed, sink.recovery().lost) == (4, 1)


def test_a_new_epoch_writes_after_the_previous_one_whatever_the_clocks(redis_client: redis.Redis,
                                                                       owned: str) -> None:
    future = int(time.time() * 1000) + 3_600_000  # a previous task wrote with ids an hour ahead
    redis_client.xadd(keys.results_stream(owned), {"outputs": "[]", "frames_metadata": '[{"frame_id": 0}]',
                                                   "epoch": "0"}, id=f"{future}-99")
    sink = _sink(redis_client, owned)
    sink.write([_round(1)], 0)
    entries = _stream(redis_client, owned)
    assert [frame for _, frame in entries] == [0, 1]
    assert entries[1][0] == f"{future + 1}-1".encode()
