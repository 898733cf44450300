"""Processing modes on real video: ``every_frame`` loses nothing, ``freshest`` with ``max_staleness`` never
runs inference on a frame older than that, and every drop is counted by cause.

The round processor here records what inference was given (each frame and its age when ``infer``
started) and sleeps to stand for a slow model; sources are the real ones, on a file and on a live
HTTP stream served by ffmpeg at real time (10 fps).
"""

import dataclasses
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from services.core.metrics import LATENCY_BUCKETS
from services.core.states import BufferFillingStrategy, ProcessingMode, StreamState
from services.worker.engine.frames import VideoFrame
from services.worker.engine.pipeline import DROP_STALE, InferencePipeline, PipelineConfig
from services.worker.engine.results import RoundResult
from services.worker.engine.source import SourceConfig, VideoSource
from services.worker.engine.staleness import StaleFrameError, current_deadline, current_turn
from tests.support.streams import http_live_stream
from tests.support.waiting import wait_until
from tests.worker.engine.conftest import FakeCapture, FakeOpener

MEDIA = Path("data/media")
BIKES = str(MEDIA / "bikes.mp4")  # 250 frames
VTEST = MEDIA / "vtest.avi"  # 10 fps: the live stream's rate
TOLERANCE = 0.05  # between the pipeline's last check and the processor's infer: a few instructions


@dataclasses.dataclass(frozen=True)
class Inferred:
    source_id: int
    frame_id: int
    age: float  # seconds since the frame was decoded, when infer started


