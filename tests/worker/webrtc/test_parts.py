"""The parts without a peer: options, the output choice and switches, the inbox, images, the engine's webrtc kind."""

import asyncio
import fractions
import json
import threading
import time
from datetime import UTC, datetime

import aioice.ice
import cv2
import numpy as np
import pytest
from av import VideoFrame as AVVideoFrame

from services.worker.engine.capture import (
    CaptureOptions,
    SourceConnectionError,
    SourceKind,
    classify,
    open_capture,
    read_properties,
    unsafe_reason,
)
from services.worker.webrtc import IceServer, WebRTCOptions
from services.worker.webrtc.inbox import FrameInbox
from services.worker.webrtc.network import SessionLoop, install_address_hook
from services.worker.webrtc.outputs import data_message, image_of, parse_switch
from services.worker.webrtc.peer_capture import PeerCapture
from services.worker.workflows import values as v
from services.worker.workflows.serialization import SerialisedImage, jpeg_base64, serialise, serialise_image

# ----------------------------------------------------------------- options


@pytest.mark.parametrize(("options", "message"), [
    ({"peer_timeout": 0}, "peer_timeout"),
    ({"backlog": 0}, "backlog"),
    ({"declared_fps": -1.0}, "declared_fps"),
    ({"host_addresses": ("eth0",)}, "not an IP address"),
    ({"port_range": (5000, 4000)}, "port_range"),
    ({"port_range": (0, 10)}, "port_range"),
])
def test_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebRTCOptions(**options)  # type: ignore[arg-type]


def test_ice_servers_are_checked_and_their_credential_is_never_shown() -> None:
    with pytest.raises(ValueError, match="invalid ICE server URL"):
        IceServer(("http://example.com",))
    with pytest.raises(ValueError, match="needs a username and a credential"):
        IceServer(("turn:turn.example.com:3478",))
    with pytest.raises(ValueError, match="tuple"):
        IceServer("stun:stun.example.com")  # type: ignore[arg-type]
    server = IceServer(("turn:turn.example.com:3478?transport=udp",), "user", "s3cret-pass")
    assert "s3cret-pass" not in repr(server) and "s3cret-pass" not in repr(WebRTCOptions(ice_servers=(server,)))


# ----------------------------------------------------------------- outputs


def image_dict(pixels: np.ndarray, keep_pixels: bool) -> dict[str, object]:
    fields: dict[str, object] = {"type": "base64", "value": jpeg_base64(pixels), "video_metadata": {}}
    return SerialisedImage(fields, pixels) if keep_pixels else fields


def test_the_image_to_send_is_the_named_outputs_first_image() -> None:
    big, small = np.full((60, 80, 3), 200, np.uint8), np.full((30, 40, 3), 50, np.uint8)
    prediction = {"detections": {"predictions": []}, "annotated": image_dict(big, True),
                  "crops": [{"nested": image_dict(small, False)}]}
    assert image_of(prediction, "annotated") is big  # its pixels, no JPEG decoded
    decoded = image_of(prediction, "crops")
    assert decoded is not None and decoded.shape == (30, 40, 3) and abs(float(decoded.mean()) - 50) < 3
    assert image_of(prediction, "") is big  # the first image output
    assert image_of(prediction, "detections") is None  # no image: the input frame goes
    assert image_of(prediction, "missing") is None
    assert image_of(prediction, None) is None
    assert image_of({"bad": {"type": "base64", "value": "not base64!"}}, "bad") is None


def test_the_data_message_is_the_outputs_value_as_json() -> None:
    prediction = {"count": 3, "detections": {"predictions": [{"class": "car"}]}, "nothing": None}
    assert json.loads(data_message(prediction, "detections") or "") == prediction["detections"]
    assert data_message(prediction, "count") == "3"
    assert data_message(prediction, "nothing") == "null"
    assert data_message(prediction, "missing") is None
    assert data_message(prediction, None) is None


def test_switch_messages() -> None:
    known = frozenset({"annotated", "detections"})
    switch = parse_switch(json.dumps({"stream_output": ["annotated", "x"], "data_output": "detections"}), known)
    assert switch is not None and switch.changes == {"stream_output": "annotated", "data_output": "detections"}
    switch = parse_switch(json.dumps({"stream_output": [], "data_output": ""}), known)
    assert switch is not None and switch.changes == {"stream_output": None, "data_output": None}
    switch = parse_switch(json.dumps({"stream_output": "", "data_output": "nope"}).encode(), known)
    assert switch is not None and switch.changes == {"stream_output": ""}
    assert len(switch.errors) == 1 and "'nope'" in switch.errors[0] and "annotated, detections" in switch.errors[0]
    switch = parse_switch(json.dumps({"stream_output": 3}), None)
    assert switch is not None and not switch.changes and "must be an output name" in switch.errors[0]
    switch = parse_switch(json.dumps({"data_output": "anything"}), None)  # names not known yet: accepted
    assert switch is not None and switch.changes == {"data_output": "anything"}
    for ignored in ("not json", json.dumps([1, 2]), json.dumps({"ack": 1}), b"\xff\xfe"):
        assert parse_switch(ignored, known) is None


