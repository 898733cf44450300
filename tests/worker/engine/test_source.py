import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pytest

from services.core.states import BufferConsumptionStrategy as Consumption
from services.core.states import BufferFillingStrategy as Filling
from services.core.states import StreamState
from services.worker.engine import events
from services.worker.engine.frames import VideoFrame
from services.worker.engine.source import DROP_MAX_FPS, DROP_MUTED, SourceConfig, VideoSource
from tests.support.streams import LiveStream, free_port, rtsp_live_stream
from tests.support.waiting import wait_until
from tests.worker.engine.conftest import (
    VTEST_FRAMES,
    FakeCapture,
    FakeOpener,
    Recorder,
    read_until,
    refused,
    wait_for_state,
)

MakeSource = Callable[..., VideoSource]
LIVE = "rtsp://127.0.0.1:9/fake"  # classified as a live stream; fake openers never touch it
METADATA_KEYS = {
    "source_properties", "source_reference", "buffer_size", "state", "buffer_filling_strategy",
    "buffer_consumption_strategy", "source_id", "reconnect_attempts", "offline_since",
    "frames_decoded", "frames_dropped", "processing_mode", "max_staleness",
}  # fmt: skip


def read_frames(source: VideoSource, seconds: float) -> list[VideoFrame]:
    frames = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = source.read(timeout=0.1)
        if frame is not None:
            frames.append(frame)
    return frames


def terminate_quickly(source: VideoSource) -> None:
    started = time.monotonic()
    source.terminate(timeout=2.0)
    assert time.monotonic() - started <= 2.2
    assert source.state is StreamState.ENDED
    assert source.finished


# ------------------------------------------------------------------ real file


def test_file_yields_every_frame_in_order_then_ends(
    make_source: MakeSource, recorder: Recorder, vtest: Path
) -> None:
    source = make_source(vtest, source_id=3)
    source.start()
    frames = []
    while not source.finished:
        frame = source.read(timeout=1.0)
        if frame is not None:
            frames.append(frame)
    assert [f.frame_id for f in frames] == list(range(1, VTEST_FRAMES + 1))
    assert {f.source_id for f in frames} == {3}
    assert frames[0].image.shape == (576, 768, 3)
    assert frames[0].frame_timestamp.tzinfo is UTC
    assert source.state is StreamState.ENDED
    assert source.read(timeout=0.5) is None
    assert recorder.states() == ["INITIALISING", "RUNNING", "ENDED"]
    assert len(recorder.of_type(events.VIDEO_CONSUMPTION_STARTED)) == 1
    assert len(recorder.of_type(events.VIDEO_CONSUMPTION_FINISHED)) == 1
    meta = source.metadata()
    assert set(meta) == METADATA_KEYS
    assert meta["source_properties"]["total_frames"] == VTEST_FRAMES
    assert meta["frames_decoded"] == VTEST_FRAMES
    assert meta["frames_dropped"] == {}
    assert (meta["buffer_filling_strategy"], meta["buffer_consumption_strategy"]) == ("WAIT", "LAZY")
    assert source.stats().frames_decoded == VTEST_FRAMES


def test_max_fps_paces_a_file_without_dropping(make_source: MakeSource, vtest: Path) -> None:
    source = make_source(vtest, max_fps=10)
    source.start()
    frames = read_frames(source, 1.5)
    assert 8 <= len(frames) <= 20, len(frames)  # unpaced, this machine decodes hundreds per second
    assert [f.frame_id for f in frames] == list(range(1, len(frames) + 1))
    assert source.stats().frames_dropped == {}


