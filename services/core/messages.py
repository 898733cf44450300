"""The TCP requests as one closed union keyed by ``type``, their one parser, and the reply envelope.

Shapes follow the reference's wire contract (README, "The wire protocol"): lower-case ``type`` values, unknown extra
keys ignored, replies keyed ``request_id``, ``response``, ``pipeline_id`` in that order. ``init``
and ``webrtc`` keep their raw payload; ``services.core.plan`` compiles it. The ``*_workflow(s)``
requests (named workflows) and the worker requests (``drain_worker``, ``undrain_worker``,
``list_workers``: rolling upgrades, ``services.manager.drain``) are our extension.
"""

import functools
import json
import random
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from services.core.errors import InvalidPayloadError, failure_response, invalid_payload_from

PipelineId = Annotated[str, StringConstraints(min_length=1)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    type: str
    token: str | None = Field(default=None, repr=False)  # shared-token auth, checked by the manager
    # Our extension: true keeps the connection open for further requests after the reply; false (or, by
    # default, absent) closes it after the reply, as the reference does. services.manager.server.
    keep_alive: bool | None = None

    def to_wire(self) -> dict[str, Any]:
        """The request as the reference client sends it (``type`` first, absent options left out)."""
        return {"type": self.type, **self.model_dump(exclude_none=True, exclude={"type"})}


class ListPipelinesRequest(_Request):
    type: Literal["list_pipelines"] = "list_pipelines"


class _PipelineRequest(_Request):
    pipeline_id: PipelineId


class MuteRequest(_PipelineRequest):
    type: Literal["mute"] = "mute"


class ResumeRequest(_PipelineRequest):
    type: Literal["resume"] = "resume"


class StatusRequest(_PipelineRequest):
    type: Literal["status"] = "status"


class TerminateRequest(_PipelineRequest):
    type: Literal["terminate"] = "terminate"


class ConsumeResultRequest(_PipelineRequest):
    type: Literal["consume_result"] = "consume_result"
    excluded_fields: list[str] = []
    max_entries: int = Field(default=1, ge=1, le=1000)  # our extension; the reference pops one

    def to_wire(self) -> dict[str, Any]:
        wire = super().to_wire()
        if self.max_entries == 1:
            del wire["max_entries"]  # what the reference client sends, byte for byte
        return wire


Name = Annotated[str, StringConstraints(min_length=1)]  # the manager checks the characters


class _WorkflowRequest(_Request):
    """Our extension (the reference has no such requests): one named workflow."""

    workspace_name: Name
    workflow_id: Name


class PutWorkflowRequest(_WorkflowRequest):
    """Stores (replaces) a Workflows definition under its name, once it compiles."""

    type: Literal["put_workflow"] = "put_workflow"
    specification: dict[str, Any] = Field(repr=False)


class GetWorkflowRequest(_WorkflowRequest):
    type: Literal["get_workflow"] = "get_workflow"


class DeleteWorkflowRequest(_WorkflowRequest):
    type: Literal["delete_workflow"] = "delete_workflow"


class ListWorkflowsRequest(_Request):
    """Our extension: the stored workflows' names, of one workspace when it is given."""

    type: Literal["list_workflows"] = "list_workflows"
    workspace_name: Name | None = None


Hostname = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.@:\-]+$")]


class _WorkerRequest(_Request):
    """Our extension: one worker, by the hostname it registered with (Celery's node name, e.g. ``cpu1@host``)."""

    hostname: Hostname


class DrainWorkerRequest(_WorkerRequest):
    """Stops the worker taking new pipelines and moves its pipelines to other workers, one at a time."""

    type: Literal["drain_worker"] = "drain_worker"


class UndrainWorkerRequest(_WorkerRequest):
    """Ends a drain: the worker takes new pipelines again."""

    type: Literal["undrain_worker"] = "undrain_worker"


class ListWorkersRequest(_Request):
    """Our extension: the registered (and the drained) workers, with their pipelines and drain progress."""

    type: Literal["list_workers"] = "list_workers"


