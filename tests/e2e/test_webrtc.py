"""WebRTC pipelines through the whole system: a real aiortc peer (tests/support/webrtc_peer.py) streams
vtest.avi's frames to the TCP manager's WEBRTC command; a Celery worker answers the offer, runs the
user's workflow (detect -> track -> count at a line -> draw) on the peer's video with the real model, and
sends the annotated frames back on the same video transceiver and the outputs on the data channel.
STATUS, MUTE/RESUME, CONSUME_RESULT and TERMINATE work as on any pipeline; the peer closing or going
silent ends the pipeline with the reason; bad offers are refused and leave nothing behind."""

import json
import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.core import keys
from services.manager.reaper import NOT_MOVABLE
from tests.manager.fakes import call
from tests.support import faults
from tests.support import workflow_definitions as wf
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.waiting import settled, wait_until
from tests.support.webrtc_peer import ClientPeer, index_of, mark, vtest_frames

VTEST = Path("data/media/vtest.avi")
LINE = [[0, 300], [768, 300]]
PORTS = (47100, 47199)  # WORKER_WEBRTC_PORT_RANGE of the test worker


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        running.start_manager()
        running.start_worker_with_env("cpu", "pipelines.cpu", concurrency=2,
                                      env={"WORKER_WEBRTC_PORT_RANGE": f"{PORTS[0]}-{PORTS[1]}"})
        yield running


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return vtest_frames(60)


def offer_of(peer: ClientPeer, **options: Any) -> dict[str, str]:
    return {"type": "offer", "sdp": peer.offer(**options)}


def messages(peer: ClientPeer) -> list[Any]:
    return [json.loads(message) for message in peer.received_messages()]


def webrtc_request(offer: dict[str, str], **fields: Any) -> dict[str, Any]:
    payload = wf.init("", wf.counting(LINE))  # video_reference is ignored for WebRTC (the peer's track is the video)
    payload.update(type="webrtc", webrtc_offer=offer, webrtc_realtime_processing=False, webrtc_peer_timeout=5,
                   stream_output=["annotated"], data_output=["tracked"])
    payload.update(fields)
    return payload


def start(stack: Stack, peer: ClientPeer, **fields: Any) -> str:
    reply = call(stack.port, webrtc_request(offer_of(peer), **fields))
    assert reply["response"]["status"] == "success", reply
    assert reply["response"]["type"] == "answer" and reply["response"]["sdp"].startswith("v=0")
    peer.accept(reply["response"])
    return str(reply["pipeline_id"])


def status(stack: Stack, pipeline_id: str) -> dict[str, Any]:
    reply = call(stack.port, {"type": "status", "pipeline_id": pipeline_id})
    assert reply["response"]["status"] == "success", reply
    return dict(reply["response"]["report"])


def listed(stack: Stack) -> list[str]:
    return list(call(stack.port, {"type": "list_pipelines"})["response"]["pipelines"])


def final_record(stack: Stack, pipeline_id: str, timeout: float) -> dict[str, str]:
    """The record once the pipeline left the list (its state is final)."""
    wait_until(lambda: pipeline_id not in listed(stack), timeout=timeout, interval=0.2)
    raw = stack.client.hgetall(keys.pipeline_record(pipeline_id))
    return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]


def test_a_peer_streams_its_video_and_gets_annotated_frames_and_data_back(
        stack: Stack, frames: list[np.ndarray]) -> None:
    with closing(ClientPeer(frames, fps=15)) as peer:
        reply = call(stack.port, webrtc_request(offer_of(peer)))
        answer = reply["response"]
        ports = [int(port) for port in re.findall(r"a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host", answer["sdp"])]
        assert ports and all(PORTS[0] <= port <= PORTS[1] for port in ports), ports
        peer.accept(answer)
        pipeline_id = reply["pipeline_id"]

        wait_until(lambda: len(peer.received_sizes()) >= 20 and len(peer.received_messages()) >= 20, timeout=60)
        # The annotated frames: the workflow's image output, the peer's frame size, in the order sent.
        assert set(peer.received_sizes()) == {(768, 576)}
        indices = [index for index, _ in peer.received_arrivals()]
        assert indices == sorted(indices) and len(set(indices)) == len(indices)  # every frame, in order
        last = peer.images[-1]
        assert not np.array_equal(last[100:], frames[index_of(last) % len(frames)][100:])  # boxes drawn on it
        # The data channel: the "tracked" output of each frame, as the reference serialises detections.
        received = messages(peer)
        assert set(received[-1]) >= {"image", "predictions"} and received[-1]["image"] == {"width": 768, "height": 576}
        assert any(prediction["class"] == "person" and "tracker_id" in prediction
                   for item in received for prediction in item["predictions"])

        report = status(stack, pipeline_id)
        assert report["pipeline_state"] == "RUNNING"
        assert report["webrtc"]["frames_received"] > 0 and report["webrtc"]["frames_sent"] > 0
        assert report["sources_metadata"][0]["source_properties"]["is_reconnectable"] is False
        consumed = call(stack.port, {"type": "consume_result", "pipeline_id": pipeline_id,
                                     "excluded_fields": ["annotated"]})
        assert consumed["response"]["status"] == "success" and consumed["response"]["outputs"]

        assert call(stack.port, {"type": "mute", "pipeline_id": pipeline_id})["response"]["status"] == "success"
        # The frames in flight when the mute landed still come back (how many depends on the host's
        # speed); then nothing more is processed or sent while muted: the peer sends 15 frames a second.
        muted_at = settled(lambda: len(peer.received_sizes()), quiet=2.0, timeout=30)
        assert call(stack.port, {"type": "resume", "pipeline_id": pipeline_id})["response"]["status"] == "success"
        wait_until(lambda: len(peer.received_sizes()) > muted_at + 10, timeout=30)

        assert call(stack.port, {"type": "terminate", "pipeline_id": pipeline_id})["response"]["status"] == "success"
        record = final_record(stack, pipeline_id, timeout=20)
        assert record["state"] == "TERMINATED"
        wait_until(lambda: peer.connection_state in ("closed", "failed"), timeout=20)


