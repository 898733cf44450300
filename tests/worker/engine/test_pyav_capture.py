"""Decode cost follows max_fps: the PyAV reader on real encoded clips and live streams.

The unit tests read clips (encoded here from vtest.avi by ffmpeg) with the reader and the source's
pacing rule replayed on stream time, so what is taken and decoded is exact, never timing; every
image taken is compared with OpenCV's decode of the same frame. The live tests go through
``VideoSource`` and ``InferencePipeline`` on streams served by ffmpeg over HTTP.
"""

import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from services.core import keys
from services.core.results import decode_entry
from services.core.states import StreamState
from services.worker.detection.detector import Detector
from services.worker.detection.processor import DetectionProcessor
from services.worker.engine.capture import CaptureOptions, DecodePath, SourceConnectionError, open_capture
from services.worker.engine.pipeline import InferencePipeline, PipelineConfig
from services.worker.engine.pyav_capture import PyAVCapture, open_pyav
from services.worker.engine.sinks.redis_stream import RedisStreamSink
from services.worker.engine.source import DROP_DECODE_ERROR, DROP_MAX_FPS, SourceConfig, VideoSource
from tests.support.streams import LiveStream, free_port
from tests.support.waiting import wait_until
from tests.worker.engine.conftest import FAST_BACKOFF, MEDIA, read_until

FPS = 10  # vtest.avi's rate, kept by every clip
FRAMES = 120
SIZE = (384, 288)
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-sc_threshold", "0"]
CLIPS = {  # name -> ffmpeg output arguments
    "mjpeg.avi": ["-c:v", "mjpeg", "-q:v", "5"],
    "gop10.ts": [*X264, "-bf", "0", "-g", "10", "-keyint_min", "10"],  # a keyframe every second
    "gop40.ts": [*X264, "-bf", "0", "-g", "40", "-keyint_min", "40"],  # every 4 s
    # A keyframe every second for 6 s, then every 4 s (a camera whose GOP changes).
    "grows.ts": [*X264, "-bf", "0", "-g", "40", "-keyint_min", "40", "-forced-idr", "1",
                 "-force_key_frames", "expr:lt(n,60)*not(mod(n,10))"],
    "bframes.ts": [*X264, "-bf", "2", "-g", "10", "-keyint_min", "10"],
    # No IDR after the first: recovery points every second, which MPEG-TS flags as keyframes.
    "refresh.ts": [*X264, "-bf", "0", "-g", "10", "-intra-refresh", "1"],
    "gop10.mp4": [*X264, "-bf", "0", "-g", "10"],
}  # fmt: skip
SAME = 1.0  # mean absolute difference (0-255) below which two decodes are the same image

Reference = Callable[[Path], list[np.ndarray]]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    made = {}
    for name, arguments in CLIPS.items():
        made[name] = folder / name
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(MEDIA / "vtest.avi"), "-frames:v",
             str(FRAMES), "-vf", f"scale={SIZE[0]}:{SIZE[1]}", "-an", *arguments, str(made[name])],
            check=True,
        )  # fmt: skip
    return made


@pytest.fixture(scope="module")
def reference() -> Reference:
    """Every frame of a clip as OpenCV decodes it (cached per clip)."""
    decoded: dict[Path, list[np.ndarray]] = {}

    def frames(clip: Path) -> list[np.ndarray]:
        if clip not in decoded:
            capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
            images = []
            while (read := capture.read())[0]:
                images.append(read[1])
            capture.release()
            decoded[clip] = images
        return decoded[clip]

    return frames


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


