"""Clients of the HTTP Stream Management API: :class:`ApiClient` (blocking) and :class:`AsyncApiClient`.

They speak the newer routes (``/inference_pipelines/...``, ``/workflows/...``, ``/workers/...``) and
return the same models, and raise the same errors, as the TCP clients: a failure body's ``error_type``
names the class (the status code decides when a body does not, e.g. a proxy's page), its ``context``
keeps the request and pipeline ids, and an API that cannot be reached or does not answer in time is
:class:`~services.client.errors.ConnectivityError`. The requests and the reading of responses are
shared (:class:`_Routes`); only the I/O differs.

The base URL defaults to ``STREAM_MANAGEMENT_API_URL``, else ``http://127.0.0.1:8080``. ``token`` is
the API's own token (its ``API_AUTH_TOKEN``; default ``STREAM_MANAGEMENT_API_TOKEN``), sent as
``Authorization: Bearer``. ``api_key`` is the Roboflow API key the API puts into INIT payloads that
carry none: sent as ``Authorization: Bearer`` as the reference does when there is no token, else as
``X-Api-Key``. ``verify`` checks an ``https://`` API's certificate: ``True`` (the system's CAs), a CA
bundle's path (e.g. a self-signed certificate), an ``ssl.SSLContext``, or ``False`` (no check).
"""

import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from services.client.errors import (
    ERRORS_BY_NAME,
    CommunicationProtocolError,
    ConnectivityError,
    ProcessesManagerAuthorisationError,
    ProcessesManagerClientError,
    ProcessesManagerInternalError,
    ProcessesManagerInvalidPayload,
    ProcessesManagerNotFoundError,
)
from services.client.models import (
    CommandResponse,
    ConsumeResponse,
    InitialiseWebRTCResponse,
    ListPipelinesResponse,
    ListWorkersResponse,
    ListWorkflowsResponse,
    PutWorkflowResponse,
    StatusResponse,
    WorkerResponse,
    WorkflowResponse,
)
from services.client.tcp import DEFAULT_INIT_TIMEOUT, DEFAULT_TIMEOUT

DEFAULT_URL = "http://127.0.0.1:8080"
PREFIX = "/inference_pipelines"
WORKFLOWS = "/workflows"
WORKERS = "/workers"

ResponseT = TypeVar("ResponseT", bound=CommandResponse)

# For failure bodies that name no known error class.
ERRORS_BY_STATUS: Mapping[int, type[ProcessesManagerClientError]] = {
    400: ProcessesManagerInvalidPayload,
    401: ProcessesManagerAuthorisationError,
    404: ProcessesManagerNotFoundError,
    422: ProcessesManagerInvalidPayload,
    500: ProcessesManagerInternalError,
    502: CommunicationProtocolError,
    503: ConnectivityError,
    504: ConnectivityError,
}


Verify = bool | str | os.PathLike[str] | ssl.SSLContext


def default_url() -> str:
    return os.environ.get("STREAM_MANAGEMENT_API_URL") or DEFAULT_URL


def default_token() -> str | None:
    return os.environ.get("STREAM_MANAGEMENT_API_TOKEN") or None


def ssl_context(verify: Verify) -> ssl.SSLContext | bool:
    """What httpx takes as ``verify``: a path becomes a context trusting that CA file (httpx 0.28 deprecates paths)."""
    if isinstance(verify, bool | ssl.SSLContext):
        return verify
    return ssl.create_default_context(cafile=os.fspath(verify))


def auth_headers(token: str | None, api_key: str | None) -> dict[str, str]:
    """``Authorization: Bearer`` is the API's token when there is one; the api_key then goes in ``X-Api-Key``."""
    if token:
        return {"Authorization": f"Bearer {token}", **({"X-Api-Key": api_key} if api_key else {})}
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@dataclass(frozen=True, slots=True)
class _Call(Generic[ResponseT]):
    """One HTTP request of a command and the model of its success body."""

    method: str
    path: str
    model: type[ResponseT]
    json: dict[str, Any] | None = None
    params: list[tuple[str, str | int | float | bool | None]] = field(default_factory=list)
    long: bool = False  # INIT: waits for a worker to load the model and open the sources


