"""How the pipeline's stage threads wait: asleep until work, room or the end comes, never polling.

An idle stage thread (a muted or starved pipeline's collector, inference threads and post) must not
wake up to look at a flag: each such wake-up costs CPU on a host running dozens of pipelines. The
tests count each thread's voluntary context switches (``/proc``): a thread blocked on a condition
that nobody signals makes none.
"""

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from services.core.states import BufferConsumptionStrategy, BufferFillingStrategy, ProcessingMode, StreamState
from services.worker.engine import pipeline as pipeline_module
from services.worker.engine.frame_buffer import FrameBuffer
from services.worker.engine.frames import VideoFrame
from services.worker.engine.pipeline import InferencePipeline, PipelineConfig
from services.worker.engine.source import SourceConfig, VideoSource
from tests.support.waiting import wait_until
from tests.worker.engine.conftest import FakeCapture, FakeOpener
from tests.worker.engine.test_processing_modes import RoundSink, SlowRecorder


def _wakes(thread: threading.Thread) -> int:
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


def _live_sources(reference: str | int, source_id: int, config: SourceConfig, on_update: Any) -> VideoSource:
    return VideoSource(reference, source_id, config, on_update, opener=FakeOpener(FakeCapture(grab_delay=0.02)))


def _stages(pipeline: InferencePipeline) -> list[threading.Thread]:
    return list(pipeline._threads)


@pytest.mark.parametrize("references", [("rtsp://127.0.0.1:9/a",), ("rtsp://127.0.0.1:9/a", "rtsp://127.0.0.1:9/b")])
def test_a_muted_pipelines_stage_threads_sleep(running: list[InferencePipeline], references: tuple[str, ...]) -> None:
    config = PipelineConfig(video_references=references, inference_workers=2,
                            source=SourceConfig(processing_mode=ProcessingMode.FRESHEST))
    sink = RoundSink()
    pipeline = InferencePipeline(config, SlowRecorder(delay=0.0), [sink], source_factory=_live_sources)
    running.append(pipeline)
    pipeline.start()
    wait_until(lambda: len(sink.rounds) >= 5, timeout=20)
    pipeline.mute()
    time.sleep(0.5)  # the last rounds in flight pass
    before = {thread.name: _wakes(thread) for thread in _stages(pipeline)}
    time.sleep(2.0)
    woke = {thread.name: _wakes(thread) - before[thread.name] for thread in _stages(pipeline)}
    assert pipeline.state is StreamState.MUTED
    # The sources keep grabbing (50 frames a second each, all dropped as muted), so the collector
    # waits for the first frame of a round with the longest bound (``WAIT``, 1 s): 2 wake-ups in
    # 2 s, each of which may have to wait for the GIL once more, more than once on a loaded host (CI
    # saw 7 once: 12 allowed). The other stages wait on queues nobody fills: none. Polling stop flags
    # every 50 ms made 40 (one source) and 198 (two) for the collector.
    assert woke["collector"] <= 12, woke
    assert all(count <= 1 for name, count in woke.items() if name != "collector"), woke
    pipeline.resume()
    seen = len(sink.rounds)
    wait_until(lambda: len(sink.rounds) >= seen + 5, timeout=20)  # asleep, not stuck


class _FailingPrepare(SlowRecorder):
    def prepare(self, frames: Sequence[VideoFrame]) -> list[VideoFrame]:
        raise RuntimeError("a bug in prepare")


class _ClosingSink(RoundSink):
    def __init__(self) -> None:
        super().__init__()
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


def test_a_crashed_stage_wakes_and_ends_the_others_and_stops_the_sources(running: list[InferencePipeline]) -> None:
    # The inference threads and post sleep on their queues when the collector crashes: closing the
    # queues is what ends them (they no longer look at the stop flag on their own). The sources and
    # sinks stop too: terminate() does nothing for a pipeline that is over, and the pool process
    # goes on to its next pipeline, so an endless camera would otherwise be decoded forever.
    config = PipelineConfig(video_references=("rtsp://127.0.0.1:9/a",), inference_workers=3)
    sink = _ClosingSink()
    pipeline = InferencePipeline(config, _FailingPrepare(delay=0.0), [sink], source_factory=_live_sources)
    running.append(pipeline)
    pipeline.start()
    assert pipeline.wait(20)
    assert pipeline.state is StreamState.ERROR
    for thread in _stages(pipeline):
        thread.join(10)
        assert not thread.is_alive(), thread.name
    (source,) = pipeline.sources
    wait_until(lambda: source.state is StreamState.ENDED, timeout=10)
    assert source._thread is not None
    source._thread.join(10)
    assert not source._thread.is_alive()
    assert sink.closed.wait(10)


def test_a_channel_wakes_its_getter_and_putter_on_close() -> None:
    channel = pipeline_module._Channel(maxsize=1)
    assert channel.put("a")
    results: dict[str, object] = {}
    putter = threading.Thread(target=lambda: results.update(put=channel.put("b")))  # full: waits for room
    putter.start()
    assert channel.get() == "a" and channel.get() == "b"  # the get made room for the waiting put
    putter.join(5)
    getter = threading.Thread(target=lambda: results.update(got=channel.get()))  # empty: waits for an item
    getter.start()
    time.sleep(0.1)
    channel.close()
    getter.join(5)
    assert not getter.is_alive() and results == {"put": True, "got": None}
    assert channel.put("c") is False and channel.get() is None  # closed: refuses and answers nothing


def test_a_frame_buffer_sets_its_wakers_on_a_frame_and_on_close() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(2, BufferFillingStrategy.DROP_OLDEST, BufferConsumptionStrategy.EAGER)
    event = threading.Event()
    buffer.wake_on_change(event)
    assert not event.is_set()
    buffer.put(1)
    assert event.is_set()
    event.clear()
    late = threading.Event()
    buffer.wake_on_change(late)  # an item is waiting already: set at once
    assert late.is_set()
    assert buffer.get(timeout=0) == 1
    buffer.close()
    assert event.is_set()