def test_a_waiting_file_decodes_only_a_few_frames_ahead_whatever_the_buffer_size(
        make_source: MakeSource, vtest: Path) -> None:
    from services.worker.engine.source import FILE_READ_AHEAD

    source = make_source(vtest, buffer_size=64)
    source.start()
    wait_until(lambda: source.stats().frames_decoded >= FILE_READ_AHEAD, timeout=10)
    time.sleep(0.5)  # nobody reads: decoding would run on up to 64 frames ahead if nothing held it back
    assert source.stats().frames_decoded <= FILE_READ_AHEAD + 1  # + the frame waiting to be put
    frames = [source.read(timeout=5) for _ in range(20)]  # and nothing is lost
    assert [frame.frame_id for frame in frames if frame is not None] == list(range(1, 21))


def test_missing_file_is_an_error(make_source: MakeSource, recorder: Recorder, tmp_path: Path) -> None:
    source = make_source(tmp_path / "missing.mp4")
    source.start()
    wait_for_state(source, StreamState.ERROR)
    assert source.finished
    assert source.read(timeout=1) is None
    (error,) = recorder.of_type(events.SOURCE_ERROR)
    assert error.severity == logging.ERROR
    assert error.payload["error_type"] == "SourceConnectionError"
    assert recorder.states() == ["INITIALISING", "ERROR"]