class _Routes:
    """What both clients share: settings, the requests of each command, the reading of responses."""

    def __init__(self, base_url: str | None, timeout: float, init_timeout: float, api_key: str | None,
                 token: str | None) -> None:
        self.base_url = (base_url or default_url()).rstrip("/")
        self.timeout = timeout
        self.init_timeout = init_timeout
        self._headers = auth_headers(token if token is not None else default_token(), api_key)

    def __repr__(self) -> str:  # never the api_key nor the token
        return f"{type(self).__name__}({self.base_url})"

    @staticmethod
    def _pipeline(pipeline_id: str, action: str) -> str:
        return f"{PREFIX}/{quote(pipeline_id, safe='')}/{action}"

    @staticmethod
    def _payload(payload: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
        if isinstance(payload, BaseModel):
            return payload.model_dump(mode="json", exclude_none=True)
        return dict(payload)

    def _list(self) -> _Call[ListPipelinesResponse]:
        return _Call("GET", f"{PREFIX}/list", ListPipelinesResponse)

    def _initialise(self, payload: Mapping[str, Any] | BaseModel) -> _Call[CommandResponse]:
        return _Call("POST", f"{PREFIX}/initialise", CommandResponse, json=self._payload(payload), long=True)

    def _initialise_webrtc(self, payload: Mapping[str, Any] | BaseModel) -> _Call[InitialiseWebRTCResponse]:
        return _Call("POST", f"{PREFIX}/initialise_webrtc", InitialiseWebRTCResponse, json=self._payload(payload),
                     long=True)

    def _command(self, pipeline_id: str, action: str) -> _Call[CommandResponse]:
        return _Call("POST", self._pipeline(pipeline_id, action), CommandResponse)

    def _status(self, pipeline_id: str) -> _Call[StatusResponse]:
        return _Call("GET", self._pipeline(pipeline_id, "status"), StatusResponse)

    def _consume(self, pipeline_id: str, excluded_fields: Iterable[str], max_entries: int) -> _Call[ConsumeResponse]:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("excluded_fields", name) for name in excluded_fields]
        if max_entries != 1:
            params.append(("max_entries", max_entries))
        return _Call("GET", self._pipeline(pipeline_id, "consume"), ConsumeResponse, params=params)

    @staticmethod
    def _workflow_path(workspace_name: str, workflow_id: str | None = None) -> str:
        path = f"{WORKFLOWS}/{quote(workspace_name, safe='')}"
        return path if workflow_id is None else f"{path}/{quote(workflow_id, safe='')}"

    def _put_workflow(self, workspace_name: str, workflow_id: str,
                      specification: Mapping[str, Any]) -> _Call[PutWorkflowResponse]:
        return _Call("PUT", self._workflow_path(workspace_name, workflow_id), PutWorkflowResponse,
                     json=dict(specification))

    def _get_workflow(self, workspace_name: str, workflow_id: str) -> _Call[WorkflowResponse]:
        return _Call("GET", self._workflow_path(workspace_name, workflow_id), WorkflowResponse)

    def _list_workflows(self, workspace_name: str | None) -> _Call[ListWorkflowsResponse]:
        path = WORKFLOWS if workspace_name is None else self._workflow_path(workspace_name)
        return _Call("GET", path, ListWorkflowsResponse)

    def _delete_workflow(self, workspace_name: str, workflow_id: str) -> _Call[CommandResponse]:
        return _Call("DELETE", self._workflow_path(workspace_name, workflow_id), CommandResponse)

    def _list_workers(self) -> _Call[ListWorkersResponse]:
        return _Call("GET", WORKERS, ListWorkersResponse)

    def _drain(self, hostname: str, method: str) -> _Call[WorkerResponse]:
        return _Call(method, f"{WORKERS}/{quote(hostname, safe='')}/drain", WorkerResponse)

    def _timeout_of(self, call: _Call[Any]) -> float:
        return self.init_timeout if call.long else self.timeout

    def _read(self, call: _Call[ResponseT], response: httpx.Response) -> ResponseT:
        body = _json_body(response)
        if not response.is_success:
            raise _error_of(response, body)
        if not isinstance(body, dict):
            raise CommunicationProtocolError(f"{call.method} {call.path}: the success body is not a JSON object",
                                             "The stream management API's reply is malformed.")
        try:
            return call.model.model_validate(body)
        except ValidationError as exc:
            raise CommunicationProtocolError(f"unexpected {call.model.__name__} body: {exc}",
                                             "The stream management API's reply is malformed.",
                                             inner_error=exc) from exc

    def _transport_error(self, exc: httpx.TransportError) -> ProcessesManagerClientError:
        if isinstance(exc, httpx.TimeoutException):
            return ConnectivityError(f"stream management API at {self.base_url} did not answer in time",
                                     "Could not communicate with the stream management API.", inner_error=exc)
        if isinstance(exc, httpx.ProtocolError):  # it answered, but not in HTTP
            return CommunicationProtocolError(f"stream management API at {self.base_url} broke HTTP: {exc}",
                                              "The stream management API's reply is malformed.", inner_error=exc)
        return ConnectivityError(f"stream management API at {self.base_url} unreachable ({exc})",
                                 "Could not communicate with the stream management API.", inner_error=exc)


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None


