"""The worker's preview: annotated, downscaled, JPEG-encoded, rate limited and fenced by the task's ownership."""

import base64
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from services.core import keys
from services.core.states import StreamState
from services.worker.detection.detector import DetectionParams, Detector
from services.worker.detection.processor import DetectionProcessor
from services.worker.engine.frames import VideoFrame
from services.worker.engine.pipeline import InferencePipeline, PipelineConfig
from services.worker.engine.results import RoundResult, SourceResult
from services.worker.engine.sinks.redis_stream import RedisStreamSink
from services.worker.models.build import build_default_model
from services.worker.preview import MAX_WIDTH, PALETTE, PreviewPublisher, annotate, render
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
VTEST = ROOT / "data" / "media" / "vtest.avi"  # 768x576
BIKES = ROOT / "data" / "media" / "bikes.mp4"  # 640x272, 250 frames
PIPELINE = "preview-test"
OWNER = "worker@test:1"


def _frame(path: Path = VTEST, index: int = 10) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = capture.read()
    finally:
        capture.release()
    assert ok, f"cannot read {path}: run `python -m tools.fetch_media`"
    return np.asarray(image)


def _box(x: float, y: float, width: float, height: float, class_id: int = 0, name: str = "person") -> dict[str, Any]:
    return {"x": x, "y": y, "width": width, "height": height, "confidence": 0.87, "class": name,
            "class_id": class_id, "detection_id": "d"}


def _round(images: Sequence[np.ndarray], predictions: Sequence[dict[str, Any]]) -> tuple[list[VideoFrame], RoundResult]:
    now = datetime.now(UTC)
    frames = [VideoFrame(image, 1, source_id, now, 0.0) for source_id, image in enumerate(images)]
    slots = tuple(SourceResult(frame.source_id, 1, now, 0.0, prediction)
                  for frame, prediction in zip(frames, predictions, strict=True))
    return frames, RoundResult(slots)


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    return np.asarray(image)


# ----------------------------------------------------------------- drawing and encoding


def test_annotate_draws_the_boxes_on_a_downscaled_copy() -> None:
    image = np.full((576, 768, 3), 128, np.uint8)
    original = image.copy()
    # A box centred at (384, 288), 192x144 source pixels: at 480/768 = 0.625 it spans x 180..300, y 135..225.
    canvas = annotate(image, {"predictions": [_box(384, 288, 192, 144, class_id=2, name="car")]})
    assert canvas.shape == (360, 480, 3)
    np.testing.assert_array_equal(image, original)  # the frame itself is never drawn on
    colour = np.array(PALETTE[2])
    for y, x in ((180, 180), (180, 300), (225, 240)):  # left, right and bottom edges
        assert np.abs(canvas[y, x].astype(int) - colour).max() <= 40, (y, x, canvas[y, x])
    assert (canvas[180, 240] == 128).all()  # the inside is left alone
    # The label band above the box, in the class colour, with white text on it.
    band = canvas[122:133, 182:230]
    assert (np.abs(band.astype(int) - colour).max(axis=2) <= 40).mean() > 0.5
    assert (band.min(axis=2) > 200).any()


def test_annotate_keeps_small_frames_and_ignores_malformed_predictions() -> None:
    image = np.zeros((120, 160, 3), np.uint8)
    canvas = annotate(image, {"predictions": [{"x": "?"}, {}, _box(80, 60, 40, 40)]})
    assert canvas.shape == image.shape and canvas is not image
    assert canvas.any()  # the valid box was drawn
    assert not image.any()