def test_serialise_image_keeps_the_pixels_outside_the_json() -> None:
    pixels = np.zeros((4, 6, 3), np.uint8)
    image = v.WorkflowImage.frame(pixels, "image", v.VideoMetadata("0", 1, datetime.now(UTC)))
    serialised = serialise({"out": image})["out"]
    assert isinstance(serialised, SerialisedImage) and serialised.pixels is pixels
    assert set(json.loads(json.dumps(serialised))) == {"type", "value", "video_metadata"}
    assert serialised == serialise_image(image)  # equal as a dict: the pixels are not a key


# ----------------------------------------------------------------- the inbox and the capture over it


def av_frame(width: int = 64, height: int = 48, seconds: float = 0.0) -> AVVideoFrame:
    frame = AVVideoFrame.from_ndarray(np.full((height, width, 3), 90, np.uint8), format="bgr24")
    frame.pts, frame.time_base = round(seconds * 90_000), fractions.Fraction(1, 90_000)
    return frame


def test_a_full_inbox_drops_its_oldest_frame_under_its_cause() -> None:
    inbox = FrameInbox(2, "backlog", peer_timeout=5.0)
    frames = [av_frame(seconds=i / 10) for i in range(5)]
    for frame in frames:
        inbox.put(frame, float(frame.time))
    assert inbox.dropped() == {"backlog": 3} and inbox.received == 5
    assert inbox.measured_fps() == pytest.approx(10.0)
    inbox.end("the peer closed the connection")
    inbox.end("a later reason")
    # what was waiting is still taken, then the end
    assert [inbox.take(lambda: False), inbox.take(lambda: False)] == frames[3:]
    assert inbox.take(lambda: False) is None and inbox.end_reason == "the peer closed the connection"


def test_take_ends_after_peer_timeout_without_a_frame_and_close_ends_at_once() -> None:
    inbox = FrameInbox(4, "realtime", peer_timeout=0.2)
    inbox.put(av_frame(), 0.0)
    assert inbox.take(lambda: False) is not None
    start = time.monotonic()
    assert inbox.take(lambda: False) is None
    assert 0.15 <= time.monotonic() - start < 2.0 and inbox.end_reason == "no video from the peer for 0.2 s"
    closing = FrameInbox(4, "realtime", peer_timeout=30.0)
    closing.put(av_frame(), 0.0)
    threading.Timer(0.1, closing.close).start()
    assert closing.take(lambda: False) is not None  # the waiting frame
    assert closing.take(lambda: False) is None  # woken by close, long before peer_timeout
    assert closing.end_reason is None and closing.closed


def test_the_capture_converts_only_what_is_retrieved() -> None:
    inbox = FrameInbox(8, "realtime", peer_timeout=0.2)
    inbox.put(av_frame(64, 48), 0.0)
    inbox.put(av_frame(64, 48), 0.1)
    capture = PeerCapture(inbox, 10.0)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (64, 48)
    assert capture.get(cv2.CAP_PROP_FPS) == 10.0 and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 0
    properties = read_properties(capture, SourceKind.WEBRTC)
    assert (properties.is_reconnectable, properties.is_file, properties.total_frames) == (False, False, None)
    assert capture.grab()
    ok, image = capture.retrieve()
    assert ok and image is not None and image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert capture.read()[0]
    assert not capture.grab() and capture.end_reason == "no video from the peer for 0.2 s"
    capture.release()
    assert not capture.isOpened() and capture.retrieve() == (False, None)


# ----------------------------------------------------------------- the engine's webrtc kind


def test_webrtc_references_are_live_not_reconnectable_and_never_reach_ffmpeg() -> None:
    assert classify("webrtc:peer") is SourceKind.WEBRTC
    assert SourceKind.WEBRTC.is_live and not SourceKind.WEBRTC.is_reconnectable
    assert SourceKind.STREAM.is_reconnectable and SourceKind.CAMERA.is_reconnectable
    assert not SourceKind.FILE.is_reconnectable
    assert unsafe_reason("webrtc:peer") is not None
    with pytest.raises(SourceConnectionError, match="only by its session"):
        open_capture("webrtc:peer", CaptureOptions())


# ----------------------------------------------------------------- host addresses


def test_host_addresses_apply_only_on_a_sessions_loop() -> None:
    install_address_hook()

    async def ask() -> list[str]:
        return list(aioice.ice.get_host_addresses(True, True))

    plain = asyncio.run(ask())  # any other loop: aioice's own answer (no loopback)
    assert "127.0.0.1" not in plain
    for configured, expected in ((("127.0.0.1",), ["127.0.0.1"]), ((), plain or ["127.0.0.1"])):
        loop = SessionLoop(configured)
        try:
            assert loop.run_until_complete(ask()) == expected
        finally:
            loop.close()