def test_corrupt_file_is_an_error(make_source: MakeSource, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    source = make_source(corrupt)
    source.start()
    wait_for_state(source, StreamState.ERROR)


# ------------------------------------------------------------------ real live streams


def test_http_stream_drops_reconnects_and_comes_back(
    make_source: MakeSource, recorder: Recorder, vtest: Path
) -> None:
    with LiveStream.http(vtest) as camera:
        source = make_source(camera.url)
        source.start()
        before = read_until(source, 5)
        assert source.state is StreamState.RUNNING
        assert source.metadata()["source_properties"]["is_reconnectable"] is True

        camera.stop()
        wait_for_state(source, StreamState.RESTARTING)
        wait_until(lambda: source.metadata()["reconnect_attempts"] >= 3, timeout=10)
        meta = source.metadata()
        assert meta["offline_since"] is not None
        assert recorder.of_type(events.SOURCE_ERROR)
        assert all(e.severity == logging.WARNING for e in recorder.of_type(events.SOURCE_ERROR))
        assert not source.finished

        camera.start()
        wait_for_state(source, StreamState.RUNNING)
        after = read_until(source, 5)
        assert after[0].frame_id > before[-1].frame_id
        assert source.metadata()["offline_since"] is None

        camera.stop()
        wait_for_state(source, StreamState.RESTARTING)
        terminate_quickly(source)
    assert recorder.states()[-2:] == ["TERMINATING", "ENDED"]
    assert "ERROR" not in recorder.states()


def test_unreachable_stream_keeps_restarting_until_terminated(
    make_source: MakeSource, recorder: Recorder
) -> None:
    source = make_source(f"http://127.0.0.1:{free_port()}/live.ts")
    source.start()
    wait_for_state(source, StreamState.RESTARTING)
    wait_until(lambda: source.stats().reconnects >= 3, timeout=10)
    assert source.state is StreamState.RESTARTING
    assert source.metadata()["source_properties"] is None
    terminate_quickly(source)
    assert "ERROR" not in recorder.states()


def test_credentials_never_leak(
    make_source: MakeSource, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    source = make_source(f"rtsp://user:secret@127.0.0.1:{port}/x")
    source.start()
    wait_until(lambda: len(recorder.of_type(events.SOURCE_ERROR)) >= 2, timeout=10)
    meta = source.metadata()
    source.terminate()
    assert meta["source_reference"] == f"rtsp://***:***@127.0.0.1:{port}/x"
    assert "secret" not in str(meta)
    assert "secret" not in str([u.to_dict() for u in recorder.updates])
    assert "secret" not in caplog.text
    assert f"127.0.0.1:{port}" in caplog.text, "the log does name the (redacted) source"


def test_rtsp_camera(make_source: MakeSource) -> None:
    with rtsp_live_stream() as url:
        source = make_source(url, open_timeout=8.0)
        source.start()
        frames = read_until(source, 5, timeout=20)
        assert frames[0].image.shape == (240, 320, 3)
        assert source.state is StreamState.RUNNING
        terminate_quickly(source)


# ------------------------------------------------------------------ fakes: strategies and states


def test_defaults_do_not_lose_data_and_explicit_values_win(make_source: MakeSource, vtest: Path) -> None:
    assert make_source(vtest).metadata()["buffer_filling_strategy"] == "WAIT"
    live = make_source(LIVE).metadata()
    assert (live["buffer_filling_strategy"], live["buffer_consumption_strategy"]) == ("DROP_OLDEST", "EAGER")
    chosen = make_source(LIVE, filling=Filling.ADAPTIVE_DROP_LATEST, consumption=Consumption.LAZY).metadata()
    assert (chosen["buffer_filling_strategy"], chosen["buffer_consumption_strategy"]) == (
        "ADAPTIVE_DROP_LATEST",
        "LAZY",
    )
    assert make_source(0).is_file is False and make_source(vtest).is_file is True


def test_config_rejects_unknown_properties_and_nonsense() -> None:
    with pytest.raises(ValueError, match="frame_width"):
        SourceConfig(properties={"width": 640})
    with pytest.raises(ValueError):
        SourceConfig(buffer_size=0)
    with pytest.raises(ValueError):
        SourceConfig(max_fps=0)


def test_start_spawns_a_named_daemon_thread_once(make_source: MakeSource) -> None:
    source = make_source(LIVE, opener=FakeOpener(FakeCapture(grab_delay=0.01)), source_id=7)
    source.start()
    (thread,) = [t for t in threading.enumerate() if t.name == "source-7"]
    assert thread.daemon
    with pytest.raises(RuntimeError):
        source.start()


def test_live_max_fps_drops_surplus_frames_without_retrieving_them(make_source: MakeSource) -> None:
    capture = FakeCapture(grab_delay=0.005)  # ~200 fps camera
    source = make_source(LIVE, opener=FakeOpener(capture), max_fps=10, consumption=Consumption.LAZY)
    source.start()
    frames = read_frames(source, 1.0)
    assert 5 <= len(frames) <= 15, len(frames)
    assert source.stats().frames_dropped[DROP_MAX_FPS] > 50
    assert capture.retrieved < capture.grabbed / 5


def test_frame_ids_keep_increasing_across_reconnects(make_source: MakeSource, recorder: Recorder) -> None:
    opener = FakeOpener(FakeCapture(frames=5), refused(), FakeCapture(frames=5), FakeCapture(grab_delay=0.01))
    source = make_source(LIVE, opener=opener, consumption=Consumption.LAZY)
    source.start()
    frames = read_until(source, 15)
    assert [f.frame_id for f in frames[:15]] == list(range(1, 16))
    assert source.stats().reconnects == 3
    assert recorder.states()[:5] == ["INITIALISING", "RUNNING", "RESTARTING", "RUNNING", "RESTARTING"]


def test_mute_discards_and_counts_then_resume_continues(make_source: MakeSource, recorder: Recorder) -> None:
    capture = FakeCapture(grab_delay=0.005)
    source = make_source(LIVE, opener=FakeOpener(capture), consumption=Consumption.LAZY)
    source.start()
    read_until(source, 3)
    source.mute()
    assert source.state is StreamState.MUTED
    time.sleep(0.1)
    while source.read(timeout=0) is not None:  # frames decoded before the mute
        pass
    decoded = source.stats().frames_decoded
    assert source.read(timeout=0.3) is None
    assert source.stats().frames_decoded > decoded, "a muted source keeps decoding"
    assert source.stats().frames_dropped[DROP_MUTED] > 0
    source.resume()
    assert source.state is StreamState.RUNNING  # type: ignore[comparison-overlap]  # mypy narrowed it
    assert read_until(source, 3)[0].frame_id > decoded
    assert recorder.states()[-2:] == ["MUTED", "RUNNING"]


def test_status_handler_failures_do_not_kill_the_source() -> None:
    def broken(update: events.StatusUpdate) -> None:
        raise RuntimeError("boom")

    source = VideoSource(LIVE, 0, SourceConfig(), broken, opener=FakeOpener(FakeCapture(grab_delay=0.01)))
    source.start()
    assert source.read(timeout=5) is not None
    source.terminate()
    assert source.state is StreamState.ENDED


# ------------------------------------------------------------------ terminate from every state


def test_terminate_before_start_and_twice(make_source: MakeSource, recorder: Recorder) -> None:
    source = make_source(LIVE, opener=FakeOpener(FakeCapture()))
    terminate_quickly(source)
    terminate_quickly(source)
    assert recorder.states() == ["TERMINATING", "ENDED"]


def test_terminate_while_opening_blocks(make_source: MakeSource) -> None:
    gate = threading.Event()
    capture = FakeCapture()
    source = make_source(LIVE, opener=FakeOpener(capture, gate=gate))
    source.start()
    time.sleep(0.05)
    assert source.state is StreamState.INITIALISING
    terminate_quickly(source)
    gate.set()  # OpenCV returns at last: the thread must release what it opened
    assert capture.released.wait(2)


def test_a_blocked_open_that_fails_after_terminate_reports_nothing(make_source: MakeSource, recorder: Recorder) -> None:
    """A camera that never answers: terminate returns while OpenCV is still opening. When the open
    fails at last, the terminated source must not go offline, count a reconnect attempt or emit
    anything (its last status would claim it is reconnecting)."""
    gate = threading.Event()
    opener = FakeOpener(refused(), gate=gate)
    source = make_source(LIVE, opener=opener)
    source.start()
    time.sleep(0.05)
    (decode_thread,) = [thread for thread in threading.enumerate() if thread.name == "source-0"]
    terminate_quickly(source)
    before = recorder.updates
    gate.set()  # OpenCV's open fails now, after the terminate
    decode_thread.join(2)
    assert not decode_thread.is_alive()
    assert [u.event_type for u in recorder.updates[len(before):]] == []
    meta = source.metadata()
    assert (meta["state"], meta["offline_since"], meta["reconnect_attempts"]) == ("ENDED", None, 0)
    assert opener.calls == 1


def test_terminate_while_running_releases_the_capture(make_source: MakeSource) -> None:
    capture = FakeCapture(grab_delay=0.005)
    source = make_source(LIVE, opener=FakeOpener(capture))
    source.start()
    wait_for_state(source, StreamState.RUNNING)
    terminate_quickly(source)
    assert capture.released.wait(1)


def test_terminate_while_muted(make_source: MakeSource) -> None:
    source = make_source(LIVE, opener=FakeOpener(FakeCapture(grab_delay=0.005)))
    source.start()
    wait_for_state(source, StreamState.RUNNING)
    source.mute()
    terminate_quickly(source)


def test_terminate_while_sleeping_in_a_long_backoff(make_source: MakeSource) -> None:
    from services.worker.engine.reconnect import BackoffPolicy, Jitter

    slow = BackoffPolicy(initial=30, cap=60, jitter=Jitter.NONE)
    source = make_source(LIVE, opener=FakeOpener(refused()), backoff=slow)
    source.start()
    wait_for_state(source, StreamState.RESTARTING)
    terminate_quickly(source)


def test_terminate_while_the_producer_waits_for_room(make_source: MakeSource) -> None:
    capture = FakeCapture(frames=100)
    source = make_source("some.mp4", opener=FakeOpener(capture), buffer_size=2)
    source.start()
    wait_until(lambda: capture.grabbed == 3, timeout=10)  # 2 buffered + 1 waiting for room
    terminate_quickly(source)
    assert capture.released.wait(1)
    assert source.read(timeout=0) is None