def test_a_workflow_output_shows_its_image_output_else_the_detections_it_holds() -> None:
    frame = np.full((576, 768, 3), 128, np.uint8)
    drawn = np.zeros((576, 768, 3), np.uint8)
    drawn[100:200, 100:200] = (0, 0, 255)  # what the workflow's visualisation steps drew
    ok, jpeg = cv2.imencode(".png", drawn)
    image_output = {"type": "base64", "value": base64.b64encode(jpeg.tobytes()).decode(), "video_metadata": {}}
    detections = {"image": {"width": 768, "height": 576},
                  "predictions": [_box(384, 288, 192, 144, class_id=2, name="car")]}

    shown = annotate(frame, {"count_in": 3, "annotated": image_output, "tracked": detections})
    boxes = annotate(frame, {"count_in": 3, "tracked": detections})

    assert ok and shown.shape == (360, 480, 3)
    np.testing.assert_array_equal(shown, cv2.resize(drawn, (480, 360), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(boxes, annotate(frame, detections))  # found inside the workflow's outputs
    assert not np.array_equal(boxes, cv2.resize(frame, (480, 360), interpolation=cv2.INTER_AREA))


def test_render_a_real_frame_is_a_small_jpeg_of_the_same_aspect() -> None:
    image = _frame()
    boxes = [_box(100 + 60 * i, 300, 40, 110) for i in range(10)]
    jpeg = render([annotate(image, {"predictions": boxes})])
    decoded = _decode(jpeg)
    assert decoded.shape == (360, 480, 3)  # 768x576 -> 480 wide, 4:3 kept
    assert len(jpeg) < 60_000


def test_render_tiles_several_sources_within_the_width() -> None:
    tiles = [annotate(_frame(), {"predictions": []}, MAX_WIDTH // 2, f"source {i}") for i in range(3)]
    decoded = _decode(render(tiles))
    assert decoded.shape[1] == MAX_WIDTH
    assert decoded.shape[0] == 2 * 180  # a 2x2 grid of 240x180 tiles, the fourth one empty
    with pytest.raises(ValueError):
        render([])


# ----------------------------------------------------------------- the publisher


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def record(redis_client: redis.Redis) -> redis.Redis:
    """The task's record, and someone watching its preview (as the HTTP API marks it)."""
    redis_client.hset(keys.pipeline_record(PIPELINE), mapping={"epoch": "3", "owner": OWNER})
    _watch(redis_client)
    return redis_client


def _watch(client: redis.Redis) -> None:
    client.set(keys.pipeline_preview_watched(PIPELINE), "1", ex=keys.PREVIEW_WATCH_TTL)


@pytest.fixture
def publishers() -> Iterator[list[PreviewPublisher]]:
    made: list[PreviewPublisher] = []
    yield made
    for publisher in made:
        publisher.close()


def _publisher(client: redis.Redis, made: list[PreviewPublisher], clock: Clock, epoch: int = 3,
               owner: str = OWNER) -> PreviewPublisher:
    publisher = PreviewPublisher(client, PIPELINE, epoch, owner, interval=1.0, clock=clock)
    made.append(publisher)
    return publisher


def test_one_preview_per_interval_however_many_rounds(record: redis.Redis, publishers: list[PreviewPublisher]) -> None:
    clock = Clock()
    publisher = _publisher(record, publishers, clock)
    frames, result = _round([_frame()], [{"predictions": [_box(300, 300, 50, 120)]}])
    for _ in range(50):
        publisher.observe(frames, result)
    wait_until(lambda: publisher.stats().published == 1, timeout=10)
    assert publisher.stats().taken == 1
    clock.now += 0.5
    for _ in range(50):
        publisher.observe(frames, result)
    assert publisher.stats().taken == 1  # not due yet: nothing was even kept
    clock.now += 0.5
    publisher.observe(frames, result)
    wait_until(lambda: publisher.stats().published == 2, timeout=10)
    stats = publisher.stats()
    assert stats.taken == 2 and stats.skipped == 0 and 0 < stats.last_bytes < 60_000 and stats.mean_ms > 0

    jpeg = record.get(keys.pipeline_preview(PIPELINE))
    assert isinstance(jpeg, bytes) and len(jpeg) == stats.last_bytes
    assert _decode(jpeg).shape == (360, 480, 3)
    assert 0 < record.ttl(keys.pipeline_preview(PIPELINE)) <= keys.PREVIEW_TTL

    publisher.close(timeout=10)  # the pipeline ended: its preview goes with it
    assert record.get(keys.pipeline_preview(PIPELINE)) is None


def test_a_superseded_task_writes_no_preview(record: redis.Redis, publishers: list[PreviewPublisher]) -> None:
    clock = Clock()
    publisher = _publisher(record, publishers, clock, epoch=2)  # the record is at epoch 3
    frames, result = _round([_frame()], [{"predictions": []}])
    publisher.observe(frames, result)
    wait_until(lambda: publisher.stats().skipped == 1, timeout=10)
    assert record.get(keys.pipeline_preview(PIPELINE)) is None
    clock.now += 5
    publisher.observe(frames, result)
    assert publisher.stats().taken == 1  # fenced out: it stopped taking rounds

    # The owner's preview is not removed by the stale task either.
    record.set(keys.pipeline_preview(PIPELINE), b"owner's")
    publisher.close(timeout=10)
    assert record.get(keys.pipeline_preview(PIPELINE)) == b"owner's"


def test_a_missing_record_skips_the_preview_and_the_next_one_is_tried(
    redis_client: redis.Redis, publishers: list[PreviewPublisher]
) -> None:
    clock = Clock()
    _watch(redis_client)
    publisher = _publisher(redis_client, publishers, clock)
    frames, result = _round([_frame()], [{"predictions": []}])
    publisher.observe(frames, result)
    wait_until(lambda: publisher.stats().skipped == 1, timeout=10)
    assert redis_client.get(keys.pipeline_preview(PIPELINE)) is None
    redis_client.hset(keys.pipeline_record(PIPELINE), mapping={"epoch": "3", "owner": OWNER})  # restored
    clock.now += 1
    publisher.observe(frames, result)
    wait_until(lambda: publisher.stats().published == 1, timeout=10)


def test_several_sources_share_one_preview(record: redis.Redis, publishers: list[PreviewPublisher]) -> None:
    clock = Clock()
    publisher = _publisher(record, publishers, clock)
    image = _frame()
    frames, result = _round([image, image], [{"predictions": []}, {"predictions": [_box(300, 300, 80, 80)]}])
    publisher.observe(frames, result)
    wait_until(lambda: publisher.stats().published == 1, timeout=10)
    jpeg = record.get(keys.pipeline_preview(PIPELINE))
    assert isinstance(jpeg, bytes)
    assert _decode(jpeg).shape == (180, 480, 3)  # two 240x180 tiles side by side


def test_nothing_is_drawn_while_nobody_watches_and_the_grid_keeps_every_source(
    redis_client: redis.Redis, publishers: list[PreviewPublisher]
) -> None:
    redis_client.hset(keys.pipeline_record(PIPELINE), mapping={"epoch": "3", "owner": OWNER})
    clock = Clock()
    publisher = _publisher(redis_client, publishers, clock)
    image = _frame()
    both = _round([image, image], [{"predictions": []}, {"predictions": [_box(300, 300, 80, 80)]}])
    publisher.observe(*both)
    wait_until(lambda: publisher.stats().unwatched == 1, timeout=10)
    clock.now += 5
    publisher.observe(*both)
    wait_until(lambda: publisher.stats().unwatched == 2, timeout=10)
    stats = publisher.stats()
    assert stats.taken == 2 and stats.published == stats.skipped == 0 and stats.mean_ms == 0  # never drawn
    assert redis_client.get(keys.pipeline_preview(PIPELINE)) is None

    _watch(redis_client)  # someone looks: the next due round is published
    clock.now += 1
    first_only = _round([image], [{"predictions": []}])
    publisher.observe(*first_only)
    wait_until(lambda: publisher.stats().published == 1, timeout=10)
    jpeg = redis_client.get(keys.pipeline_preview(PIPELINE))
    assert isinstance(jpeg, bytes)
    assert _decode(jpeg).shape == (180, 480, 3)  # both sources' tiles: the unwatched rounds were remembered
    assert publisher.stats().unwatched == 2


# ----------------------------------------------------------------- in the engine


class Observer:
    def __init__(self, fail: bool = False) -> None:
        self.rounds = 0
        self.closed = threading.Event()
        self.fail = fail
        self.sizes: set[tuple[int, ...]] = set()

    def observe(self, frames: Sequence[VideoFrame], result: RoundResult) -> None:
        self.rounds += 1
        self.sizes.update(frame.image.shape for frame in frames)
        assert [slot.source_id for slot in result.present()] == [frame.source_id for frame in frames]
        if self.fail:
            raise RuntimeError("observer bug")

    def close(self) -> None:
        self.closed.set()


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(build_default_model(ROOT / "data" / "models", ROOT / "data" / "downloads"), intra_op_threads=2)


def test_the_pipeline_shows_every_round_to_its_observers_and_a_preview_is_published(
    detector: Detector, record: redis.Redis
) -> None:
    watching, failing = Observer(), Observer(fail=True)
    preview = PreviewPublisher(record, PIPELINE, 3, OWNER, interval=0.2)
    config = PipelineConfig(video_references=(str(BIKES),))
    processor = DetectionProcessor(detector, DetectionParams(confidence=0.3))
    pipeline = InferencePipeline(config, processor, [RedisStreamSink(record, PIPELINE, maxlen=1000)],
                                 observers=[failing, watching, preview])
    published: list[bytes] = []

    def seen() -> bool:
        jpeg = record.get(keys.pipeline_preview(PIPELINE))
        if isinstance(jpeg, bytes):
            published.append(jpeg)
        return bool(published) and watching.rounds >= 10

    pipeline.start()
    try:
        wait_until(seen, timeout=60, interval=0.05)
        assert pipeline.state is StreamState.RUNNING  # a failing observer stops nothing
    finally:
        pipeline.terminate()
    assert watching.closed.is_set() and failing.closed.is_set()
    assert watching.rounds == failing.rounds >= 10 and watching.sizes == {(272, 640, 3)}
    assert _decode(published[0]).shape == (204, 480, 3)  # 640x272 -> 480 wide
    stats = preview.stats()
    assert 1 <= stats.published <= stats.taken <= watching.rounds  # the rate itself: see the fake-clock test
    wait_until(lambda: record.get(keys.pipeline_preview(PIPELINE)) is None, timeout=10)  # closed with the pipeline
