"""Wire compatibility with the reference's clients: our manager (a real process, a real Celery worker,
the real model on the sample video) driven with the exact bytes Roboflow's ``StreamManagerClient``
sends, its replies read exactly as that client reads them (framing, requests, replies, both INIT
generations, the UDP sink's datagrams).

Each request is built as the reference builds it: ``json.dumps`` (default separators) of a dict whose
keys come in the reference's order (an init payload is the pydantic model's dump without ``None``
fields, then ``"type": "init"`` LAST), behind a 4-byte big-endian length, one new connection per
command; the reply is read as ``receive_message`` does: ``read(4)`` for the header, then reads of
16384 bytes until the announced size.
"""

import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until
from tools.payloads import MODEL_ID, newer_init

VTEST = "data/media/vtest.avi"
BIKES = "data/media/bikes.mp4"
HEADER_SIZE = 4
BUFFER_SIZE = 16384  # the reference client's read size
TIMEOUT = 40.0  # generous: an init loads the model

WORKFLOW = newer_init(VTEST)["processing_configuration"]["workflow_specification"]

STREAM_STATES = {"NOT_STARTED", "INITIALISING", "RESTARTING", "RUNNING", "PAUSED", "MUTED", "TERMINATING",
                 "ENDED", "ERROR"}
EVENT_TYPES = {"SOURCE_STATE_UPDATE", "VIDEO_CONSUMPTION_STARTED", "VIDEO_CONSUMPTION_FINISHED", "SOURCE_ERROR",
               "INFERENCE_THREAD_STARTED", "INFERENCE_THREAD_FINISHED", "INFERENCE_ERROR",
               "INFERENCE_RESULTS_DISPATCHING_ERROR"}
EVENT_CONTEXTS = {"video_source", "video_source.video_consumer", "inference_pipeline"}
STATUS_UPDATE_KEYS = {"timestamp", "severity", "event_type", "payload", "context"}
LATENCY_KEYS = {"source_id", "frame_decoding_latency", "inference_latency", "e2e_latency"}
SOURCE_KEYS = {"source_properties", "source_reference", "buffer_size", "state", "buffer_filling_strategy",
               "buffer_consumption_strategy", "source_id"}
SOURCE_PROPERTIES_KEYS = {"width", "height", "total_frames", "is_file", "fps", "is_reconnectable",
                          "timestamp_created"}
FRAME_METADATA_KEYS = {"frame_timestamp", "frame_id", "source_id"}
PREDICTION_KEYS = {"x", "y", "width", "height", "confidence", "class", "class_id", "detection_id"}
# A workflow's detections also name the image they were found on (the reference's "image.[0]").
WORKFLOW_PREDICTION_KEYS = PREDICTION_KEYS | {"parent_id"}
FAILURE_KEYS = ["status", "error_type", "error_class", "error_message", "public_error_message"]
ERROR_TYPES = {"internal_error", "invalid_payload", "not_found", "operation_error", "authorisation_error"}


# --- the reference client's side of the wire -------------------------------------------------------

def reference_newer_init(video: str) -> dict[str, Any]:
    """``InitialisePipelinePayload(...).dict(exclude_none=True)`` + type: every defaulted field is sent."""
    return {
        "video_configuration": {"type": "VideoConfiguration", "video_reference": video, "max_fps": 5,
                                "source_buffer_filling_strategy": "DROP_OLDEST",
                                "source_buffer_consumption_strategy": "EAGER"},
        "processing_configuration": {"type": "WorkflowConfiguration", "workflow_specification": WORKFLOW,
                                     "image_input_name": "image", "workflows_thread_pool_workers": 4,
                                     "cancel_thread_pool_tasks_on_exit": True,
                                     "video_metadata_input_name": "video_metadata"},
        "sink_configuration": {"type": "MemorySinkConfiguration", "results_buffer_size": 64},
        "predictions_queue_size": 512,
        "decoding_buffer_size": 64,
        "type": "init",
    }


def reference_older_init(video: str, udp_port: int) -> dict[str, Any]:
    """``PipelineInitialisationRequest(...).model_dump(exclude_none=True)`` + type, in the model's field
    order; ``video_source_properties`` defaults to ``{}``, so it is always sent."""
    return {
        "model_id": MODEL_ID,
        "video_reference": video,
        "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": udp_port},
        "api_key": "older-generation-api-key",
        "max_fps": 5,
        "model_configuration": {"type": "object-detection", "confidence": 0.4, "iou_threshold": 0.45},
        "video_source_properties": {},
        "type": "init",
    }


