"""A connected session with a real aiortc client on loopback: the capture, the video and data sent back, drops.

Most tests share one realtime session (``shared``); each sets the outputs it needs with a data channel
message, as a client would, and feeds rounds until their effect shows, so the order of the tests is free.
"""

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np
import pytest

from services.core.errors import OperationError
from services.worker.engine.frames import VideoFrame
from services.worker.engine.results import RoundResult, SourceResult
from services.worker.webrtc import WebRTCOptions
from services.worker.webrtc.peer_capture import PeerCapture
from services.worker.workflows import values as v
from services.worker.workflows.serialization import jpeg_base64, serialise_image
from tests.support.waiting import wait_until
from tests.support.webrtc_peer import index_of
from tests.worker.webrtc.conftest import LOOPBACK, Connected, connect

WIDTH, HEIGHT = 768, 576
Prediction = Callable[[np.ndarray, int], dict[str, Any]]


@pytest.fixture(scope="module")
def shared(vtest: list[np.ndarray]) -> Iterator[Connected]:
    pair = connect(vtest, WebRTCOptions(host_addresses=LOOPBACK, data_output="detections"))
    try:
        wait_until(pair.client.channel_open, timeout=10.0, message=lambda: "the data channel did not open")
        yield pair
    finally:
        pair.close()


def workflow_image(pixels: np.ndarray, frame_id: int) -> v.WorkflowImage:
    video = v.VideoMetadata("webrtc:peer", frame_id, datetime.now(UTC))
    return v.WorkflowImage.frame(pixels, "image", video)


def detections(image: np.ndarray, frame_id: int, tag: str = "") -> dict[str, Any]:
    height, width = image.shape[:2]
    return {"image": {"width": width, "height": height}, "frame": frame_id, "tag": tag,
            "predictions": [{"x": 10.0, "y": 20.0, "width": 4.0, "height": 6.0, "class": "person"}]}


def outputs(tag: str = "") -> Prediction:
    """A workflow's outputs for a frame, as the workflow serialises them: every round has every output."""

    def prediction(image: np.ndarray, frame_id: int) -> dict[str, Any]:
        return {
            "detections": detections(image, frame_id, tag),
            # serialise_image keeps the pixels: sent as they are
            "annotated": serialise_image(workflow_image(cv2.resize(image, (320, 240)), frame_id)),
            # a plain image dict (no pixels): its JPEG is decoded
            "crops": [{"type": "base64", "value": jpeg_base64(cv2.resize(image, (400, 304)))}],
            "count": frame_id,
        }

    return prediction


def feed(capture: PeerCapture, observer: Any, prediction: Prediction, until: Callable[[], bool],
         timeout: float = 10.0, at_least: int = 1) -> list[int]:
    """Reads frames and hands a round per frame to the observer until ``until()`` (after ``at_least`` rounds);
    the marker indices of the frames fed."""
    deadline = time.monotonic() + timeout
    fed: list[int] = []
    while len(fed) < at_least or not until():
        assert time.monotonic() < deadline, (
            f"condition not met after feeding {len(fed)} rounds")
        ok, image = capture.read()
        assert ok and image is not None, capture.end_reason
        frame_id = len(fed) + 1
        frame = VideoFrame(image, frame_id, 0, datetime.now(UTC), time.monotonic(), 15.0, False)
        result = RoundResult((SourceResult(0, frame_id, frame.frame_timestamp, frame.decoded_at,
                                           prediction(image, frame_id)),))
        observer.observe([frame], result)
        fed.append(index_of(image))
    return fed


def switch(pair: Connected, **outputs: Any) -> None:
    pair.client.send(json.dumps(outputs))


def last_sizes(pair: Connected, count: int) -> list[tuple[int, int]]:
    return pair.client.received_sizes()[-count:]


def settled_on(pair: Connected, size: tuple[int, int], count: int = 3) -> Callable[[], bool]:
    """True once the last ``count`` frames received back all have ``size``."""
    return lambda: last_sizes(pair, count) == [size] * count


# ----------------------------------------------------------------- negotiation and capture


def test_the_answer_has_a_sendrecv_video_section_and_host_candidates(shared: Connected) -> None:
    assert shared.client.pc is not None
    answer = shared.client.pc.remoteDescription.sdp
    video = answer[answer.index("m=video"):]
    video = video[:video.index("m=", 2)] if "m=" in video[2:] else video
    assert "a=sendrecv" in video
    candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(" typ host" in line and " 127.0.0.1 " in line for line in candidates)
    wait_until(lambda: shared.session.stats()["connection_state"] == "connected", timeout=10.0)
    with pytest.raises(OperationError, match="already negotiated"):
        shared.session.negotiate(answer, "offer")


def test_the_capture_yields_the_peers_frames(shared: Connected) -> None:
    capture = shared.capture
    assert capture.isOpened()
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (WIDTH, HEIGHT)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(15.0, rel=0.02)  # from the frames' timestamps
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 0
    indices = []
    for _ in range(5):
        ok, image = capture.read()
        assert ok and image is not None
        assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
        indices.append(index_of(image))
    assert all(0 < (later - earlier) % 1024 < 512 for earlier, later in itertools.pairwise(indices))
    stats = shared.session.stats()
    assert stats["frames_received"] >= 5 and stats["connection_state"] == "connected"


