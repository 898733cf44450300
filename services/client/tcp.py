"""Clients of the manager's TCP endpoint: :class:`AsyncManagerClient` and :class:`ManagerClient`.

Both speak the reference protocol exactly as its client does: one connection per command, a
4-byte big-endian length, a UTF-8 JSON body, one reply. The command dictionaries and the reading
of replies are shared (:class:`_Commands`); only the socket work differs. Every call has a
deadline covering connect, send and the whole reply; past it the call raises
:class:`~services.client.errors.ConnectivityError` and the connection is closed (aborted when the
server took no part of the request: a graceful close would wait for the unsent bytes forever).

Defaults come from the reference's variables ``STREAM_MANAGER_HOST`` / ``STREAM_MANAGER_PORT``;
``STREAM_MANAGER_TOKEN`` supplies the shared token when the manager requires one.

Several managers: ``addresses="h1:7070,h2:7070"`` (or ``host="h1:7070,h2:7070"``, or
``$STREAM_MANAGER_ADDRESSES`` when no host is given) makes each command connect to the first manager
that accepts a connection; a connection that cannot be made moves on to the next address at once, a
failure once the command was sent is raised (it is in flight). See :mod:`services.client.addresses`.
``STREAM_MANAGER_TLS=1`` speaks TLS (verified against the system's CAs, or ``STREAM_MANAGER_CA_FILE``);
``tls=`` may also be an ``ssl.SSLContext`` (e.g. one holding a client certificate for mutual TLS).
"""

import asyncio
import contextlib
import json
import os
import socket
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from services.client.addresses import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RETRY_AFTER,
    Address,
    AddressList,
    env_addresses,
    format_address,
    parse_addresses,
)
from services.client.errors import CommunicationProtocolError, ConnectivityError, error_from_envelope
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
    context_of,
)
from services.core.framing import FrameDecoder, FrameTooLargeError, encode_message

DEFAULT_TIMEOUT = 10.0
DEFAULT_INIT_TIMEOUT = 60.0  # the manager may take its init_timeout (30 s) to load a model and open cameras
MAX_REPLY_SIZE = 64 * 1024 * 1024
CLOSE_TIMEOUT = 1.0  # longest the async client waits for a closed connection's unsent bytes to leave
_READ_SIZE = 65536

ResponseT = TypeVar("ResponseT", bound=CommandResponse)


def default_address() -> tuple[str, int]:
    return os.environ.get("STREAM_MANAGER_HOST", "127.0.0.1"), int(os.environ.get("STREAM_MANAGER_PORT", "7070"))


TLSOption = bool | ssl.SSLContext | None
AddressesOption = str | Sequence[str | Address] | None