def frame(command: dict[str, Any]) -> bytes:
    body = json.dumps(command).encode("utf-8")
    return len(body).to_bytes(HEADER_SIZE, "big") + body


def receive_message(conn: socket.socket) -> bytes:
    header = conn.recv(HEADER_SIZE)
    assert len(header) == HEADER_SIZE, "the reference client raises MalformedHeaderError"
    size = int.from_bytes(header, "big")
    received = b""
    while len(received) < size:
        chunk = conn.recv(BUFFER_SIZE)
        assert chunk, "the reference client raises TransmissionChannelClosed"
        received += chunk
    assert len(received) == size, "json.loads of the reference client would fail on trailing bytes"
    return received


def exchange(port: int, *pieces: bytes) -> bytes:
    """One connection: send ``pieces`` one after the other, read one reply, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        for index, piece in enumerate(pieces):
            if index:
                time.sleep(0.1)  # each piece reaches the server on its own
            conn.sendall(piece)
        return receive_message(conn)


def envelope_of(body: bytes) -> dict[str, Any]:
    """The reply as the reference client sees it, checked against the reference server's serialisation."""
    envelope = json.loads(body)
    assert body == json.dumps(envelope).encode("utf-8"), "not json.dumps with default separators"
    assert list(envelope) == ["request_id", "response", "pipeline_id"]
    request_id = uuid.UUID(envelope["request_id"])
    assert request_id.version == 4 and str(request_id) == envelope["request_id"]
    assert envelope["pipeline_id"] is None or isinstance(envelope["pipeline_id"], str)
    return dict(envelope)


def send(port: int, command: dict[str, Any]) -> dict[str, Any]:
    return envelope_of(exchange(port, frame(command)))


def succeeds(port: int, command: dict[str, Any]) -> dict[str, Any]:
    """The success ``response``; the envelope's pipeline_id is the command's (when it names one)."""
    envelope = send(port, command)
    assert envelope["response"]["status"] == "success", envelope
    assert next(iter(envelope["response"])) == "status"
    if "pipeline_id" in command:
        assert envelope["pipeline_id"] == command["pipeline_id"]
    return dict(envelope["response"])


def status(port: int, pipeline_id: str) -> dict[str, Any]:
    response = succeeds(port, {"type": "status", "pipeline_id": pipeline_id})
    assert list(response) == ["status", "report"]
    return dict(response["report"])


# --- the shapes of the replies and of the UDP sink's datagrams ----------------------------------------

def assert_iso(timestamp: object) -> None:
    assert isinstance(timestamp, str) and datetime.fromisoformat(timestamp)


def assert_report(report: dict[str, Any], video: str) -> None:
    assert {"video_source_status_updates", "latency_reports", "inference_throughput", "sources_metadata"} <= set(
        report)
    assert report["video_source_status_updates"]
    for update in report["video_source_status_updates"]:
        assert set(update) == STATUS_UPDATE_KEYS, update
        assert_iso(update["timestamp"])
        assert update["severity"] in (20, 30, 40) and update["event_type"] in EVENT_TYPES
        assert update["context"] in EVENT_CONTEXTS and isinstance(update["payload"], dict)
    [latency] = report["latency_reports"]
    assert set(latency) == LATENCY_KEYS and latency["source_id"] == 0
    assert all(latency[k] is None or latency[k] >= 0 for k in LATENCY_KEYS - {"source_id"})
    assert isinstance(report["inference_throughput"], float)
    [source] = report["sources_metadata"]
    assert set(source) >= SOURCE_KEYS, source
    assert (source["source_id"], source["source_reference"]) == (0, video)
    assert source["state"] in STREAM_STATES and isinstance(source["buffer_size"], int)
    assert set(source["source_properties"]) >= SOURCE_PROPERTIES_KEYS
    assert (source["source_properties"]["width"], source["source_properties"]["height"]) == (768, 576)
    assert source["source_properties"]["is_file"] is True
    assert_iso(source["source_properties"]["timestamp_created"])


def assert_prediction(output: dict[str, Any], keys: set[str] = PREDICTION_KEYS) -> None:
    assert output["image"] == {"width": 768, "height": 576}
    assert output["predictions"], "vtest.avi shows people in every frame"
    for prediction in output["predictions"]:
        assert set(prediction) == keys, prediction
        assert 0 <= prediction["x"] <= 768 and 0 <= prediction["y"] <= 576 and 0 < prediction["confidence"] <= 1
    assert "person" in {p["class"] for p in output["predictions"]}