def _error_of(response: httpx.Response, body: Any) -> ProcessesManagerClientError:
    """The exception a failure response stands for (newer body, older body, or none)."""
    body = body if isinstance(body, dict) else {}
    cls = ERRORS_BY_NAME.get(str(body.get("error_type")))
    if cls is None:
        cls = ERRORS_BY_STATUS.get(response.status_code, ProcessesManagerClientError)
    public = body.get("message")
    detail = body.get("inner_error_message") or public or f"HTTP {response.status_code}: {response.text[:200]}"
    context = body.get("context") if isinstance(body.get("context"), dict) else {}
    return cls(str(detail), None if public is None else str(public), request_id=context.get("request_id"),
               pipeline_id=context.get("pipeline_id"), error_class=body.get("inner_error_type"))


class ApiClient(_Routes):
    """Blocking client of the HTTP API; every method raises the failure's error class."""

    def __init__(self, base_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 init_timeout: float = DEFAULT_INIT_TIMEOUT, api_key: str | None = None, token: str | None = None,
                 verify: Verify = True, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, timeout, init_timeout, api_key, token)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport,
                                  verify=ssl_context(verify))

    def _send(self, call: _Call[ResponseT]) -> ResponseT:
        try:
            response = self._http.request(call.method, call.path, json=call.json, params=call.params,
                                          timeout=self._timeout_of(call))
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        return self._read(call, response)

    def list_pipelines(self) -> ListPipelinesResponse:
        return self._send(self._list())

    def initialise(self, payload: Mapping[str, Any] | BaseModel) -> CommandResponse:
        """Start a pipeline from an INIT payload of either generation; ``context.pipeline_id`` is its id."""
        return self._send(self._initialise(payload))

    def initialise_webrtc(self, payload: Mapping[str, Any] | BaseModel) -> InitialiseWebRTCResponse:
        return self._send(self._initialise_webrtc(payload))

    def pause(self, pipeline_id: str) -> CommandResponse:
        """Mute the pipeline (the reference's "pause": results stop, sources keep being read)."""
        return self._send(self._command(pipeline_id, "pause"))

    mute = pause

    def resume(self, pipeline_id: str) -> CommandResponse:
        return self._send(self._command(pipeline_id, "resume"))

    def terminate(self, pipeline_id: str) -> CommandResponse:
        return self._send(self._command(pipeline_id, "terminate"))

    def status(self, pipeline_id: str) -> StatusResponse:
        return self._send(self._status(pipeline_id))

    def consume(self, pipeline_id: str, excluded_fields: Iterable[str] = (), max_entries: int = 1) -> ConsumeResponse:
        """The oldest unread result(s); ``max_entries`` > 1 reads up to that many at once (``entries``)."""
        return self._send(self._consume(pipeline_id, excluded_fields, max_entries))

    def put_workflow(self, workspace_name: str, workflow_id: str,
                     specification: Mapping[str, Any]) -> PutWorkflowResponse:
        """Store (or replace) a Workflows definition under ``workspace_name/workflow_id``, once it compiles."""
        return self._send(self._put_workflow(workspace_name, workflow_id, specification))

    def get_workflow(self, workspace_name: str, workflow_id: str) -> WorkflowResponse:
        return self._send(self._get_workflow(workspace_name, workflow_id))

    def list_workflows(self, workspace_name: str | None = None) -> ListWorkflowsResponse:
        return self._send(self._list_workflows(workspace_name))

    def delete_workflow(self, workspace_name: str, workflow_id: str) -> CommandResponse:
        return self._send(self._delete_workflow(workspace_name, workflow_id))

    def list_workers(self) -> ListWorkersResponse:
        return self._send(self._list_workers())

    def drain_worker(self, hostname: str) -> WorkerResponse:
        """The worker takes no new pipeline; its pipelines move to other workers one at a time."""
        return self._send(self._drain(hostname, "POST"))

    def undrain_worker(self, hostname: str) -> WorkerResponse:
        return self._send(self._drain(hostname, "DELETE"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class AsyncApiClient(_Routes):
    """asyncio client of the HTTP API, with the same methods as :class:`ApiClient`."""

    def __init__(self, base_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 init_timeout: float = DEFAULT_INIT_TIMEOUT, api_key: str | None = None, token: str | None = None,
                 verify: Verify = True, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, timeout, init_timeout, api_key, token)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=timeout,
                                       transport=transport, verify=ssl_context(verify))

    async def _send(self, call: _Call[ResponseT]) -> ResponseT:
        try:
            response = await self._http.request(call.method, call.path, json=call.json, params=call.params,
                                                timeout=self._timeout_of(call))
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        return self._read(call, response)

    async def list_pipelines(self) -> ListPipelinesResponse:
        return await self._send(self._list())

    async def initialise(self, payload: Mapping[str, Any] | BaseModel) -> CommandResponse:
        """Start a pipeline from an INIT payload of either generation; ``context.pipeline_id`` is its id."""
        return await self._send(self._initialise(payload))

    async def initialise_webrtc(self, payload: Mapping[str, Any] | BaseModel) -> InitialiseWebRTCResponse:
        return await self._send(self._initialise_webrtc(payload))

    async def pause(self, pipeline_id: str) -> CommandResponse:
        """Mute the pipeline (the reference's "pause": results stop, sources keep being read)."""
        return await self._send(self._command(pipeline_id, "pause"))

    mute = pause

    async def resume(self, pipeline_id: str) -> CommandResponse:
        return await self._send(self._command(pipeline_id, "resume"))

    async def terminate(self, pipeline_id: str) -> CommandResponse:
        return await self._send(self._command(pipeline_id, "terminate"))

    async def status(self, pipeline_id: str) -> StatusResponse:
        return await self._send(self._status(pipeline_id))

    async def consume(self, pipeline_id: str, excluded_fields: Iterable[str] = (),
                      max_entries: int = 1) -> ConsumeResponse:
        """The oldest unread result(s); ``max_entries`` > 1 reads up to that many at once (``entries``)."""
        return await self._send(self._consume(pipeline_id, excluded_fields, max_entries))

    async def put_workflow(self, workspace_name: str, workflow_id: str,
                           specification: Mapping[str, Any]) -> PutWorkflowResponse:
        """Store (or replace) a Workflows definition under ``workspace_name/workflow_id``, once it compiles."""
        return await self._send(self._put_workflow(workspace_name, workflow_id, specification))

    async def get_workflow(self, workspace_name: str, workflow_id: str) -> WorkflowResponse:
        return await self._send(self._get_workflow(workspace_name, workflow_id))

    async def list_workflows(self, workspace_name: str | None = None) -> ListWorkflowsResponse:
        return await self._send(self._list_workflows(workspace_name))

    async def delete_workflow(self, workspace_name: str, workflow_id: str) -> CommandResponse:
        return await self._send(self._delete_workflow(workspace_name, workflow_id))

    async def list_workers(self) -> ListWorkersResponse:
        return await self._send(self._list_workers())

    async def drain_worker(self, hostname: str) -> WorkerResponse:
        """The worker takes no new pipeline; its pipelines move to other workers one at a time."""
        return await self._send(self._drain(hostname, "POST"))

    async def undrain_worker(self, hostname: str) -> WorkerResponse:
        return await self._send(self._drain(hostname, "DELETE"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()
