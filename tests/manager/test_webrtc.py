"""The WEBRTC command in the manager: validation before anything is written, the task's SDP answer passed
on in the reference's envelope, and a lost WebRTC pipeline retired instead of re-dispatched (its peer was
connected to the lost worker). The peer connection itself: tests/worker/webrtc and tests/e2e/test_webrtc.py."""

import time
from typing import Any

import pytest
import redis

from services.core import keys
from services.core.records import WORKER_SHUTDOWN
from services.core.webrtc import PEER_REFERENCE
from services.manager.reaper import NOT_MOVABLE
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.manager.test_init import pipeline_keys
from tests.manager.test_reaper import listed, lose_task, record_of, report
from tools.payloads import newer_init

OFFER_SDP = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
             "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=sendrecv\r\na=rtpmap:96 VP8/90000\r\n")
ANSWER = {"sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", "type": "answer"}


def webrtc_request(**fields: Any) -> dict[str, Any]:
    """A WEBRTC request as the reference's client sends it (its example's fields)."""
    payload = newer_init("")  # the reference's example sends video_reference "": ignored
    payload.update(type="webrtc", webrtc_offer={"type": "offer", "sdp": OFFER_SDP}, webrtc_peer_timeout=10,
                   decoding_buffer_size=5, webcam_fps=30, stream_output=[], data_output=["predictions"],
                   webrtc_turn_config={"urls": "turn:turn.example:3478", "username": "u", "credential": "TURN-SECRET"})
    payload.update(fields)
    return payload