def processing(report: dict[str, Any]) -> bool:
    return bool(report["sources_metadata"] and report["sources_metadata"][0]["state"] == "RUNNING"
                and report["inference_throughput"] > 0)


def assert_consumed(response: dict[str, Any]) -> None:
    """One buffered entry, aligned with the pipeline's one source."""
    assert list(response)[:3] == ["status", "outputs", "frames_metadata"]
    [output], [metadata] = response["outputs"], response["frames_metadata"]
    assert set(metadata) == FRAME_METADATA_KEYS and metadata["source_id"] == 0
    assert isinstance(metadata["frame_id"], int)
    assert_iso(metadata["frame_timestamp"])
    assert list(output) == ["predictions"]  # the workflow's outputs by name, as the reference
    assert_prediction(output["predictions"], WORKFLOW_PREDICTION_KEYS)
    assert {p["parent_id"] for p in output["predictions"]["predictions"]} == {"image.[0]"}


# --- the tests ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        running.start_manager()
        running.start_worker("cpu", "pipelines.cpu", concurrency=2)
        yield running


def test_list_pipelines(stack: Stack) -> None:
    body = exchange(stack.port, frame({"type": "list_pipelines"}))

    envelope = envelope_of(body)
    assert envelope["response"] == {"status": "success", "pipelines": []} and envelope["pipeline_id"] is None
    assert body.startswith(b'{"request_id": "') and b'", "response": {"status": "success", ' in body


def test_newer_generation_lifecycle(stack: Stack) -> None:
    port = stack.port
    started = send(port, reference_newer_init(VTEST))
    assert started["response"] == {"status": "success"}
    pipeline_id = started["pipeline_id"]
    assert uuid.UUID(pipeline_id) and pipeline_id in succeeds(port, {"type": "list_pipelines"})["pipelines"]

    wait_until(lambda: processing(status(port, pipeline_id)), timeout=30, interval=0.2)
    report = status(port, pipeline_id)
    assert_report(report, VTEST)
    source = report["sources_metadata"][0]
    assert (source["buffer_filling_strategy"], source["buffer_consumption_strategy"]) == ("DROP_OLDEST", "EAGER")

    consume = {"type": "consume_result", "pipeline_id": pipeline_id, "excluded_fields": []}
    consumed: list[dict[str, Any]] = []
    wait_until(lambda: consumed.append(succeeds(port, consume)) or consumed[-1]["outputs"], timeout=30,
               interval=0.2)
    assert_consumed(consumed[-1])
    trimmed: list[dict[str, Any]] = []
    wait_until(lambda: trimmed.append(succeeds(port, {**consume, "excluded_fields": ["predictions"]}))
               or trimmed[-1]["outputs"], timeout=30, interval=0.2)
    assert trimmed[-1]["outputs"] == [{}]  # excluded_fields removes outputs by name

    assert succeeds(port, {"type": "mute", "pipeline_id": pipeline_id}) == {"status": "success"}
    wait_until(lambda: status(port, pipeline_id)["pipeline_state"] == "MUTED", timeout=10)
    assert succeeds(port, {"type": "resume", "pipeline_id": pipeline_id}) == {"status": "success"}
    assert succeeds(port, {"type": "terminate", "pipeline_id": pipeline_id}) == {"status": "success"}
    assert pipeline_id not in succeeds(port, {"type": "list_pipelines"})["pipelines"]