class SlowRecorder:
    """A round processor: ``prepare`` keeps the frames, ``infer`` records them with their age and sleeps."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._inferred: list[Inferred] = []
        self._prepared_on: list[str] = []

    def prepare(self, frames: Sequence[VideoFrame]) -> list[VideoFrame]:
        with self._lock:
            self._prepared_on.append(threading.current_thread().name)
        return list(frames)

    def infer(self, prepared: list[VideoFrame]) -> None:
        now = time.monotonic()
        with self._lock:
            self._inferred.extend(Inferred(f.source_id, f.frame_id, now - f.decoded_at) for f in prepared)
        time.sleep(self.delay)

    def finish(self, frames: Sequence[VideoFrame], prepared: Any, inferred: Any) -> list[dict[str, Any]]:
        return [{"frame_id": frame.frame_id} for frame in frames]

    def close(self, timeout: float) -> None:
        pass

    @property
    def inferred(self) -> list[Inferred]:
        with self._lock:
            return list(self._inferred)

    @property
    def prepared_on(self) -> list[str]:
        with self._lock:
            return list(self._prepared_on)


class RoundSink:
    """A result sink that keeps every round it is given."""

    name = "rounds"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rounds: list[RoundResult] = []

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        with self._lock:
            self._rounds.extend(results)

    def close(self) -> None:
        pass

    @property
    def rounds(self) -> list[RoundResult]:
        with self._lock:
            return list(self._rounds)

    def frame_ids(self, source_id: int = 0) -> list[int]:
        return [slot.frame_id for result in self.rounds if (slot := result.slots[source_id]) is not None]


def _start(running: list[InferencePipeline], references: tuple[str, ...], processor: SlowRecorder,
           source: SourceConfig, workers: int = 1, **factory: Any) -> tuple[InferencePipeline, RoundSink]:
    sink = RoundSink()
    config = PipelineConfig(video_references=references, source=source, inference_workers=workers)
    pipeline = InferencePipeline(config, processor, [sink], **factory)
    running.append(pipeline)
    pipeline.start()
    return pipeline, sink


def _dropped(pipeline: InferencePipeline, source_id: int = 0) -> dict[str, int]:
    return dict(pipeline.status_report()["sources_metadata"][source_id]["frames_dropped"])


# ------------------------------------------------------------------ every_frame


def test_every_frame_on_a_file_processes_every_frame_in_order(running: list[InferencePipeline]) -> None:
    processor = SlowRecorder(delay=0.002)
    pipeline, sink = _start(running, (BIKES,), processor, SourceConfig(processing_mode=ProcessingMode.EVERY_FRAME),
                            workers=2)

    assert pipeline.wait(timeout=60)
    assert pipeline.state is StreamState.ENDED
    assert sink.frame_ids() == list(range(1, 251))
    assert sorted(f.frame_id for f in processor.inferred) == list(range(1, 251))
    metadata = pipeline.status_report()["sources_metadata"][0]
    assert (metadata["processing_mode"], metadata["max_staleness"]) == ("every_frame", None)
    assert (metadata["buffer_filling_strategy"], metadata["buffer_consumption_strategy"]) == ("WAIT", "LAZY")
    assert metadata["frames_dropped"] == {}


def test_every_frame_on_a_live_stream_with_a_slow_model_drops_nothing(running: list[InferencePipeline]) -> None:
    processor = SlowRecorder(delay=0.25)  # 4 fps against a 10 fps camera
    with http_live_stream(VTEST) as url:
        source = SourceConfig(processing_mode=ProcessingMode.EVERY_FRAME, buffer_size=4)
        pipeline, sink = _start(running, (url,), processor, source)
        wait_until(lambda: len(sink.frame_ids()) >= 12, timeout=30)
        report = pipeline.status_report()

    ids = sink.frame_ids()
    assert ids == list(range(1, len(ids) + 1)), "every decoded frame, in order, none skipped"
    metadata = report["sources_metadata"][0]
    assert metadata["processing_mode"] == "every_frame"
    assert metadata["frames_dropped"] == {}
    # The decoder waited for the model: never further ahead than the buffer (4) plus one frame in the
    # decoder's hand and one in each place a round can be (collector, 2 queued, inference, 2 inferred, post).
    assert metadata["frames_decoded"] <= report["frames_processed"] + 4 + 8


# ------------------------------------------------------------------ freshest


def test_freshest_on_a_live_stream_never_infers_a_stale_frame(running: list[InferencePipeline]) -> None:
    limit = 0.25  # a histogram bound, so the pipeline's own decode latency can be checked exactly
    assert limit in LATENCY_BUCKETS
    processor = SlowRecorder(delay=0.4)  # rounds queued behind it grow older than the limit
    with http_live_stream(VTEST) as url:
        source = SourceConfig(processing_mode=ProcessingMode.FRESHEST, max_staleness=limit)
        pipeline, sink = _start(running, (url,), processor, source)
        wait_until(lambda: len(sink.frame_ids()) >= 6, timeout=30)
        ages = [f.age for f in processor.inferred]
        assert max(ages) <= limit + TOLERANCE, ages
        wait_until(lambda: _dropped(pipeline).get(DROP_STALE, 0) >= 3, timeout=10)
        report = pipeline.status_report()

    # The pipeline's own accounting: the decode part of the latency ends where inference starts.
    (histograms,) = report["metrics"]["sources"]
    decode_counts = histograms["decode"]["counts"]
    assert sum(decode_counts[LATENCY_BUCKETS.index(limit) + 1:]) == 0, decode_counts
    metadata = report["sources_metadata"][0]
    assert (metadata["processing_mode"], metadata["max_staleness"]) == ("freshest", limit)
    assert metadata["frames_dropped"][DROP_STALE] >= 3
    assert metadata["frames_dropped"]["eager_skip"] > 0  # the camera outpaces the model: only the newest is taken
    ids = sink.frame_ids()
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_freshest_without_max_staleness_processes_old_frames(running: list[InferencePipeline]) -> None:
    """The control for the test above: the same setup with no limit infers frames well past it."""
    processor = SlowRecorder(delay=0.4)
    with http_live_stream(VTEST) as url:
        pipeline, sink = _start(running, (url,), processor, SourceConfig(processing_mode=ProcessingMode.FRESHEST))
        wait_until(lambda: len(sink.frame_ids()) >= 6, timeout=30)

    assert max(f.age for f in processor.inferred) > 0.25 + TOLERANCE
    assert DROP_STALE not in _dropped(pipeline)


class _LateSource(VideoSource):
    """A real source whose frames arrive ``lag`` seconds after they were taken (a camera on a slow link)."""

    lag = 0.0

    def read(self, timeout: float) -> VideoFrame | None:
        frame = super().read(timeout)
        return None if frame is None else dataclasses.replace(frame, decoded_at=frame.decoded_at - self.lag)


def _sources_with_lags(*lags: float) -> Any:
    """A source factory: source i is an endless 100 fps capture whose frames are ``lags[i]`` seconds old."""

    def factory(reference: str | int, source_id: int, config: SourceConfig, on_update: Any) -> VideoSource:
        source = _LateSource(reference, source_id, config, on_update,
                             opener=FakeOpener(FakeCapture(grab_delay=0.01)))
        source.lag = lags[source_id]
        return source

    return factory


def test_a_round_with_some_stale_frames_keeps_only_the_fresh_ones(running: list[InferencePipeline]) -> None:
    limit = 0.3
    # Source 0's frames arrive 0.2 s old: fresh when inference starts at once, stale after waiting a round
    # in the queue (0.12 s), when source 1's frames of the same round are still fresh.
    processor = SlowRecorder(delay=0.12)
    source = SourceConfig(processing_mode=ProcessingMode.FRESHEST, max_staleness=limit)
    pipeline, sink = _start(running, ("rtsp://127.0.0.1:9/a", "rtsp://127.0.0.1:9/b"), processor, source,
                            source_factory=_sources_with_lags(0.2, 0.0))

    def partial_rounds() -> list[RoundResult]:
        return [r for r in sink.rounds if r.slots[0] is None and r.slots[1] is not None]

    wait_until(lambda: len(partial_rounds()) >= 3 and len(sink.frame_ids(0)) >= 1, timeout=30)
    pipeline.terminate()

    assert max(f.age for f in processor.inferred) <= limit + TOLERANCE
    assert any(name.startswith("inference") for name in processor.prepared_on), "the fresh frames were re-prepared"
    assert _dropped(pipeline, 0)[DROP_STALE] >= 3
    for source_id in (0, 1):
        ids = sink.frame_ids(source_id)
        assert ids == sorted(ids)


class QueuedRecorder(SlowRecorder):
    """Stands for the shared inference service: every other round waits ``queue_wait`` behind other
    pipelines' batches, then is refused with StaleFrameError if the deadline the pipeline stated passed."""

    def __init__(self, queue_wait: float) -> None:
        super().__init__(delay=0.01)
        self.queue_wait = queue_wait
        self.calls = 0
        self.deadlines: list[tuple[float | None, float]] = []  # (stated deadline, oldest decoded_at)

    def infer(self, prepared: list[VideoFrame]) -> None:
        deadline = current_deadline()
        self.deadlines.append((deadline, min(frame.decoded_at for frame in prepared)))
        self.calls += 1
        if self.calls % 2 == 0:
            time.sleep(self.queue_wait)
        if deadline is not None and time.monotonic() > deadline:
            raise StaleFrameError
        super().infer(prepared)