class Paced:
    """A clip read through the reader, taking frames as ``VideoSource`` does for a live stream
    whose frames arrive at the clip's rate: due every 1/max_fps s, a frame the reader cannot
    retrieve alone skipped, up to ``slack()`` early. ``early``: the frames of every other second
    arrive that much ahead of their time (network jitter)."""

    def __init__(self, clip: Path, max_fps: float, early: float = 0.0) -> None:
        capture = open_pyav(str(clip), CaptureOptions(), 1.0 / max_fps)
        assert isinstance(capture, PyAVCapture), f"PyAV must read {clip.name}"
        self.capture = capture
        self.taken: dict[int, np.ndarray] = {}
        self.paths: list[DecodePath] = []  # by frame index
        self.decoded_before: list[int] = []  # frames_decoded after each grab, before any retrieve
        interval, index = 1.0 / max_fps, 0
        next_due: float | None = None  # the first frame is due at once
        try:
            while capture.grab():
                self.paths.append(capture.decode_path())
                self.decoded_before.append(capture.frames_decoded)
                now = index / FPS - (early if (index // FPS) % 2 else 0.0)
                due = next_due is None or now >= next_due - capture.slack() - 1e-9
                if due and capture.retrievable():
                    next_due = max((now if next_due is None else next_due) + interval, now)
                    ok, image = capture.retrieve()
                    assert ok and image is not None, f"frame {index} could not be retrieved"
                    self.taken[index] = image
                index += 1
        finally:
            capture.release()
        self.grabbed = index

    def first(self, path: DecodePath) -> int:
        return self.paths.index(path)


def assert_same_images(paced: Paced, frames: list[np.ndarray]) -> None:
    assert len(frames) == paced.grabbed == FRAMES
    for index, image in paced.taken.items():
        assert image.shape == frames[index].shape
        assert difference(image, frames[index]) < SAME, f"frame {index} differs from OpenCV's"


def every_second(frames: int = FRAMES) -> list[int]:
    return list(range(0, frames, FPS))


# ------------------------------------------------------------------ the reader, frame by frame


def test_intra_only_decodes_only_the_frames_taken(clips: dict[str, Path], reference: Reference) -> None:
    paced = Paced(clips["mjpeg.avi"], max_fps=1)
    assert set(paced.paths) == {DecodePath.PYAV_INTRA}
    assert sorted(paced.taken) == every_second()
    assert paced.capture.frames_decoded == len(paced.taken) == FRAMES // FPS  # 12 decodes for 120 frames
    assert_same_images(paced, reference(clips["mjpeg.avi"]))


def test_intra_only_at_a_higher_rate(clips: dict[str, Path], reference: Reference) -> None:
    paced = Paced(clips["mjpeg.avi"], max_fps=5)
    assert sorted(paced.taken) == list(range(0, FRAMES, 2))
    assert paced.capture.frames_decoded == FRAMES // 2
    assert_same_images(paced, reference(clips["mjpeg.avi"]))


def test_keyframes_only_once_the_gop_fits_max_fps(clips: dict[str, Path], reference: Reference) -> None:
    paced = Paced(clips["gop10.ts"], max_fps=1)
    switch = paced.first(DecodePath.PYAV_KEYFRAMES)
    # Everything is decoded while four keyframes (three intervals) are observed, from the second packet
    # (and the few packets read meanwhile by a decoder with frame threads).
    assert switch == 40
    assert set(paced.paths[switch:]) == {DecodePath.PYAV_KEYFRAMES}
    assert sorted(paced.taken) == every_second()  # as many frames as max_fps asks, none late
    assert switch + 1 <= paced.decoded_before[switch] < 2 * switch
    after = [index for index in paced.taken if index > switch]
    assert paced.capture.frames_decoded == paced.decoded_before[switch] + len(after)  # then only those taken
    before = paced.decoded_before  # a keyframe is decoded when retrieved, not when grabbed
    assert before[49] == before[50] and before[51] == before[50] + 1
    assert_same_images(paced, reference(clips["gop10.ts"]))


def test_keyframes_a_little_early_are_still_taken(clips: dict[str, Path]) -> None:
    """Keyframes once per interval, every other one a millisecond early: without the slack, each
    early one would be skipped and the next taken a whole interval later, at half the rate."""
    paced = Paced(clips["gop10.ts"], max_fps=1, early=0.001)
    switch = paced.first(DecodePath.PYAV_KEYFRAMES)
    assert len(paced.taken) == FRAMES // FPS  # before the switch, frame 11 stands in for frame 10
    assert [index for index in sorted(paced.taken) if index > switch] == every_second()[switch // FPS + 1:]
    after = [index for index in paced.taken if index > switch]
    assert paced.capture.frames_decoded == paced.decoded_before[switch] + len(after)


def test_keyframes_more_frequent_than_max_fps_are_skipped_undecoded(clips: dict[str, Path]) -> None:
    paced = Paced(clips["gop10.ts"], max_fps=0.5)
    switch = paced.first(DecodePath.PYAV_KEYFRAMES)
    assert sorted(paced.taken) == list(range(0, FRAMES, 2 * FPS))
    after = [index for index in paced.taken if index > switch]
    assert paced.capture.frames_decoded == paced.decoded_before[switch] + len(after)


def test_a_gop_longer_than_the_interval_decodes_everything(clips: dict[str, Path], reference: Reference) -> None:
    paced = Paced(clips["gop40.ts"], max_fps=1)
    assert set(paced.paths) == {DecodePath.PYAV_ALL}
    assert sorted(paced.taken) == every_second()
    assert paced.capture.frames_decoded == FRAMES
    assert_same_images(paced, reference(clips["gop40.ts"]))


def test_max_fps_above_the_keyframe_rate_decodes_everything(clips: dict[str, Path], reference: Reference) -> None:
    paced = Paced(clips["gop10.ts"], max_fps=2)
    assert set(paced.paths) == {DecodePath.PYAV_ALL}
    assert sorted(paced.taken) == list(range(0, FRAMES, 5))
    assert paced.capture.frames_decoded == FRAMES
    assert_same_images(paced, reference(clips["gop10.ts"]))


def test_a_growing_gop_goes_back_to_decoding_everything_without_missing_a_frame(
    clips: dict[str, Path], reference: Reference
) -> None:
    paced = Paced(clips["grows.ts"], max_fps=1)
    switch = paced.first(DecodePath.PYAV_KEYFRAMES)
    back = paced.paths.index(DecodePath.PYAV_ALL, switch)
    assert (switch, back) == (40, 60)  # the keyframe due at 6 s never came: frame 60 is replayed from 50
    assert set(paced.paths[back:]) == {DecodePath.PYAV_ALL}
    assert sorted(paced.taken) == every_second()  # frame 60 decoded with its references, taken on time
    assert_same_images(paced, reference(clips["grows.ts"]))


def test_b_frames_are_never_decoded_keyframes_only(clips: dict[str, Path], reference: Reference) -> None:
    paced = Paced(clips["bframes.ts"], max_fps=1)
    assert set(paced.paths) == {DecodePath.PYAV_ALL}  # reordered timestamps: no keyframes-only
    assert paced.capture.frames_decoded == FRAMES
    assert sorted(paced.taken) == every_second()
    assert_same_images(paced, reference(clips["bframes.ts"]))


def test_intra_refresh_recovery_points_are_not_keyframes(clips: dict[str, Path], reference: Reference) -> None:
    paced = Paced(clips["refresh.ts"], max_fps=1)
    assert set(paced.paths) == {DecodePath.PYAV_ALL}  # flagged key by MPEG-TS, decoded as P-frames
    assert paced.capture.frames_decoded == FRAMES
    assert_same_images(paced, reference(clips["refresh.ts"]))


def test_properties_are_opencvs(clips: dict[str, Path]) -> None:
    capture = open_pyav(str(clips["gop10.ts"]), CaptureOptions(), 1.0)
    assert capture is not None
    opencv = cv2.VideoCapture(str(clips["gop10.ts"]), cv2.CAP_FFMPEG)
    try:
        for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS):
            assert capture.get(prop) == opencv.get(prop)
        assert capture.isOpened()
    finally:
        capture.release()
        opencv.release()
    assert not capture.isOpened()
    assert capture.grab() is False


def test_mp4_is_left_to_opencv(clips: dict[str, Path]) -> None:
    assert open_pyav(str(clips["gop10.mp4"]), CaptureOptions(), 1.0) is None  # OpenCV applies its rotation


def test_unreachable_stream_is_a_redacted_connection_error() -> None:
    url = f"http://admin:hunter2@127.0.0.1:{free_port()}/live.ts"
    with pytest.raises(SourceConnectionError) as error:
        open_capture(url, CaptureOptions(open_timeout=2, read_timeout=2, max_fps=1))
    assert "hunter2" not in str(error.value) and error.value.__cause__ is None
    assert error.value.__suppress_context__
    assert "127.0.0.1" in str(error.value)


# ------------------------------------------------------------------ live streams through the source


def serve(clip: Path, muxer: str) -> LiveStream:
    """An endless real-time stream of ``clip`` (packets copied, not re-encoded) for one client."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/live"
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
               "-c", "copy", "-f", muxer, "-listen", "1", url]  # fmt: skip
    return LiveStream(command, port, url)


@pytest.fixture
def sources() -> Iterator[list[VideoSource]]:
    made: list[VideoSource] = []
    yield made
    for source in made:
        source.terminate()


def closest(image: np.ndarray, frames: list[np.ndarray]) -> tuple[int, float]:
    """The index of the clip frame ``image`` shows, and how far it is from OpenCV's decode of it."""
    distances = [difference(image, frame) for frame in frames]
    best = int(np.argmin(distances))
    return best, distances[best]


def test_live_mjpeg_decodes_only_what_max_fps_takes(
    clips: dict[str, Path], reference: Reference, sources: list[VideoSource], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    updates: list[object] = []
    with serve(clips["mjpeg.avi"], "mpjpeg") as stream:
        url = stream.url.replace("http://", "http://viewer:s3cret@")
        source = VideoSource(url, 0, SourceConfig(max_fps=2), updates.append)
        sources.append(source)
        source.start()
        frames = read_until(source, timeout=30, count=6)
        source.terminate()
    stats = source.stats()
    assert stats.decode_path is DecodePath.PYAV_INTRA
    taken = stats.frames_decoded - stats.frames_dropped[DROP_MAX_FPS]
    assert stats.decoder_frames == taken - stats.frames_dropped.get(DROP_DECODE_ERROR, 0)
    assert stats.decoder_frames * 3 < stats.frames_decoded  # a 10 fps stream taken at 2 fps
    ids = [frame.frame_id for frame in frames]
    assert ids == sorted(set(ids))
    for frame in frames:
        assert closest(frame.image, reference(clips["mjpeg.avi"]))[1] < SAME
    meta = source.metadata()
    assert meta["source_properties"]["width"] == SIZE[0] and meta["state"] == StreamState.ENDED.value
    assert "s3cret" not in json.dumps(meta) + caplog.text + repr(updates)


def test_live_h264_decodes_keyframes_only_when_the_gop_allows(
    clips: dict[str, Path], reference: Reference, sources: list[VideoSource]
) -> None:
    with serve(clips["gop10.ts"], "mpegts") as stream:
        source = VideoSource(stream.url, 0, SourceConfig(max_fps=1), lambda update: None)
        sources.append(source)
        source.start()
        wait_until(lambda: source.stats().decode_path is DecodePath.PYAV_KEYFRAMES, timeout=30)
        switched = source.stats()
        frames = read_until(source, timeout=30, count=4)
        later = source.stats()
    assert later.decode_path is DecodePath.PYAV_KEYFRAMES
    # After the switch: nine frames in ten grabbed, never decoded.
    assert later.decoder_frames - switched.decoder_frames < (later.frames_decoded - switched.frames_decoded) / 2
    clip = reference(clips["gop10.ts"])
    for frame in frames[1:]:  # the first may have been read before the switch
        index, distance = closest(frame.image, clip)
        assert distance < SAME and index % 10 == 0, f"frame {frame.frame_id} is clip frame {index} ({distance:.2f})"


def test_live_h264_with_a_long_gop_decodes_everything(clips: dict[str, Path], sources: list[VideoSource]) -> None:
    with serve(clips["gop40.ts"], "mpegts") as stream:
        source = VideoSource(stream.url, 0, SourceConfig(max_fps=1), lambda update: None)
        sources.append(source)
        source.start()
        read_until(source, timeout=30, count=3)
        source.terminate()
    stats = source.stats()
    assert stats.decode_path is DecodePath.PYAV_ALL
    assert stats.decoder_frames == stats.frames_decoded


def test_live_pyav_source_reconnects_and_keeps_counting(clips: dict[str, Path], sources: list[VideoSource]) -> None:
    with serve(clips["mjpeg.avi"], "mpjpeg") as stream:
        source = VideoSource(stream.url, 0, SourceConfig(max_fps=5, backoff=FAST_BACKOFF, read_timeout=2),
                             lambda update: None)
        sources.append(source)
        source.start()
        before = read_until(source, timeout=30, count=3)
        stream.stop()
        wait_until(lambda: source.state is StreamState.RESTARTING, timeout=15)
        stream.start()
        wait_until(lambda: source.state is StreamState.RUNNING, timeout=15)
        after = read_until(source, timeout=30, count=3)
    assert source.stats().reconnects >= 1 and source.stats().decode_path is DecodePath.PYAV_INTRA
    assert after[-1].frame_id > before[-1].frame_id


@pytest.mark.parametrize("config", [{}, {"max_fps": 1.0, "properties": {"buffersize": 1}}])
def test_live_sources_without_max_fps_or_with_properties_stay_on_opencv(
    clips: dict[str, Path], sources: list[VideoSource], config: dict[str, object]
) -> None:
    with serve(clips["mjpeg.avi"], "mpjpeg") as stream:
        source = VideoSource(stream.url, 0, SourceConfig(**config), lambda update: None)  # type: ignore[arg-type]  # kwargs
        sources.append(source)
        source.start()
        read_until(source, timeout=30, count=2)
        stats = source.stats()
    assert stats.decode_path is DecodePath.OPENCV
    assert stats.decoder_frames == stats.frames_decoded  # OpenCV's grab decodes every frame


def test_files_stay_on_opencv_and_deliver_every_frame(clips: dict[str, Path], sources: list[VideoSource]) -> None:
    source = VideoSource(str(clips["mjpeg.avi"]), 0, SourceConfig(max_fps=100), lambda update: None)
    sources.append(source)
    source.start()
    frames = read_until(source, timeout=30, count=FRAMES)
    wait_until(lambda: source.finished, timeout=10)
    assert [frame.frame_id for frame in frames] == list(range(1, FRAMES + 1))
    assert source.stats().decode_path is DecodePath.OPENCV and source.stats().decoder_frames == FRAMES


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def detector(default_model) -> Detector:  # type: ignore[no-untyped-def]
    return Detector(default_model, intra_op_threads=2)


def test_pipeline_at_max_fps_1_processes_keyframes_decoded_alone(
    clips: dict[str, Path], detector: Detector, redis_client: redis.Redis, running: list[InferencePipeline]
) -> None:
    with serve(clips["gop10.ts"], "mpegts") as stream:
        config = PipelineConfig(video_references=(stream.url,), source=SourceConfig(max_fps=1))
        pipeline = InferencePipeline(config, DetectionProcessor(detector),
                                     [RedisStreamSink(redis_client, "keyframes", maxlen=100)])
        running.append(pipeline)
        pipeline.start()
        source = pipeline.sources[0]
        wait_until(lambda: source.stats().decode_path is DecodePath.PYAV_KEYFRAMES, timeout=30)
        switched = source.stats()
        processed = pipeline.watchdog.frames_processed
        wait_until(lambda: pipeline.watchdog.frames_processed >= processed + 4, timeout=30)
        stats = source.stats()
        report = pipeline.status_report()
    grabbed, decoded = stats.frames_decoded - switched.frames_decoded, stats.decoder_frames - switched.decoder_frames
    assert decoded < grabbed / 2, f"{decoded} frames decoded for {grabbed} grabbed"
    assert stats.decode_path is DecodePath.PYAV_KEYFRAMES
    raw: list[tuple[bytes, dict[bytes, bytes]]] = redis_client.xrange(keys.results_stream("keyframes"))  # type: ignore[assignment]
    entries: list[tuple[Any, Any]] = [decode_entry(fields) for _, fields in raw]
    frame_ids = [metadata[0]["frame_id"] for _, metadata in entries]
    assert len(frame_ids) >= processed + 4 and frame_ids == sorted(frame_ids)
    assert any(prediction["class"] == "person" for outputs, _ in entries for prediction in outputs[0]["predictions"])
    assert entries[-1][0][0]["image"] == {"width": SIZE[0], "height": SIZE[1]}
    assert report["sources_metadata"][0]["frames_decoded"] >= stats.frames_decoded  # ids count every grab


def test_the_decoder_has_as_many_threads_as_configured(clips: dict[str, Path]) -> None:
    for threads in (1, 3):
        capture = open_pyav(str(clips["gop10.ts"]), CaptureOptions(decode_threads=threads), 1.0)
        assert capture is not None
        try:
            assert capture._context.thread_count == threads
        finally:
            capture.release()
    automatic = open_pyav(str(clips["gop10.ts"]), CaptureOptions(decode_threads=0), 1.0)
    assert automatic is not None
    try:
        assert automatic._context.thread_count == 0  # FFmpeg's own count, decided when it opens the codec
    finally:
        automatic.release()
