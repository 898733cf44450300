"""Requests: the one parser, its precise refusals, and the reply envelope."""

import json
import uuid
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError, NotFoundError
from services.core.framing import encode_json, encode_message
from services.core.messages import (
    REQUEST_TYPES,
    ConsumeResultRequest,
    DeleteWorkflowRequest,
    GetWorkflowRequest,
    InitRequest,
    ListPipelinesRequest,
    ListWorkflowsRequest,
    MuteRequest,
    PutWorkflowRequest,
    ResumeRequest,
    StatusRequest,
    TerminateRequest,
    WebRTCRequest,
    encoded_envelope,
    failure_envelope,
    new_request_id,
    parse_request,
    success_envelope,
)


def wire(obj: Any) -> bytes:
    """A request body exactly as the reference client serialises it."""
    return json.dumps(obj).encode("utf-8")


def test_list_pipelines() -> None:
    assert parse_request(wire({"type": "list_pipelines"})) == ListPipelinesRequest()


@pytest.mark.parametrize(
    ("request_type", "cls"),
    [
        ("mute", MuteRequest),
        ("resume", ResumeRequest),
        ("status", StatusRequest),
        ("terminate", TerminateRequest),
    ],
)
def test_pipeline_commands(request_type: str, cls: type[MuteRequest]) -> None:
    request = parse_request(wire({"type": request_type, "pipeline_id": "p-1"}))

    assert type(request) is cls
    assert request.pipeline_id == "p-1"
    assert request.token is None


def test_consume_result_as_the_reference_client_sends_it() -> None:
    body = b'{"pipeline_id": "x", "excluded_fields": [], "type": "consume_result"}'

    request = parse_request(body)

    assert request == ConsumeResultRequest(pipeline_id="x", excluded_fields=[], max_entries=1)


def test_consume_result_defaults_and_extension() -> None:
    assert parse_request(wire({"type": "consume_result", "pipeline_id": "x"})) == ConsumeResultRequest(
        pipeline_id="x"
    )
    request = parse_request(
        wire({"type": "consume_result", "pipeline_id": "x", "excluded_fields": ["image"], "max_entries": 50})
    )
    assert isinstance(request, ConsumeResultRequest)
    assert (request.excluded_fields, request.max_entries) == (["image"], 50)


def test_init_keeps_the_raw_payload_with_type_as_the_last_key() -> None:
    payload = {
        "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": 9999},
        "video_reference": "rtsp://cam/live",
        "model_id": "some/1",
        "api_key": "SECRET-KEY",
        "max_fps": None,
    }
    body = wire({**payload, "type": "init"})

    request = parse_request(body)

    assert isinstance(request, InitRequest)
    assert request.payload == payload
    assert json.dumps(request.to_wire()).encode() == body


def test_webrtc_keeps_its_payload() -> None:
    request = parse_request(wire({"type": "webrtc", "webrtc_offer": {"type": "offer", "sdp": "v=0"}}))

    assert isinstance(request, WebRTCRequest)
    assert request.payload == {"webrtc_offer": {"type": "offer", "sdp": "v=0"}}


def test_unknown_keys_are_ignored() -> None:
    request = parse_request(wire({"type": "status", "pipeline_id": "p", "verbose": True}))

    assert request == StatusRequest(pipeline_id="p")


def test_token_is_kept_out_of_repr_and_out_of_the_init_payload() -> None:
    status = parse_request(wire({"type": "status", "pipeline_id": "p", "token": "T0KEN"}))
    init = parse_request(wire({"type": "init", "model_id": "a/1", "api_key": "K3Y", "token": "T0KEN"}))

    assert status.token == "T0KEN" and init.token == "T0KEN"
    assert isinstance(init, InitRequest) and "token" not in init.payload
    for text in (repr(status), repr(init), str(init)):
        assert "T0KEN" not in text and "K3Y" not in text


def test_every_request_type_is_known() -> None:
    assert REQUEST_TYPES == (
        "list_pipelines",
        "init",
        "webrtc",
        "mute",
        "resume",
        "status",
        "terminate",
        "consume_result",
        "put_workflow",
        "get_workflow",
        "list_workflows",
        "delete_workflow",
        "drain_worker",
        "undrain_worker",
        "list_workers",
    )


def test_named_workflow_requests_our_extension() -> None:
    put = parse_request(wire({"type": "put_workflow", "workspace_name": "acme", "workflow_id": "people",
                              "specification": {"version": "1.0", "steps": []}, "token": "T0KEN"}))
    listing = parse_request(wire({"type": "list_workflows"}))
    of_one = parse_request(wire({"type": "list_workflows", "workspace_name": "acme"}))
    get = parse_request(wire({"type": "get_workflow", "workspace_name": "acme", "workflow_id": "people"}))
    delete = parse_request(wire({"type": "delete_workflow", "workspace_name": "acme", "workflow_id": "people"}))

    assert isinstance(put, PutWorkflowRequest) and put.specification == {"version": "1.0", "steps": []}
    assert "specification" not in repr(put) and "T0KEN" not in repr(put)
    assert put.to_wire()["specification"] == {"version": "1.0", "steps": []}
    assert listing == ListWorkflowsRequest() and of_one == ListWorkflowsRequest(workspace_name="acme")
    assert isinstance(get, GetWorkflowRequest) and (get.workspace_name, get.workflow_id) == ("acme", "people")
    assert isinstance(delete, DeleteWorkflowRequest)