class _PayloadRequest(_Request):
    """A request whose every other key is its payload, kept raw (it holds secrets: no repr)."""

    model_config = ConfigDict(extra="allow")

    @property
    def payload(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def to_wire(self) -> dict[str, Any]:
        wire = {**self.payload, **self.model_dump(exclude_none=True, include={"token", "keep_alive"})}
        wire["type"] = self.type  # the reference client appends it as the last key
        return wire

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "type", self.type
        yield "payload_keys", sorted(self.payload)


class InitRequest(_PayloadRequest):
    type: Literal["init"] = "init"


class WebRTCRequest(_PayloadRequest):
    type: Literal["webrtc"] = "webrtc"


Request = Annotated[
    ListPipelinesRequest
    | InitRequest
    | WebRTCRequest
    | MuteRequest
    | ResumeRequest
    | StatusRequest
    | TerminateRequest
    | ConsumeResultRequest
    | PutWorkflowRequest
    | GetWorkflowRequest
    | ListWorkflowsRequest
    | DeleteWorkflowRequest
    | DrainWorkerRequest
    | UndrainWorkerRequest
    | ListWorkersRequest,
    Field(discriminator="type"),
]
REQUEST_ADAPTER: TypeAdapter[Request] = TypeAdapter(Request)
REQUEST_TYPES: tuple[str, ...] = tuple(
    get_args(model.model_fields["type"].annotation)[0] for model in get_args(get_args(Request)[0])
)


def parse_request(body: bytes) -> Request:
    """The typed request in a frame body; :class:`InvalidPayloadError` says precisely what is wrong.

    A short body is parsed once for as long as it keeps coming (the reference client's LIST is the same
    26 bytes every time; a client polling a pipeline's STATUS repeats its frame): the same request object
    is returned, so callers must not change it (the models are frozen; nothing changes a list field).
    Requests that carry a payload of dicts (init, webrtc, put_workflow) are parsed afresh every time."""
    if len(body) <= REPEATED_MAX_BODY:
        request = _parse_repeated(body)
        if request is not None:
            return request
    return _parse(body)


REPEATED_MAX_BODY = 512  # bytes: a LIST, STATUS, MUTE or CONSUME_RESULT frame, a token included
_PAYLOAD_REQUESTS = (InitRequest, WebRTCRequest, PutWorkflowRequest)


@functools.lru_cache(maxsize=1024)
def _parse_repeated(body: bytes) -> Request | None:
    """``body``'s request, kept for its next occurrence (an invalid body raises and is not kept); None for a
    request with a payload, which is not shared."""
    request = _parse(body)
    return None if isinstance(request, _PAYLOAD_REQUESTS) else request


def _parse(body: bytes) -> Request:
    data = _json_object(body)
    request_type = _request_type(data)
    try:
        return REQUEST_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise invalid_payload_from(exc, f"'{request_type}' request", skip=1) from exc


def _json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidPayloadError("empty request: the frame has no body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayloadError(f"request is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidPayloadError(f"request is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidPayloadError("request is not valid JSON: nested too deeply") from exc
    except ValueError as exc:  # an integer literal over Python's digit limit (sys.get_int_max_str_digits)
        raise InvalidPayloadError(f"request is not valid JSON: {exc}") from exc
    if _SURROGATE_ESCAPE.search(text):  # "\\ud800" parses to a lone surrogate, which no UTF-8 encoder accepts later
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidPayloadError("request is not valid Unicode: it escapes a lone UTF-16 surrogate") from exc
    if not isinstance(data, dict):
        raise InvalidPayloadError(f"request must be a JSON object, got {_json_kind(data)}")
    return data


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _request_type(data: Mapping[str, Any]) -> str:
    known = ", ".join(REQUEST_TYPES)
    if "type" not in data:
        raise InvalidPayloadError(f"request has no 'type' field; expected one of: {known}")
    request_type = data["type"]
    if not isinstance(request_type, str):
        raise InvalidPayloadError(f"field 'type' must be a string, got {_json_kind(request_type)}")
    if request_type not in REQUEST_TYPES:
        raise InvalidPayloadError(f"unknown request type {request_type!r}; expected one of: {known}")
    return request_type


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def new_request_id() -> str:
    """A request id as the reference makes them (a uuid4 string). Its bits come from ``random``, not
    ``os.urandom``: an id names a request in logs and replies, it guards nothing, and the system call
    per request was 5% of the manager's CPU answering STATUS (py-spy). Formatted here rather than by
    ``uuid.UUID`` (the same string, a third of the time)."""
    digits = "%032x" % (random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


# The version (4) and variant (RFC 4122) bits of a uuid4, as uuid.UUID(version=4) sets them.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def success_envelope(request_id: str, response: Mapping[str, Any], pipeline_id: str | None) -> dict[str, Any]:
    """A success reply; ``response`` gains ``"status": "success"`` as its first key."""
    body = {"status": "success", **{k: v for k, v in response.items() if k != "status"}}
    return envelope(request_id, body, pipeline_id)


def failure_envelope(
    request_id: str, exc: BaseException, pipeline_id: str | None, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A failure reply for ``exc`` (see :func:`services.core.errors.failure_response`)."""
    return envelope(request_id, failure_response(exc, secrets), pipeline_id)


def envelope(request_id: str, response: Mapping[str, Any], pipeline_id: str | None) -> dict[str, Any]:
    """The reply around ``response`` as it is (a failure a task or a handler shaped is relayed unchanged)."""
    return {"request_id": request_id, "response": response, "pipeline_id": pipeline_id}


def encoded_envelope(request_id: str, response_json: bytes, pipeline_id: str | None) -> bytes:
    """The envelope's JSON (``json.dumps``'s bytes for :func:`envelope`) around a response encoded once
    for many replies (a LIST of thousands of ids); ``request_id`` is one of :func:`new_request_id`'s."""
    echoed = b"null" if pipeline_id is None else json.dumps(pipeline_id).encode()
    return b'{"request_id": "%s", "response": %s, "pipeline_id": %s}' % (request_id.encode(), response_json, echoed)
