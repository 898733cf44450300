"""How a session ends: the peer closing, the peer going silent, ``close``; and a VideoSource over its capture."""

import time
from collections.abc import Callable

import numpy as np
import pytest

from services.core.states import StreamState
from services.worker.engine.capture import CaptureOptions, SourceConnectionError
from services.worker.engine.events import SOURCE_ERROR, VIDEO_CONSUMPTION_FINISHED
from services.worker.engine.source import SourceConfig, VideoSource
from services.worker.webrtc import WebRTCOptions, WebRTCSession
from tests.support.waiting import wait_until
from tests.worker.engine.conftest import Recorder
from tests.worker.webrtc.conftest import LOOPBACK, Connected, connect, thread_names, udp_sockets

PEER_CLOSED = "the peer closed the connection"


def grab_until_false(pair: Connected, limit: float) -> float:
    """Grabs until ``grab`` returns False; the seconds that took (fails after ``limit``)."""
    start = time.monotonic()
    while pair.capture.grab():
        assert time.monotonic() - start < limit, "grab kept returning frames"
    return time.monotonic() - start


def test_the_peer_closing_ends_the_capture_with_the_reason(connected: Callable[..., Connected]) -> None:
    pair = connected(peer_timeout=5.0)
    for _ in range(3):
        assert pair.capture.read()[0]
    pair.client.close_peer()
    grab_until_false(pair, limit=5.0)
    assert pair.capture.end_reason == PEER_CLOSED
    assert pair.session.end_reason == PEER_CLOSED
    assert pair.session.stats()["connection_state"] == "closed"
    assert not pair.capture.grab()  # and it stays ended


def test_a_silent_peer_ends_the_capture_after_peer_timeout(connected: Callable[..., Connected]) -> None:
    pair = connected(peer_timeout=1.0)
    assert pair.capture.read()[0]
    pair.client.pause()
    waited = grab_until_false(pair, limit=5.0)
    assert waited <= 1.0 + 1.5  # a bound, not a speed: peer_timeout after the last frame, plus a margin
    assert pair.session.end_reason == "no video from the peer for 1 s"
    assert pair.session.stats()["connection_state"] == "connected"  # the peer itself is still there


def test_close_leaves_no_thread_and_no_socket(vtest: list[np.ndarray]) -> None:
    threads, sockets = thread_names(), udp_sockets()
    pair = connect(vtest, WebRTCOptions(host_addresses=LOOPBACK))
    assert pair.capture.read()[0]
    assert any(name.startswith("webrtc-") for name in thread_names())
    assert udp_sockets() > sockets
    pair.session.close()
    assert pair.session.stats()["connection_state"] == "closed"
    assert not pair.capture.grab() and pair.capture.end_reason == "the WebRTC session was closed"
    assert pair.session.end_reason is None  # this side closed: not a peer-side end
    pair.session.close()  # idempotent
    pair.client.close()
    wait_until(lambda: thread_names() <= threads and udp_sockets() == sockets, timeout=5.0,
               message=lambda: f"left: {thread_names() - threads}, {udp_sockets() - sockets} UDP sockets")


# ----------------------------------------------------------------- a VideoSource over the capture


def webrtc_source(session: WebRTCSession, recorder: Recorder) -> VideoSource:
    return VideoSource("webrtc:peer", 0, SourceConfig(buffer_size=4), recorder, opener=session.open_capture)


def test_a_source_ends_instead_of_restarting_when_the_peer_closes(connected: Callable[..., Connected]) -> None:
    pair = connected(peer_timeout=5.0, declared_fps=15.0)
    recorder = Recorder()
    source = webrtc_source(pair.session, recorder)
    source.start()
    try:
        frame = source.read(timeout=10.0)
        assert frame is not None and frame.image.shape == (576, 768, 3) and frame.fps == 15.0
        properties = source.metadata()["source_properties"]
        assert properties["is_reconnectable"] is False and properties["is_file"] is False
        assert (properties["width"], properties["height"], properties["fps"]) == (768, 576, 15.0)
        pair.client.close_peer()
        wait_until(lambda: source.state is StreamState.ENDED, timeout=10.0)
        assert StreamState.RESTARTING.value not in recorder.states()
        assert recorder.states()[-1] == StreamState.ENDED.value
        finished = recorder.of_type(VIDEO_CONSUMPTION_FINISHED)
        assert [update.payload for update in finished] == [{"source_id": 0, "reason": PEER_CLOSED}]
        assert not recorder.of_type(SOURCE_ERROR)
    finally:
        source.terminate()


def test_terminating_a_source_wakes_its_wait_for_a_silent_peer(connected: Callable[..., Connected]) -> None:
    pair = connected(peer_timeout=30.0, declared_fps=15.0)
    source = webrtc_source(pair.session, Recorder())
    source.start()
    assert source.read(timeout=10.0) is not None
    pair.client.pause()  # the source thread now waits in grab, up to peer_timeout
    time.sleep(0.3)
    source.terminate(timeout=2.0)
    assert "source-0" not in thread_names()  # the wait was interrupted, not left for 30 s
    assert source.state is StreamState.ENDED


def test_a_source_whose_peer_never_sends_goes_error() -> None:
    session = WebRTCSession(WebRTCOptions(host_addresses=LOOPBACK, peer_timeout=0.5))
    try:
        with pytest.raises(SourceConnectionError, match="not been negotiated"):
            session.open_capture("webrtc:peer", CaptureOptions())
        recorder = Recorder()
        source = webrtc_source(session, recorder)
        source.start()
        wait_until(lambda: source.state is StreamState.ERROR, timeout=5.0)
        assert StreamState.RESTARTING.value not in recorder.states()
        assert "not been negotiated" in recorder.of_type(SOURCE_ERROR)[0].payload["error_message"]
        source.terminate()
    finally:
        session.close()
