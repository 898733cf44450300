import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.states import BufferConsumptionStrategy as Consumption
from services.core.states import BufferFillingStrategy as Filling
from services.worker.engine.frame_buffer import DROP_ADAPTIVE, DROP_BUFFER_FULL, DROP_EAGER_SKIP, FrameBuffer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def filled(
    filling: Filling, items: range, maxsize: int = 3, consumption: Consumption = Consumption.LAZY
) -> FrameBuffer[int]:
    buffer: FrameBuffer[int] = FrameBuffer(maxsize, filling, consumption)
    for item in items:
        buffer.put(item)
    return buffer


def drain(buffer: FrameBuffer[int]) -> list[int]:
    out: list[int] = []
    while (item := buffer.get(timeout=0)) is not None:
        out.append(item)
    return out


def test_drop_oldest_keeps_the_newest() -> None:
    buffer = filled(Filling.DROP_OLDEST, range(1, 6))
    assert drain(buffer) == [3, 4, 5]
    assert buffer.dropped() == {DROP_BUFFER_FULL: 2}


def test_drop_latest_keeps_the_oldest() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(3, Filling.DROP_LATEST, Consumption.LAZY)
    assert [buffer.put(i) for i in range(1, 6)] == [True, True, True, False, False]
    assert drain(buffer) == [1, 2, 3]
    assert buffer.dropped() == {DROP_BUFFER_FULL: 2}


def test_wait_blocks_the_producer_until_a_frame_is_read() -> None:
    buffer = filled(Filling.WAIT, range(1, 4))
    accepted = threading.Event()

    def produce() -> None:
        if buffer.put(4):
            accepted.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    assert not accepted.wait(0.3), "a full WAIT buffer must block the producer"
    assert buffer.get(timeout=1) == 1
    assert accepted.wait(2)
    assert drain(buffer) == [2, 3, 4]
    assert buffer.dropped() == {}


def test_close_releases_a_waiting_producer_without_accepting() -> None:
    buffer = filled(Filling.WAIT, range(3))
    result: list[bool] = []
    producer = threading.Thread(target=lambda: result.append(buffer.put(99)), daemon=True)
    producer.start()
    buffer.close()
    producer.join(2)
    assert result == [False]
    assert drain(buffer) == [0, 1, 2], "buffered items stay readable after close"
    assert buffer.get(timeout=5) is None


def test_eager_returns_the_newest_and_counts_the_skipped() -> None:
    buffer = filled(Filling.DROP_OLDEST, range(1, 5), maxsize=8, consumption=Consumption.EAGER)
    assert buffer.get(timeout=0) == 4
    assert len(buffer) == 0
    assert buffer.dropped() == {DROP_EAGER_SKIP: 3}


def test_lazy_is_fifo() -> None:
    assert drain(filled(Filling.WAIT, range(3))) == [0, 1, 2]


def test_get_times_out_with_none() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(2, Filling.WAIT, Consumption.LAZY)
    assert buffer.get(timeout=0.05) is None


def test_get_wakes_up_when_an_item_arrives() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(2, Filling.WAIT, Consumption.LAZY)
    threading.Timer(0.05, buffer.put, args=(7,)).start()
    assert buffer.get(timeout=5) == 7


def test_clear_counts_under_the_given_reason() -> None:
    buffer = filled(Filling.WAIT, range(3))
    assert buffer.clear("terminated") == 3
    assert buffer.dropped() == {"terminated": 3}


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FrameBuffer(0, Filling.WAIT, Consumption.LAZY)


def produce_with_a_stalled_consumer(filling: Filling) -> FrameBuffer[int]:
    clock = FakeClock()
    buffer: FrameBuffer[int] = FrameBuffer(8, filling, Consumption.LAZY, clock=clock)
    for item in range(10):  # 10 fps producer, nobody reads
        clock.now += 0.1
        buffer.put(item)
    return buffer


def test_adaptive_drop_latest_stops_at_half_full_keeping_the_oldest() -> None:
    buffer = produce_with_a_stalled_consumer(Filling.ADAPTIVE_DROP_LATEST)
    assert drain(buffer) == [0, 1, 2, 3, 4]
    assert buffer.dropped() == {DROP_ADAPTIVE: 5}


def test_adaptive_drop_oldest_stops_at_half_full_keeping_the_newest() -> None:
    buffer = produce_with_a_stalled_consumer(Filling.ADAPTIVE_DROP_OLDEST)
    assert drain(buffer) == [5, 6, 7, 8, 9]
    assert buffer.dropped() == {DROP_ADAPTIVE: 5}


def test_adaptive_does_not_drop_when_the_consumer_keeps_pace() -> None:
    clock = FakeClock()
    buffer: FrameBuffer[int] = FrameBuffer(4, Filling.ADAPTIVE_DROP_OLDEST, Consumption.LAZY, clock=clock)
    for item in range(3):  # a backlog of 3 (more than half) the consumer works through at full pace
        buffer.put(item)
    for item in range(3, 50):
        clock.now += 0.1
        assert buffer.get(timeout=0) is not None
        buffer.put(item)
    assert buffer.dropped() == {}
    assert len(buffer) == 3


ops = st.lists(st.one_of(st.integers(0, 1000), st.none()), max_size=200)  # int: put, None: get


@settings(database=None, deadline=None)
@given(
    maxsize=st.integers(1, 6),
    filling=st.sampled_from([f for f in Filling if f is not Filling.WAIT]),
    consumption=st.sampled_from(list(Consumption)),
    script=ops,
)
def test_always_bounded_and_every_frame_accounted_for(
    maxsize: int, filling: Filling, consumption: Consumption, script: list[int | None]
) -> None:
    buffer: FrameBuffer[int] = FrameBuffer(maxsize, filling, consumption)
    offered = taken = 0
    for op in script:
        if op is None:
            taken += buffer.get(timeout=0) is not None
        else:
            buffer.put(op)
            offered += 1
        assert len(buffer) <= maxsize
    assert offered == taken + len(buffer) + sum(buffer.dropped().values())
