"""Sinks against real Redis and real UDP sockets; the buffered wrapper with a sink that fails."""

import json
import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
import redis

from services.core import keys
from services.core.results import decode_entry
from services.worker.engine import events
from services.worker.engine.events import StatusUpdate
from services.worker.engine.results import RoundResult, SourceResult
from services.worker.engine.sinks.buffered import BufferedSink
from services.worker.engine.sinks.redis_stream import RedisStreamSink
from services.worker.engine.sinks.udp import UdpSink
from tests.support.waiting import wait_until


def _round(frame_id: int, sources: int = 1, missing: tuple[int, ...] = (), boxes: int = 1) -> RoundResult:
    prediction = {
        "image": {"width": 768, "height": 576},
        "predictions": [
            {"x": 10.0, "y": 20.0, "width": 5.0, "height": 9.0, "confidence": 0.9, "class": "person",
             "class_id": 0, "detection_id": f"d{i}"}
            for i in range(boxes)
        ],
    }
    slots = tuple(
        None if source_id in missing
        else SourceResult(source_id, frame_id, datetime.now(UTC), time.monotonic(), prediction)
        for source_id in range(sources)
    )
    return RoundResult(slots)


def test_redis_stream_sink_appends_aligned_entries(redis_client: redis.Redis) -> None:
    sink = RedisStreamSink(redis_client, "p1", maxlen=100)
    sink.write([_round(1, sources=2, missing=(1,)), _round(2, sources=2)], dropped=0)
    entries = redis_client.xrange(keys.results_stream("p1"))
    assert len(entries) == 2
    outputs, metadata = decode_entry(entries[0][1])
    assert outputs[0]["predictions"][0]["class"] == "person"
    assert outputs[1] is None and metadata[1] is None
    assert metadata[0]["frame_id"] == 1 and metadata[0]["source_id"] == 0
    datetime.fromisoformat(metadata[0]["frame_timestamp"])
    assert redis_client.get(keys.results_dropped("p1")) is None


def test_redis_stream_sink_trims_to_its_bound_and_counts_drops(redis_client: redis.Redis) -> None:
    sink = RedisStreamSink(redis_client, "p2", maxlen=10)
    for frame_id in range(1, 501):
        sink.write([_round(frame_id)], dropped=0)
    length = redis_client.xlen(keys.results_stream("p2"))
    assert 10 <= length < 200  # MAXLEN ~ trims whole macro nodes, never below the bound
    last = redis_client.xrevrange(keys.results_stream("p2"), count=1)[0][1]
    assert decode_entry(last)[1][0]["frame_id"] == 500
    sink.write([_round(501)], dropped=7)
    assert int(redis_client.get(keys.results_dropped("p2"))) == 7


def test_udp_sink_sends_reference_datagrams() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    sink = UdpSink("127.0.0.1", receiver.getsockname()[1], on_update=lambda u: None)
    sink.write([_round(5, sources=2, missing=(0,))], dropped=0)
    datagram = json.loads(receiver.recv(65535))
    assert datagram["image"] == {"width": 768, "height": 576}
    assert set(datagram["predictions"][0]) == {
        "x", "y", "width", "height", "confidence", "class", "class_id", "detection_id"}
    meta = datagram["inference_metadata"]
    assert meta["source_id"] == 1 and meta["frame_id"] == 5
    datetime.fromisoformat(meta["frame_decoding_time"])
    datetime.fromisoformat(meta["emission_time"])
    sink.close()
    receiver.close()


def test_udp_sink_reports_oversize_results_instead_of_losing_them_silently() -> None:
    updates: list[StatusUpdate] = []
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sink = UdpSink("127.0.0.1", receiver.getsockname()[1], on_update=updates.append)
    sink.write([_round(9, boxes=2000)], dropped=0)
    assert sink.oversize == 1 and sink.sent == 0
    assert updates[0].event_type == events.INFERENCE_RESULTS_DISPATCHING_ERROR
    assert updates[0].payload["error_type"] == "DatagramTooLarge"
    assert updates[0].payload["size"] > 65_507
    sink.close()
    receiver.close()


class _FlakySink:
    name = "flaky"

    def __init__(self) -> None:
        self.broken = True
        self.written: list[int] = []
        self.dropped_reported = 0
        self.gate = threading.Event()
        self.gate.set()

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        self.gate.wait()
        if self.broken:
            raise ConnectionError("sink unreachable")
        self.written.extend(r.slots[0].frame_id for r in results if r.slots[0])
        self.dropped_reported += dropped

    def close(self) -> None:
        pass


def test_buffered_sink_counts_failures_and_reports_them_on_recovery() -> None:
    updates: list[StatusUpdate] = []
    inner = _FlakySink()
    sink = BufferedSink(inner, updates.append, capacity=8)
    for frame_id in range(1, 4):
        sink.submit(_round(frame_id))
    wait_until(lambda: sink.stats().dropped_sink_error == 3)
    assert not sink.stats().healthy
    assert [u.event_type for u in updates] == [events.INFERENCE_RESULTS_DISPATCHING_ERROR]
    inner.broken = False
    sink.submit(_round(4))
    wait_until(lambda: inner.written == [4])
    assert inner.dropped_reported == 3
    assert sink.stats().healthy and sink.stats().delivered == 1
    sink.close()


def test_buffered_sink_never_blocks_the_producer_and_drops_oldest() -> None:
    inner = _FlakySink()
    inner.broken = False
    inner.gate.clear()  # the sink hangs
    sink = BufferedSink(inner, lambda u: None, capacity=4, batch_size=1)
    for frame_id in range(1, 101):  # the sink hangs: if submit waited on it, this would never end
        sink.submit(_round(frame_id))
    stats = sink.stats()
    assert stats.queued == 4
    assert stats.dropped_queue_full >= 95
    inner.gate.set()
    wait_until(lambda: len(inner.written) >= 4)
    assert inner.written[-4:] == [97, 98, 99, 100]  # the newest survived
    sink.close()


@pytest.mark.parametrize("maxlen", [0, -1])
def test_redis_stream_sink_refuses_empty_bound(redis_client: redis.Redis, maxlen: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RedisStreamSink(redis_client, "p", maxlen=maxlen)