def test_realtime_drops_the_oldest_frames(shared: Connected) -> None:
    capture = shared.capture
    assert capture.grab()
    ok, image = capture.retrieve()
    assert ok and image is not None
    first = index_of(image)
    before = shared.session.stats()
    wait_until(lambda: shared.session.stats()["frames_received"] >= before["frames_received"] + 10, timeout=10.0)
    ok, image = capture.read()
    assert ok and image is not None
    # The inbox keeps the 2 freshest of the 10+ frames that arrived meanwhile: the next is at least 9 later.
    assert 9 <= (index_of(image) - first) % 1024 < 512
    dropped = shared.session.stats()["frames_dropped"].get("realtime", 0) - before["frames_dropped"].get("realtime", 0)
    assert dropped >= 8


# ----------------------------------------------------------------- video and data back


def test_the_input_frame_goes_back_without_a_stream_output(shared: Connected) -> None:
    switch(shared, stream_output=None)
    fed = feed(shared.capture, shared.session.observer, outputs(), until=settled_on(shared, (WIDTH, HEIGHT)),
               at_least=3)
    assert index_of(shared.client.images[-1]) in fed  # the very frame that was fed, not only its size
    assert shared.session.stats()["frames_sent"] >= 3


def test_a_named_image_output_goes_back(shared: Connected) -> None:
    switch(shared, stream_output=["annotated"])
    feed(shared.capture, shared.session.observer, outputs(), until=settled_on(shared, (320, 240)))
    # An output without an image: the input frame goes back.
    switch(shared, stream_output="detections")
    feed(shared.capture, shared.session.observer, outputs(), until=settled_on(shared, (WIDTH, HEIGHT)))


def test_an_image_without_pixels_is_decoded_from_its_jpeg(shared: Connected) -> None:
    switch(shared, stream_output="crops")
    feed(shared.capture, shared.session.observer, outputs(), until=settled_on(shared, (400, 304)))


def test_an_empty_stream_output_takes_the_first_image_output(shared: Connected) -> None:
    switch(shared, stream_output="")
    feed(shared.capture, shared.session.observer, outputs(), until=settled_on(shared, (320, 240)))


def test_the_data_output_goes_on_the_channel_once_per_round(shared: Connected) -> None:
    tag = uuid.uuid4().hex
    switch(shared, data_output="detections")
    wait_until(lambda: _tagged(shared, "warm-" + tag) or _feed_one(shared, "warm-" + tag), timeout=10.0)
    fed = feed(shared.capture, shared.session.observer, outputs(tag), until=lambda: True, at_least=5)
    wait_until(lambda: len(_tagged(shared, tag)) >= 5, timeout=10.0)
    time.sleep(0.2)  # nothing more may come for these rounds
    messages = _tagged(shared, tag)
    assert [message["frame"] for message in messages] == [1, 2, 3, 4, 5]  # one per round, in order
    assert messages[0]["predictions"][0]["class"] == "person"
    assert messages[0]["image"] == {"width": WIDTH, "height": HEIGHT}
    assert len(fed) == 5


def test_an_unknown_output_is_refused_with_an_error_message(shared: Connected) -> None:
    feed(shared.capture, shared.session.observer, outputs(), until=lambda: True)  # its outputs: the known names
    before = len(shared.client.received_messages())
    shared.client.send("not json at all")  # ignored, no answer
    shared.client.send(json.dumps({"ack": 3}))  # not a switch: ignored too
    switch(shared, data_output="no-such-output")
    wait_until(lambda: any("error" in _json(m) for m in shared.client.received_messages()[before:]), timeout=10.0)
    errors = [_json(m)["error"] for m in shared.client.received_messages()[before:] if "error" in _json(m)]
    assert len(errors) == 1 and "no-such-output" in errors[0] and "detections" in errors[0]
    # the data output stays what it was
    tag = uuid.uuid4().hex
    wait_until(lambda: _tagged(shared, tag) or _feed_one(shared, tag), timeout=10.0)


def _json(message: str) -> Mapping[str, Any]:
    try:
        value = json.loads(message)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _tagged(pair: Connected, tag: str) -> list[Mapping[str, Any]]:
    return [value for value in map(_json, pair.client.received_messages()) if value.get("tag") == tag]


def _feed_one(pair: Connected, tag: str) -> bool:
    feed(pair.capture, pair.session.observer, outputs(tag), until=lambda: True)
    return False


# ----------------------------------------------------------------- non-realtime


def test_non_realtime_keeps_every_frame_in_order_up_to_the_backlog(connected: Callable[..., Connected]) -> None:
    pair = connected(realtime=False, backlog=5)
    capture = pair.capture
    ok, image = capture.read()
    assert ok and image is not None
    first = index_of(image)
    received = pair.session.stats()["frames_received"]
    wait_until(lambda: pair.session.stats()["frames_received"] >= received + 12, timeout=10.0)
    indices = []
    for _ in range(8):  # the 5 waiting (the newest), then frames as they come: all in order, none skipped
        ok, image = capture.read()
        assert ok and image is not None
        indices.append(index_of(image))
    assert (indices[0] - first) % 1024 >= 8
    steps = [(later - earlier) % 1024 for earlier, later in itertools.pairwise(indices)]
    assert steps == [1] * 7, indices
    dropped = pair.session.stats()["frames_dropped"]
    assert dropped.get("backlog", 0) >= 7 and "realtime" not in dropped
