import os
import time
from pathlib import Path

import cv2
import pytest

from services.worker.engine.capture import (
    CaptureOptions,
    SourceConnectionError,
    SourceKind,
    classify,
    open_capture,
    property_ids,
    read_properties,
)
from tests.support.streams import free_port


@pytest.mark.parametrize(
    ("reference", "kind"),
    [
        (0, SourceKind.CAMERA),
        (2, SourceKind.CAMERA),
        ("rtsp://cam/1", SourceKind.STREAM),
        ("RTSPS://cam/1", SourceKind.STREAM),
        ("http://host/live.ts", SourceKind.STREAM),
        ("https://host/live.m3u8", SourceKind.STREAM),
        ("rtmp://host/app", SourceKind.STREAM),
        ("udp://0.0.0.0:1234", SourceKind.STREAM),
        ("tcp://host:5000", SourceKind.STREAM),
        ("video.mp4", SourceKind.FILE),
        ("/data/video.mp4", SourceKind.FILE),
        ("file:///data/video.mp4", SourceKind.FILE),
        ("C:\\videos\\a.mp4", SourceKind.FILE),
    ],
)
def test_classify(reference: str | int, kind: SourceKind) -> None:
    assert classify(reference) is kind


def test_property_names_map_to_opencv_ids() -> None:
    assert property_ids({"frame_width": 1280, "FPS": 30}) == {
        cv2.CAP_PROP_FRAME_WIDTH: 1280,
        cv2.CAP_PROP_FPS: 30,
    }


def test_unknown_property_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="frame_widht") as error:
        property_ids({"frame_widht": 1280})
    assert "frame_width" in str(error.value)
    assert "buffersize" in str(error.value)


def test_opens_a_file_and_reads_its_properties(vtest: Path) -> None:
    capture = open_capture(str(vtest), CaptureOptions())
    try:
        props = read_properties(capture, SourceKind.FILE)
    finally:
        capture.release()
    assert (props.width, props.height, props.total_frames, props.fps) == (768, 576, 795, 10.0)
    assert props.is_file and not props.is_reconnectable
    assert props.timestamp_created.tzinfo is not None
    assert set(props.to_dict()) == {
        "width", "height", "total_frames", "is_file", "fps", "is_reconnectable", "timestamp_created"
    }  # fmt: skip


def test_applies_video_source_properties(vtest: Path) -> None:
    capture = open_capture(str(vtest), CaptureOptions(properties={"pos_frames": 100}))
    try:
        assert capture.get(cv2.CAP_PROP_POS_FRAMES) == 100
    finally:
        capture.release()


def test_missing_file_is_a_connection_error(tmp_path: Path) -> None:
    with pytest.raises(SourceConnectionError):
        open_capture(str(tmp_path / "nope.mp4"), CaptureOptions())


def test_unreachable_stream_fails_fast_and_redacted() -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/stream"
    started = time.monotonic()
    with pytest.raises(SourceConnectionError) as error:
        open_capture(url, CaptureOptions(open_timeout=2, read_timeout=2))
    assert time.monotonic() - started < 3
    assert "hunter2" not in str(error.value)
    assert "127.0.0.1" in str(error.value)


def _threads() -> set[str]:
    return {task.name for task in Path("/proc/self/task").iterdir()}


def _decoding_threads(vtest: Path, decode_threads: int) -> int:
    """Threads started while a capture with ``decode_threads`` opens and decodes its first frames (new
    thread ids: a thread of another test that ends meanwhile does not count)."""
    before = _threads()
    capture = open_capture(str(vtest), CaptureOptions(decode_threads=decode_threads))
    try:
        for _ in range(5):
            assert capture.read()[0]
        return len(_threads() - before)
    finally:
        capture.release()


def test_a_source_decodes_on_as_many_threads_as_configured(vtest: Path) -> None:
    _decoding_threads(vtest, 1)  # anything OpenCV starts once per process, started before counting
    assert _decoding_threads(vtest, 1) == 0  # FFmpeg decodes on the reading thread
    assert _decoding_threads(vtest, 2) >= 1  # FFmpeg's frame / slice threads
    if (os.cpu_count() or 1) > 1:
        assert _decoding_threads(vtest, 0) >= 1  # 0, the default: FFmpeg's automatic count, one per core