def test_the_input_frame_comes_back_when_no_stream_output_is_named(stack: Stack, frames: list[np.ndarray]) -> None:
    with closing(ClientPeer(frames, fps=15)) as peer:
        pipeline_id = start(stack, peer, stream_output=[], data_output=["count_in"])
        wait_until(lambda: len(peer.received_sizes()) >= 5 and peer.received_messages(), timeout=60)
        back = peer.images[-1]
        sent = mark(frames[index_of(back) % len(frames)], index_of(back))
        assert back.shape == sent.shape
        assert float(np.abs(back.astype(int) - sent.astype(int)).mean()) < 12  # VP8 twice, nothing drawn
        assert all(isinstance(message, int) for message in messages(peer))  # count_in: a number per frame
        peer.close_peer()  # the peer hangs up: the pipeline ends by itself
        record = final_record(stack, pipeline_id, timeout=30)
        assert record["state"] == "ENDED" and "peer" in record["last_error"], record


def test_a_peer_that_goes_silent_ends_the_pipeline_within_its_timeout(
        stack: Stack, frames: list[np.ndarray]) -> None:
    with closing(ClientPeer(frames, fps=15)) as peer:
        pipeline_id = start(stack, peer, webrtc_peer_timeout=2)
        wait_until(lambda: len(peer.received_sizes()) >= 3, timeout=60)
        peer.pause()  # media stops, the connection is never closed
        record = final_record(stack, pipeline_id, timeout=15)
        assert record["state"] == "ENDED" and "2 s" in record["last_error"], record


@pytest.mark.parametrize("sdp", [
    # Passes the manager's checks (an SDP with a video section) but no ICE credentials nor DTLS fingerprint:
    # only the worker's WebRTC stack can refuse it.
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
    "a=rtpmap:96 VP8/90000\r\na=sendrecv\r\n",
    "v=0\r\nm=video garbage\r\n",
], ids=["no-ice-credentials", "garbled-media-line"])
def test_an_offer_the_worker_cannot_use_is_refused_and_leaves_nothing(stack: Stack, sdp: str) -> None:
    reply = call(stack.port, webrtc_request({"type": "offer", "sdp": sdp}))

    assert reply["response"]["error_type"] == "invalid_payload", reply
    assert reply["pipeline_id"] not in listed(stack)
    wait_until(lambda: not stack.client.exists(keys.pipeline_record(reply["pipeline_id"])), timeout=10)


def test_an_offer_without_a_video_track_is_refused(stack: Stack, frames: list[np.ndarray]) -> None:
    with closing(ClientPeer(frames)) as peer:
        reply = call(stack.port, webrtc_request(offer_of(peer, video=None)))
    assert reply["response"]["error_type"] == "invalid_payload"
    assert "no video section" in reply["response"]["error_message"]
    assert reply["pipeline_id"] is None  # refused before a record was made


def test_a_lost_task_ends_the_pipeline_failed_instead_of_moving_it(stack: Stack, frames: list[np.ndarray]) -> None:
    with closing(ClientPeer(frames, fps=15)) as peer:
        pipeline_id = start(stack, peer)
        wait_until(lambda: len(peer.received_sizes()) >= 3, timeout=60)

        faults.kill_tree(faults.task_pid(stack.client, pipeline_id))  # the peer connection dies with it

        record = final_record(stack, pipeline_id, timeout=30)
        assert record["state"] == "FAILED" and record["last_error"].endswith(NOT_MOVABLE), record
        assert record["epoch"] == "1"  # never re-dispatched: no other worker could reach the peer