def test_a_round_refused_as_stale_by_the_inference_service_counts_as_stale_drops_not_errors(
        running: list[InferencePipeline]) -> None:
    limit = 0.1
    processor = QueuedRecorder(queue_wait=0.15)
    source = SourceConfig(processing_mode=ProcessingMode.FRESHEST, max_staleness=limit)
    pipeline, sink = _start(running, ("rtsp://127.0.0.1:9/a",), processor, source,
                            source_factory=_sources_with_lags(0.0))
    wait_until(lambda: len(sink.frame_ids()) >= 5 and _dropped(pipeline).get(DROP_STALE, 0) >= 5, timeout=30)
    pipeline.terminate()

    assert all(deadline == oldest + limit for deadline, oldest in processor.deadlines)
    assert max(f.age for f in processor.inferred) <= limit + TOLERANCE
    assert pipeline.status_report()["inference_errors"] == 0
    assert pipeline.state is StreamState.ENDED
    ids = sink.frame_ids()
    assert ids == sorted(ids)


class TurnTaker(SlowRecorder):
    """A processor whose model takes turns: hands out numbered turns and records which one each infer saw."""

    def __init__(self) -> None:
        super().__init__(delay=0.01)
        self.turns = 0
        self.seen: list[object | None] = []

    def take_turn(self) -> object:
        self.turns += 1
        return f"turn-{self.turns}"

    def infer(self, prepared: list[VideoFrame]) -> None:
        self.seen.append(current_turn())
        super().infer(prepared)


def test_a_pipeline_with_max_staleness_takes_a_turn_before_each_round_and_sends_it_with_the_round(
        running: list[InferencePipeline]) -> None:
    processor = TurnTaker()
    source = SourceConfig(processing_mode=ProcessingMode.FRESHEST, max_staleness=0.5)
    pipeline, sink = _start(running, ("rtsp://127.0.0.1:9/a",), processor, source,
                            source_factory=_sources_with_lags(0.0))
    wait_until(lambda: len(sink.frame_ids()) >= 10, timeout=30)
    pipeline.terminate()

    seen = processor.seen
    assert all(isinstance(turn, str) for turn in seen)
    assert len(set(seen)) == len(seen), "one turn per round"
    assert [int(str(turn).split("-")[1]) for turn in seen] == sorted(int(str(t).split("-")[1]) for t in seen)