def client_ssl_context(tls: TLSOption = None, ca_file: str | os.PathLike[str] | None = None,
                       cert_file: str | os.PathLike[str] | None = None,
                       key_file: str | os.PathLike[str] | None = None) -> ssl.SSLContext | None:
    """The TLS context a client uses: ``tls`` itself when it is a context; for ``True`` one that verifies
    the server (against ``ca_file`` or the system's CAs; TLS 1.2+), with a client certificate when
    ``cert_file`` is given; None for plaintext. ``tls=None`` reads ``STREAM_MANAGER_TLS`` (1/true/yes)."""
    if isinstance(tls, ssl.SSLContext):
        return tls
    if tls is None:
        tls = os.environ.get("STREAM_MANAGER_TLS", "").strip().lower() in ("1", "true", "yes", "on")
    if not tls:
        return None
    context = ssl.create_default_context(cafile=ca_file or os.environ.get("STREAM_MANAGER_CA_FILE") or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


class _Commands:
    """What both clients share: settings, the command dictionaries, the reading of replies."""

    def __init__(self, host: str | None, port: int | None, timeout: float, init_timeout: float,
                 token: str | None, tls: ssl.SSLContext | None = None, server_hostname: str | None = None,
                 addresses: AddressesOption = None, retry_after: float = DEFAULT_RETRY_AFTER,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        default_host, default_port = default_address()
        listed: tuple[Address, ...] | None
        if addresses is not None:
            listed = parse_addresses(addresses, port or default_port)
        elif host is not None and "," in host:
            listed = parse_addresses(host, port or default_port)
        else:
            listed = env_addresses(port or default_port) if host is None else None
        if listed is None:
            listed = ((host or default_host, port or default_port),)
        self.addresses = AddressList(listed, retry_after=retry_after, connect_timeout=connect_timeout)
        self.host, self.port = listed[0]  # the first address (a single-address client's only one)
        self.timeout = timeout
        self.init_timeout = init_timeout
        self.token = token if token is not None else os.environ.get("STREAM_MANAGER_TOKEN") or None
        self.ssl_context = tls
        self._server_hostname = server_hostname
        self.server_hostname = server_hostname or self.host  # the name the server's certificate must carry

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}({self.addresses}{', TLS' if self.ssl_context else ''})"

    def _hostname_for(self, address: Address) -> str:
        """The name ``address``'s certificate must carry: the one given, else the address's host."""
        return self._server_hostname or address[0]

    def _with_token(self, command: dict[str, Any]) -> dict[str, Any]:
        if self.token is None or "token" in command:
            return command
        # "type" stays the last key, where the reference client puts it.
        kind = command.pop("type", None)
        command["token"] = self.token
        if kind is not None:
            command["type"] = kind
        return command

    @staticmethod
    def _init_command(payload: Mapping[str, Any] | BaseModel, kind: str) -> dict[str, Any]:
        if isinstance(payload, BaseModel):
            payload = payload.model_dump(mode="json", exclude_none=True)
        command = {k: v for k, v in payload.items() if k != "type"}
        command["type"] = kind
        return command

    @staticmethod
    def _consume_command(pipeline_id: str, excluded_fields: Iterable[str], max_entries: int) -> dict[str, Any]:
        command: dict[str, Any] = {"type": "consume_result", "pipeline_id": pipeline_id,
                                   "excluded_fields": list(excluded_fields)}
        if max_entries != 1:
            command["max_entries"] = max_entries
        return command

    @staticmethod
    def _workflow_command(kind: str, workspace_name: str, workflow_id: str,
                          specification: Mapping[str, Any] | None = None) -> dict[str, Any]:
        command: dict[str, Any] = {"type": kind, "workspace_name": workspace_name, "workflow_id": workflow_id}
        if specification is not None:
            command["specification"] = dict(specification)
        return command

    @staticmethod
    def _list_workflows_command(workspace_name: str | None) -> dict[str, Any]:
        return {"type": "list_workflows", **({"workspace_name": workspace_name} if workspace_name is not None else {})}

    @staticmethod
    def _checked(envelope: dict[str, Any]) -> dict[str, Any]:
        response = envelope.get("response")
        if not isinstance(response, dict) or "status" not in response:
            raise CommunicationProtocolError("reply has no response status", "The stream manager's reply is malformed.")
        if response["status"] != "success":
            raise error_from_envelope(envelope)
        return envelope

    @staticmethod
    def _typed(envelope: dict[str, Any], model: type[ResponseT]) -> ResponseT:
        response = dict(envelope["response"])
        try:
            return model.model_validate({**response, "context": context_of(envelope)})
        except ValidationError as exc:
            raise CommunicationProtocolError(f"unexpected {model.__name__} reply: {exc}",
                                             "The stream manager's reply is malformed.", inner_error=exc) from exc


def _parse_envelope(body: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommunicationProtocolError(f"reply is not JSON: {exc}", "The stream manager's reply is malformed.",
                                         inner_error=exc) from exc
    if not isinstance(envelope, dict):
        raise CommunicationProtocolError("reply is not a JSON object", "The stream manager's reply is malformed.")
    return envelope


def _what_failed(exc: BaseException) -> str:
    """How a connection failed, in words that do not depend on the event loop (asyncio's own and
    uvloop word a refused connect differently; the errno's text is the same everywhere)."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return "did not answer in time"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"unreachable ([Errno {exc.errno}] {os.strerror(exc.errno)})"
    return f"unreachable ({exc})"


def _unreachable(host: str, port: int, exc: BaseException) -> ConnectivityError:
    return ConnectivityError(f"stream manager at {format_address((host, port))} {_what_failed(exc)}",
                             "Could not communicate with the stream manager.", inner_error=exc)


def _none_reachable(failures: list[tuple[Address, BaseException]]) -> ConnectivityError:
    """Every address refused or timed out before the request was sent (one address: its own error)."""
    if len(failures) == 1:
        return _unreachable(*failures[0][0], failures[0][1])
    reasons = "; ".join(f"{format_address(address)} {_what_failed(exc)}" for address, exc in failures)
    return ConnectivityError(f"no stream manager could be reached: {reasons}",
                             "Could not communicate with the stream manager.", inner_error=failures[-1][1])


def _closed_early() -> CommunicationProtocolError:
    return CommunicationProtocolError("the stream manager closed the connection before replying",
                                      "The stream manager closed the connection before replying.")


class AsyncManagerClient(_Commands):
    """asyncio client of the TCP manager; every method raises the reply's error class on failure."""

    def __init__(self, host: str | None = None, port: int | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 init_timeout: float = DEFAULT_INIT_TIMEOUT, token: str | None = None, tls: TLSOption = None,
                 ca_file: str | os.PathLike[str] | None = None, server_hostname: str | None = None,
                 addresses: AddressesOption = None, retry_after: float = DEFAULT_RETRY_AFTER,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        super().__init__(host, port, timeout, init_timeout, token, client_ssl_context(tls, ca_file), server_hostname,
                         addresses, retry_after, connect_timeout)

    async def request(self, command: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """The raw reply envelope to ``command`` (success or failure alike); raises only on I/O."""
        limit = self.timeout if timeout is None else timeout
        frame = encode_message(self._with_token(dict(command)))
        deadline = time.monotonic() + limit
        reader, writer, address = await self._open(deadline)
        try:
            return await asyncio.wait_for(self._exchange(reader, writer, frame), _remaining_or_zero(deadline))
        except (OSError, TimeoutError) as exc:
            raise _unreachable(*address, exc) from exc

    async def _open(self, deadline: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Address]:
        """A connection to the first address that accepts one (see :mod:`services.client.addresses`)."""
        failures: list[tuple[Address, BaseException]] = []
        for address, timeout in self.addresses.attempts(deadline, failures):
            try:
                async with asyncio.timeout(timeout):
                    if self.ssl_context is None:
                        reader, writer = await asyncio.open_connection(*address)
                    else:
                        reader, writer = await asyncio.open_connection(
                            *address, ssl=self.ssl_context, server_hostname=self._hostname_for(address))
            except (OSError, TimeoutError) as exc:
                self.addresses.failed(address)
                failures.append((address, exc))
                continue
            self.addresses.succeeded(address)
            return reader, writer, address
        raise _none_reachable(failures)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        frame: bytes) -> dict[str, Any]:
        try:
            writer.write(frame)
            await writer.drain()
            decoder = FrameDecoder(MAX_REPLY_SIZE)
            while True:
                chunk = await reader.read(_READ_SIZE)
                if not chunk:
                    raise _closed_early()
                frames = _feed(decoder, chunk)
                if frames:
                    return _parse_envelope(frames[0])
        except BaseException:
            writer.transport.abort()  # cancelled (the deadline) or failed: drop what is unsent
            raise
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await writer.wait_closed()

    async def call(self, command: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """The reply envelope to ``command``; a failure reply raises its error class."""
        return self._checked(await self.request(command, timeout))

    async def list_pipelines(self) -> ListPipelinesResponse:
        return self._typed(await self.call({"type": "list_pipelines"}), ListPipelinesResponse)

    async def initialise(self, payload: Mapping[str, Any] | BaseModel) -> CommandResponse:
        """Start a pipeline from an INIT payload of either generation; ``context.pipeline_id`` is its id."""
        envelope = await self.call(self._init_command(payload, "init"), self.init_timeout)
        return self._typed(envelope, CommandResponse)

    async def initialise_webrtc(self, payload: Mapping[str, Any] | BaseModel) -> InitialiseWebRTCResponse:
        envelope = await self.call(self._init_command(payload, "webrtc"), self.init_timeout)
        return self._typed(envelope, InitialiseWebRTCResponse)

    async def _pipeline_command(self, kind: str, pipeline_id: str) -> dict[str, Any]:
        return await self.call({"type": kind, "pipeline_id": pipeline_id})

    async def pause(self, pipeline_id: str) -> CommandResponse:
        """Mute the pipeline (the reference's "pause": results stop, sources keep being read)."""
        return self._typed(await self._pipeline_command("mute", pipeline_id), CommandResponse)

    mute = pause

    async def resume(self, pipeline_id: str) -> CommandResponse:
        return self._typed(await self._pipeline_command("resume", pipeline_id), CommandResponse)

    async def terminate(self, pipeline_id: str) -> CommandResponse:
        return self._typed(await self._pipeline_command("terminate", pipeline_id), CommandResponse)

    async def status(self, pipeline_id: str) -> StatusResponse:
        return self._typed(await self._pipeline_command("status", pipeline_id), StatusResponse)

    async def consume(self, pipeline_id: str, excluded_fields: Iterable[str] = (),
                      max_entries: int = 1) -> ConsumeResponse:
        """The oldest unread result(s); ``max_entries`` > 1 reads up to that many at once (``entries``)."""
        envelope = await self.call(self._consume_command(pipeline_id, excluded_fields, max_entries))
        return self._typed(envelope, ConsumeResponse)

    # Named workflows (our extension of the protocol).

    async def put_workflow(self, workspace_name: str, workflow_id: str,
                           specification: Mapping[str, Any]) -> PutWorkflowResponse:
        """Store (or replace) a Workflows definition under ``workspace_name/workflow_id``, once it compiles."""
        command = self._workflow_command("put_workflow", workspace_name, workflow_id, specification)
        return self._typed(await self.call(command), PutWorkflowResponse)

    async def get_workflow(self, workspace_name: str, workflow_id: str) -> WorkflowResponse:
        command = self._workflow_command("get_workflow", workspace_name, workflow_id)
        return self._typed(await self.call(command), WorkflowResponse)

    async def list_workflows(self, workspace_name: str | None = None) -> ListWorkflowsResponse:
        return self._typed(await self.call(self._list_workflows_command(workspace_name)), ListWorkflowsResponse)

    async def delete_workflow(self, workspace_name: str, workflow_id: str) -> CommandResponse:
        command = self._workflow_command("delete_workflow", workspace_name, workflow_id)
        return self._typed(await self.call(command), CommandResponse)

    # Workers (our extension of the protocol: rolling upgrades).

    async def list_workers(self) -> ListWorkersResponse:
        return self._typed(await self.call({"type": "list_workers"}), ListWorkersResponse)

    async def drain_worker(self, hostname: str) -> WorkerResponse:
        """The worker takes no new pipeline; its pipelines move to other workers one at a time."""
        return self._typed(await self.call({"type": "drain_worker", "hostname": hostname}), WorkerResponse)

    async def undrain_worker(self, hostname: str) -> WorkerResponse:
        return self._typed(await self.call({"type": "undrain_worker", "hostname": hostname}), WorkerResponse)


class ManagerClient(_Commands):
    """Blocking client of the TCP manager, with the same methods as :class:`AsyncManagerClient`."""

    def __init__(self, host: str | None = None, port: int | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 init_timeout: float = DEFAULT_INIT_TIMEOUT, token: str | None = None, tls: TLSOption = None,
                 ca_file: str | os.PathLike[str] | None = None, server_hostname: str | None = None,
                 addresses: AddressesOption = None, retry_after: float = DEFAULT_RETRY_AFTER,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        super().__init__(host, port, timeout, init_timeout, token, client_ssl_context(tls, ca_file), server_hostname,
                         addresses, retry_after, connect_timeout)

    def request(self, command: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """The raw reply envelope to ``command`` (success or failure alike); raises only on I/O."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        frame = encode_message(self._with_token(dict(command)))
        conn, address = self._open(deadline)
        try:
            with conn:
                conn.settimeout(_remaining(deadline))  # connecting (and the TLS handshake) used some
                conn.sendall(frame)  # bounded in total since 3.5
                decoder = FrameDecoder(MAX_REPLY_SIZE)
                while True:
                    conn.settimeout(_remaining(deadline))
                    chunk = conn.recv(_READ_SIZE)
                    if not chunk:
                        raise _closed_early()
                    frames = _feed(decoder, chunk)
                    if frames:
                        return _parse_envelope(frames[0])
        except OSError as exc:  # socket.timeout and TimeoutError are OSErrors
            raise _unreachable(*address, exc) from exc

    def _open(self, deadline: float) -> tuple[socket.socket, Address]:
        """A connection to the first address that accepts one (see :mod:`services.client.addresses`)."""
        failures: list[tuple[Address, BaseException]] = []
        for address, timeout in self.addresses.attempts(deadline, failures):
            try:
                conn = self._connect(address, timeout)
            except OSError as exc:
                self.addresses.failed(address)
                failures.append((address, exc))
                continue
            self.addresses.succeeded(address)
            return conn, address
        raise _none_reachable(failures)

    def _connect(self, address: Address, timeout: float) -> socket.socket:
        conn = socket.create_connection(address, timeout=timeout)
        if self.ssl_context is None:
            return conn
        try:
            return self.ssl_context.wrap_socket(conn, server_hostname=self._hostname_for(address))  # handshakes
        except BaseException:
            conn.close()
            raise

    def call(self, command: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        return self._checked(self.request(command, timeout))

    def list_pipelines(self) -> ListPipelinesResponse:
        return self._typed(self.call({"type": "list_pipelines"}), ListPipelinesResponse)

    def initialise(self, payload: Mapping[str, Any] | BaseModel) -> CommandResponse:
        return self._typed(self.call(self._init_command(payload, "init"), self.init_timeout), CommandResponse)

    def initialise_webrtc(self, payload: Mapping[str, Any] | BaseModel) -> InitialiseWebRTCResponse:
        envelope = self.call(self._init_command(payload, "webrtc"), self.init_timeout)
        return self._typed(envelope, InitialiseWebRTCResponse)

    def pause(self, pipeline_id: str) -> CommandResponse:
        return self._typed(self.call({"type": "mute", "pipeline_id": pipeline_id}), CommandResponse)

    mute = pause

    def resume(self, pipeline_id: str) -> CommandResponse:
        return self._typed(self.call({"type": "resume", "pipeline_id": pipeline_id}), CommandResponse)

    def terminate(self, pipeline_id: str) -> CommandResponse:
        return self._typed(self.call({"type": "terminate", "pipeline_id": pipeline_id}), CommandResponse)

    def status(self, pipeline_id: str) -> StatusResponse:
        return self._typed(self.call({"type": "status", "pipeline_id": pipeline_id}), StatusResponse)

    def consume(self, pipeline_id: str, excluded_fields: Iterable[str] = (), max_entries: int = 1) -> ConsumeResponse:
        envelope = self.call(self._consume_command(pipeline_id, excluded_fields, max_entries))
        return self._typed(envelope, ConsumeResponse)

    def put_workflow(self, workspace_name: str, workflow_id: str,
                     specification: Mapping[str, Any]) -> PutWorkflowResponse:
        command = self._workflow_command("put_workflow", workspace_name, workflow_id, specification)
        return self._typed(self.call(command), PutWorkflowResponse)

    def get_workflow(self, workspace_name: str, workflow_id: str) -> WorkflowResponse:
        return self._typed(self.call(self._workflow_command("get_workflow", workspace_name, workflow_id)),
                           WorkflowResponse)

    def list_workflows(self, workspace_name: str | None = None) -> ListWorkflowsResponse:
        return self._typed(self.call(self._list_workflows_command(workspace_name)), ListWorkflowsResponse)

    def delete_workflow(self, workspace_name: str, workflow_id: str) -> CommandResponse:
        return self._typed(self.call(self._workflow_command("delete_workflow", workspace_name, workflow_id)),
                           CommandResponse)

    def list_workers(self) -> ListWorkersResponse:
        return self._typed(self.call({"type": "list_workers"}), ListWorkersResponse)

    def drain_worker(self, hostname: str) -> WorkerResponse:
        return self._typed(self.call({"type": "drain_worker", "hostname": hostname}), WorkerResponse)

    def undrain_worker(self, hostname: str) -> WorkerResponse:
        return self._typed(self.call({"type": "undrain_worker", "hostname": hostname}), WorkerResponse)


def _remaining_or_zero(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining


def _feed(decoder: FrameDecoder, chunk: bytes) -> list[bytes]:
    try:
        return decoder.feed(chunk)
    except FrameTooLargeError as exc:
        raise CommunicationProtocolError(f"reply too large: {exc}", "The stream manager's reply is too large.",
                                         inner_error=exc) from exc