@pytest.mark.parametrize(("body", "message"), [
    ({"type": "put_workflow", "workspace_name": "a", "workflow_id": "b"}, "field 'specification' is required"),
    ({"type": "put_workflow", "workspace_name": "a", "workflow_id": "b", "specification": []},
     "field 'specification': Input should be a valid dictionary"),
    ({"type": "get_workflow", "workspace_name": "", "workflow_id": "b"}, "field 'workspace_name'"),
    ({"type": "delete_workflow", "workspace_name": "a"}, "field 'workflow_id' is required"),
    ({"type": "list_workflows", "workspace_name": 3}, "field 'workspace_name'"),
])
def test_named_workflow_requests_are_refused_precisely(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        parse_request(wire(body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty request"),
        (b"\xff\xfe{}", "request is not valid UTF-8: invalid start byte at byte 0"),
        (b'{"type": ', "request is not valid JSON: Expecting value"),
        (b"[1, 2]", "request must be a JSON object, got array"),
        (b'"status"', "request must be a JSON object, got string"),
        (b"null", "request must be a JSON object, got null"),
        (b'{"pipeline_id": "p"}', "request has no 'type' field; expected one of: list_pipelines, init,"),
        (b'{"type": 7}', "field 'type' must be a string, got number"),
        (
            b'{"type": "pause", "pipeline_id": "p"}',
            "unknown request type 'pause'; expected one of: list_pipelines",
        ),
        (b'{"type": "STATUS", "pipeline_id": "p"}', "unknown request type 'STATUS'"),
        (b'{"type": "status"}', "invalid 'status' request: field 'pipeline_id' is required"),
        (
            b'{"type": "terminate", "pipeline_id": 12}',
            "field 'pipeline_id': Input should be a valid string (got int)",
        ),
        (
            b'{"type": "mute", "pipeline_id": ""}',
            "field 'pipeline_id': String should have at least 1 character",
        ),
        (
            b'{"type": "consume_result", "pipeline_id": "p", "excluded_fields": "image"}',
            "field 'excluded_fields': Input should be a valid list (got str)",
        ),
        (
            b'{"type": "consume_result", "pipeline_id": "p", "excluded_fields": [1]}',
            "field 'excluded_fields[0]': Input should be a valid string (got int)",
        ),
        (
            b'{"type": "consume_result", "pipeline_id": "p", "max_entries": 1001}',
            "field 'max_entries': Input should be less than or equal to 1000",
        ),
        (
            b'{"type": "consume_result", "pipeline_id": "p", "max_entries": true}',
            "field 'max_entries': Input should be a valid integer (got bool)",
        ),
        (
            b'{"type": "status", "pipeline_id": "p", "token": 5}',
            "field 'token': Input should be a valid string",
        ),
    ],
)
def test_refusals_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        parse_request(body)

    assert message in str(caught.value)
    assert caught.value.error_type == "invalid_payload"


def test_success_envelope_has_the_reference_key_order() -> None:
    envelope = success_envelope("r-1", {"pipelines": ["a"]}, None)

    assert list(envelope) == ["request_id", "response", "pipeline_id"]
    assert list(envelope["response"]) == ["status", "pipelines"]
    assert encode_message(envelope)[4:] == (
        b'{"request_id": "r-1", "response": {"status": "success", "pipelines": ["a"]}, "pipeline_id": null}'
    )


def test_failure_envelope() -> None:
    envelope = failure_envelope("r-2", NotFoundError("no pipeline 'p'"), "p")

    assert list(envelope) == ["request_id", "response", "pipeline_id"]
    assert envelope["pipeline_id"] == "p"
    assert envelope["response"]["status"] == "failure"
    assert envelope["response"]["error_type"] == "not_found"


def test_request_ids_are_uuid4_strings() -> None:
    assert uuid.UUID(new_request_id()).version == 4


def test_to_wire_matches_the_reference_client_commands() -> None:
    assert StatusRequest(pipeline_id="p").to_wire() == {"type": "status", "pipeline_id": "p"}
    assert json.dumps(ConsumeResultRequest(pipeline_id="x").to_wire()) == (
        '{"type": "consume_result", "pipeline_id": "x", "excluded_fields": []}'
    )
    assert ConsumeResultRequest(pipeline_id="x", max_entries=5).to_wire()["max_entries"] == 5


def test_a_short_body_that_repeats_is_parsed_once_and_a_payload_never_shared() -> None:
    status = wire({"type": "status", "pipeline_id": "p-1", "token": "t"})
    assert parse_request(status) is parse_request(bytes(status))  # the same request, immutable
    assert parse_request(wire({"type": "status", "pipeline_id": "p-2"})).pipeline_id == "p-2"
    for _ in range(2):  # a refused body is refused every time, never kept as something else
        with pytest.raises(InvalidPayloadError):
            parse_request(b'{"type": "status"}')
    init = wire({"type": "init", "model_id": "m/1", "video_reference": "a.mp4"})
    first, second = parse_request(init), parse_request(init)
    assert isinstance(first, InitRequest) and first is not second and first.payload == second.payload
    long = wire({"type": "status", "pipeline_id": "p" * 600})
    assert parse_request(long) is not parse_request(long)  # long bodies are parsed afresh


@pytest.mark.parametrize("pipeline_id", [None, "p-1", 'q"uote\\ż'])
def test_an_envelope_around_a_response_encoded_once_is_json_dumps_byte_for_byte(pipeline_id: str | None) -> None:
    response = {"status": "success", "pipelines": ["a", "ż\"b"]}
    request_id = new_request_id()
    assert encoded_envelope(request_id, encode_json(response), pipeline_id) == json.dumps(
        {"request_id": request_id, "response": response, "pipeline_id": pipeline_id}).encode()