def test_outputs_are_aligned_with_the_sources(stack: Stack) -> None:
    payload = reference_newer_init(VTEST)
    payload["video_configuration"]["video_reference"] = [VTEST, BIKES]
    pipeline_id = send(stack.port, payload)["pipeline_id"]
    consume = {"type": "consume_result", "pipeline_id": pipeline_id, "excluded_fields": []}

    rounds: list[dict[str, Any]] = []
    wait_until(lambda: rounds.append(succeeds(stack.port, consume)) or sum(bool(r["outputs"]) for r in rounds) >= 5,
               timeout=30, interval=0.1)
    wait_until(lambda: len(status(stack.port, pipeline_id)["latency_reports"]) == 2, timeout=10)
    report = status(stack.port, pipeline_id)
    succeeds(stack.port, {"type": "terminate", "pipeline_id": pipeline_id})

    entries = [r for r in rounds if r["outputs"]]
    images = {0: {"width": 768, "height": 576}, 1: {"width": 640, "height": 272}}
    for entry in entries:
        assert len(entry["outputs"]) == len(entry["frames_metadata"]) == 2
        for source_id, (output, metadata) in enumerate(zip(entry["outputs"], entry["frames_metadata"], strict=True)):
            assert (output is None) == (metadata is None)
            assert metadata is None or (metadata["source_id"], output["predictions"]["image"]) == (
                source_id, images[source_id])
    assert [m["source_id"] for m in report["sources_metadata"]] == [0, 1]
    assert [m["source_reference"] for m in report["sources_metadata"]] == [VTEST, BIKES]
    assert [latency["source_id"] for latency in report["latency_reports"]] == [0, 1]


def test_older_generation_with_udp_sink(stack: Stack) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(30)
        started = send(stack.port, reference_older_init(VTEST, receiver.getsockname()[1]))
        assert started["response"] == {"status": "success"}, started
        pipeline_id = started["pipeline_id"]
        datagrams = [json.loads(receiver.recv(65535)) for _ in range(3)]

    for datagram in datagrams:
        assert_prediction(datagram)
        metadata = datagram["inference_metadata"]
        assert set(metadata) == {"source_id", "frame_id", "frame_decoding_time", "emission_time"}
        assert metadata["source_id"] == 0 and isinstance(metadata["frame_id"], int)
        assert_iso(metadata["frame_decoding_time"])
        assert_iso(metadata["emission_time"])
    wait_until(lambda: status(stack.port, pipeline_id)["latency_reports"][0]["inference_latency"] is not None,
               timeout=10)
    report = status(stack.port, pipeline_id)
    assert_report(report, VTEST)
    assert "older-generation-api-key" not in json.dumps(report)
    assert succeeds(stack.port, {"type": "terminate", "pipeline_id": pipeline_id}) == {"status": "success"}


WEBRTC = {**reference_newer_init(VTEST), "webrtc_offer": {"type": "offer", "sdp": "v=0"}, "webrtc_peer_timeout": 1,
          "webrtc_realtime_processing": True, "stream_output": [], "data_output": [], "type": "webrtc"}


@pytest.mark.parametrize(
    ("command", "error_type", "pipeline_id"),
    [
        ({"type": "status", "pipeline_id": "ghost"}, "not_found", "ghost"),
        ({"type": "mute", "pipeline_id": "ghost"}, "not_found", "ghost"),
        ({"type": "resume", "pipeline_id": "ghost"}, "not_found", "ghost"),
        ({"type": "terminate", "pipeline_id": "ghost"}, "not_found", "ghost"),  # the newer reference: invalid_payload
        ({"type": "consume_result", "pipeline_id": "ghost", "excluded_fields": []}, "not_found", "ghost"),
        ({"video_reference": VTEST, "type": "init"}, "invalid_payload", None),
        ({"type": "explode"}, "invalid_payload", None),
        (WEBRTC, "invalid_payload", None),  # an offer without video
    ],
    ids=["status", "mute", "resume", "terminate", "consume", "init-incomplete", "unknown-type", "webrtc"],
)
def test_error_envelopes(stack: Stack, command: dict[str, Any], error_type: str, pipeline_id: str | None) -> None:
    envelope = send(stack.port, command)

    response = envelope["response"]
    assert list(response) == FAILURE_KEYS
    assert response["status"] == "failure" and response["error_type"] == error_type
    assert all(isinstance(response[key], str) and response[key] for key in FAILURE_KEYS)
    assert envelope["pipeline_id"] == pipeline_id


def test_unknown_extra_keys_are_ignored(stack: Stack) -> None:
    listed = send(stack.port, {"type": "list_pipelines", "client_version": "0.9.0", "options": {"x": [1]}})
    missing = send(stack.port, {"type": "status", "pipeline_id": "ghost", "verbose": True})

    assert listed["response"]["status"] == "success"
    assert missing["response"]["error_type"] == "not_found"  # parsed as a status request, not refused


def test_header_split_across_two_sends(stack: Stack) -> None:
    data = frame({"type": "list_pipelines"})

    envelope = envelope_of(exchange(stack.port, data[:2], data[2:]))  # the reference server calls this malformed

    assert envelope["response"]["status"] == "success"