def test_without_max_staleness_no_turn_is_taken(running: list[InferencePipeline]) -> None:
    processor = TurnTaker()
    pipeline, sink = _start(running, (BIKES,), processor, SourceConfig(processing_mode=ProcessingMode.EVERY_FRAME))
    assert pipeline.wait(timeout=60)
    assert processor.turns == 0 and set(processor.seen) == {None}
    assert sink.frame_ids() == list(range(1, 251))


def test_without_max_staleness_no_deadline_is_stated(running: list[InferencePipeline]) -> None:
    processor = QueuedRecorder(queue_wait=0.0)
    pipeline, sink = _start(running, (BIKES,), processor, SourceConfig(processing_mode=ProcessingMode.EVERY_FRAME))
    assert pipeline.wait(timeout=60)
    assert {deadline for deadline, _ in processor.deadlines} == {None}
    assert sink.frame_ids() == list(range(1, 251))


class _StalledCapture(FakeCapture):
    """A camera that delivers ``frames`` frames, then hangs in ``grab`` (connected, silent) until released."""

    def grab(self) -> bool:
        if self.frames is not None and self.grabbed >= self.frames:
            self.released.wait()
            return False
        return super().grab()


def test_a_stalled_camera_never_holds_back_the_rounds_of_the_others(running: list[InferencePipeline]) -> None:
    def factory(reference: str | int, source_id: int, config: SourceConfig, on_update: Any) -> VideoSource:
        capture = FakeCapture(grab_delay=0.01) if source_id == 0 else _StalledCapture(frames=3, grab_delay=0.01)
        return VideoSource(reference, source_id, config, on_update, opener=FakeOpener(capture))

    processor = SlowRecorder(delay=0.005)
    config = PipelineConfig(video_references=("rtsp://127.0.0.1:9/live", "rtsp://127.0.0.1:9/stalled"),
                            source=SourceConfig(processing_mode=ProcessingMode.FRESHEST),
                            batch_collection_timeout=0.05)
    sink = RoundSink()
    pipeline = InferencePipeline(config, processor, [sink], source_factory=factory)
    running.append(pipeline)
    pipeline.start()
    wait_until(lambda: len(sink.frame_ids(0)) >= 3 + 30, timeout=30)
    pipeline.terminate()

    assert len(sink.frame_ids(1)) <= 3  # the stalled camera's few frames, then nothing
    assert sum(1 for r in sink.rounds if r.slots[1] is None) >= 30, "rounds went on without it"


# ------------------------------------------------------------------ configuration


def test_the_mode_chooses_the_strategies_for_every_kind_of_source(make_source: Any, vtest: Path) -> None:
    live = "rtsp://127.0.0.1:9/fake"
    every = make_source(live, processing_mode=ProcessingMode.EVERY_FRAME).metadata()
    assert (every["buffer_filling_strategy"], every["buffer_consumption_strategy"]) == ("WAIT", "LAZY")
    assert every["processing_mode"] == "every_frame"
    freshest = make_source(vtest, processing_mode=ProcessingMode.FRESHEST, max_staleness=0.5).metadata()
    assert (freshest["buffer_filling_strategy"], freshest["buffer_consumption_strategy"]) == ("DROP_OLDEST", "EAGER")
    assert (freshest["processing_mode"], freshest["max_staleness"]) == ("freshest", 0.5)
    # Without a mode: the kind's default, named by the mode it amounts to; another pair has none.
    assert make_source(vtest).metadata()["processing_mode"] == "every_frame"
    assert make_source(live).metadata()["processing_mode"] == "freshest"
    assert make_source(live, filling=BufferFillingStrategy.DROP_LATEST).metadata()["processing_mode"] is None


@pytest.mark.parametrize(
    "config",
    [
        {"max_staleness": 1.0},
        {"processing_mode": ProcessingMode.EVERY_FRAME, "max_staleness": 1.0},
        {"processing_mode": ProcessingMode.FRESHEST, "max_staleness": 0.0},
        {"processing_mode": ProcessingMode.EVERY_FRAME, "filling": BufferFillingStrategy.DROP_OLDEST},
    ],
)
def test_the_engine_refuses_contradictory_modes(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SourceConfig(**config)