def test_the_task_answer_comes_back_in_the_reference_envelope(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register_worker(redis_client)
    fake_worker.extra = ANSWER

    reply = call(manager.port, webrtc_request())

    assert reply["response"] == {"status": "success", **ANSWER}
    pipeline_id = reply["pipeline_id"]
    assert listed(manager) == [pipeline_id]
    spec = fake_worker.calls[0]["spec"]
    assert spec["video_references"] == [PEER_REFERENCE]
    assert spec["processing_mode"] == "freshest"  # webrtc_realtime_processing defaults to true
    assert spec["max_staleness"] == 0.2  # realtime: frames wait for a free runner, stale ones are dropped
    webrtc = spec["webrtc"]
    assert (webrtc["offer_sdp"], webrtc["data_output"], webrtc["stream_output"]) == (OFFER_SDP, "predictions", None)
    assert (webrtc["peer_timeout"], webrtc["declared_fps"]) == (10.0, 30.0)
    assert webrtc["ice_server"] == {"urls": ["turn:turn.example:3478"], "username": "u", "credential": "TURN-SECRET"}
    assert record_of(redis_client, pipeline_id).movable is False
    # The status shows neither the TURN credential nor the offer (it holds the ICE password).
    shown = str(report(manager, pipeline_id)) + str(call(manager.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert "TURN-SECRET" not in shown and "4611731400430051336" not in shown


def test_non_realtime_processes_every_frame(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register_worker(redis_client)
    fake_worker.extra = ANSWER

    reply = call(manager.port, webrtc_request(webrtc_realtime_processing=False))

    assert reply["response"]["status"] == "success"
    assert fake_worker.calls[0]["spec"]["processing_mode"] == "every_frame"
    assert fake_worker.calls[0]["spec"]["max_staleness"] is None


@pytest.mark.parametrize(("fields", "message"), [
    ({"webrtc_offer": {"type": "offer", "sdp": "garbage"}}, "is not an SDP document"),
    ({"webrtc_offer": {"type": "offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}}, "no video section"),
    ({"webrtc_offer": {"type": "answer", "sdp": OFFER_SDP}}, "'webrtc_offer.type' must be 'offer'"),
    ({"webrtc_offer": None}, "'webrtc_offer' is required"),
    ({"stream_output": ["annotated"]}, "no output 'annotated'"),
    ({"data_output": ["predictions", "other"]}, "one output name at most"),
    ({"data_output": [3]}, "must be a list of output names"),
    ({"webrtc_peer_timeout": 0}, "webrtc_peer_timeout"),
    ({"webrtc_turn_config": {"urls": []}}, "webrtc_turn_config"),
    ({"webrtc_turn_config": "turn:x"}, "webrtc_turn_config"),
], ids=["garbage-sdp", "no-video", "answer-type", "no-offer", "unknown-stream-output", "two-outputs",
        "non-string-output", "zero-timeout", "no-turn-urls", "turn-not-object"])
def test_bad_requests_are_refused_before_anything_is_written(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis, fields: dict[str, Any], message: str
) -> None:
    register_worker(redis_client)

    reply = call(manager.port, webrtc_request(**fields))

    assert reply["response"]["error_type"] == "invalid_payload", reply
    assert message in reply["response"]["error_message"]
    assert fake_worker.calls == [] and pipeline_keys(redis_client) == []


def test_the_flat_payload_is_refused(manager: RunningManager, fake_worker: FakeWorker,
                                     redis_client: redis.Redis) -> None:
    register_worker(redis_client)
    flat = {"type": "webrtc", "model_id": "yolov3-tiny/coco-416", "video_reference": "x",
            "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": 9999},
            "webrtc_offer": {"type": "offer", "sdp": OFFER_SDP}}

    reply = call(manager.port, flat)

    assert reply["response"]["error_type"] == "invalid_payload"
    assert "processing_configuration" in reply["response"]["error_message"]
    assert fake_worker.calls == []


def test_an_init_cannot_name_the_peer_source(manager: RunningManager, fake_worker: FakeWorker,
                                             redis_client: redis.Redis) -> None:
    register_worker(redis_client)

    reply = call(manager.port, {**newer_init(PEER_REFERENCE), "type": "init"})

    assert reply["response"]["error_type"] == "invalid_payload"
    assert fake_worker.calls == [] and pipeline_keys(redis_client) == []


def test_a_failed_negotiation_leaves_nothing_behind(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register_worker(redis_client)
    fake_worker.behaviour = "fail"

    reply = call(manager.port, webrtc_request())

    assert reply["response"]["error_type"] == "operation_error"
    assert reply["pipeline_id"] == fake_worker.calls[0]["pipeline_id"]
    assert listed(manager) == [] and pipeline_keys(redis_client) == []


def start_webrtc(manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis) -> str:
    register_worker(redis_client)
    fake_worker.extra = ANSWER
    reply = call(manager.port, webrtc_request())
    assert reply["response"]["status"] == "success"
    return str(reply["pipeline_id"])


def test_a_lost_webrtc_pipeline_fails_with_the_reason_instead_of_moving(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    pipeline_id = start_webrtc(manager, fake_worker, redis_client)

    lose_task(fake_worker, redis_client, pipeline_id)

    wait = time.monotonic() + 10
    while listed(manager) and time.monotonic() < wait:
        time.sleep(0.05)
    status = report(manager, pipeline_id)
    assert status["pipeline_state"] == "FAILED"
    assert status["last_error"] == f"worker lost (no heartbeat); {NOT_MOVABLE}"
    assert len(fake_worker.calls) == 1  # never re-dispatched


def test_a_webrtc_pipeline_is_not_handed_over_at_a_worker_shutdown(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    manager = start_manager(heartbeat_grace=60.0)  # the shutdown is acted on at once, not after the grace
    pipeline_id = start_webrtc(manager, fake_worker, redis_client)
    fake_worker.tasks[0].lose()
    redis_client.hset(keys.pipeline_record(pipeline_id), "last_error", WORKER_SHUTDOWN)
    redis_client.delete(keys.pipeline_heartbeat(pipeline_id))

    wait = time.monotonic() + 10
    while listed(manager) and time.monotonic() < wait:
        time.sleep(0.05)
    assert report(manager, pipeline_id)["last_error"] == f"{WORKER_SHUTDOWN}; {NOT_MOVABLE}"
    assert len(fake_worker.calls) == 1
