"""The TCP endpoint: length-prefixed JSON requests in, one reply frame per request out.

Theory of operation. The reference's clients open a connection per request, so what a connection costs is
paid per request (``tests/benchmarks/tcp_front.py``). Without TLS, and closing after the reply (the default),
the server accepts from its own listening sockets (``_accept``), with ``TCP_DEFER_ACCEPT``: the kernel hands
over a new connection once its first bytes have arrived, so the accept's own callback reads the request, and
when it is one whole frame answered without waiting (a LIST answered from memory, a malformed frame, a refused
token: ``Handlers.answer_at_once``) sends the reply and closes the socket there (``_one_shot``): no transport,
no protocol object, no task, no further turn of the event loop, and the close right after the reply, so the
server, not its client, keeps the TIME_WAIT. A request that must wait (a STATUS reading Redis, an init waiting
for its worker) is answered the same way by one task. Anything else (a request not there yet, split or followed
by more, ``keep_alive``, a reply the kernel did not take whole, the connection limit reached) is handed to a
:class:`_Connection` with the bytes read so far (``_adopt``). Measured at 4 clients on 2 cores, 2026-12-05
(``tests/benchmarks/tcp_front.py``): 17-18 against 39 us of the server's CPU per request through a
``_Connection``, and 2.2-2.3 times the reference's throughput instead of 0.86 (the client no longer keeps the
TIME_WAIT: a transport's close comes a turn of the event loop after the reply, and the client, woken by the
reply, had often closed first).

Each connection that is not answered so (and every one with TLS, or with ``close_after_reply`` off, accepted by
asyncio's server) is one :class:`_Connection` protocol on the event loop, with no stream objects and no task
until a request arrives. Every read is fed into ONE ``FrameDecoder``, which reassembles split headers and
bodies and yields each complete frame into the connection's queue, which is answered in order: at once, in the
read's own callback, while each reply is made without waiting; from the first request that must wait, by one
task for that connection, until its queue is empty. A slow request only delays its own connection. Reading
pauses while a connection has ``QUEUE_LIMIT`` frames waiting, so a client that floods requests is held back by
TCP.

Who closes: as the reference does, the server closes a connection after its reply, once nothing more from
the client is waiting to be answered (``_done``: a client that sent several requests at once gets every
reply first, and no connection is closed with input unread, which would reset it). The side that closes first
keeps the connection in TIME_WAIT, and a client holding thousands of its own ports there makes each of its
``connect()`` calls search for a free one: from 4 clients up, the bare asyncio server of
tests/benchmarks/tcp_front.py answers two to three times as many connections a second when it closes first as
when it leaves the close to its client (docs/benchmarks.md, "TCP front"). A request with ``"keep_alive": true``
keeps its connection open from then on (the API's pool, our load benchmark), until a request says false;
``close_after_reply`` off keeps every connection open.

A frame over the size cap is answered ``invalid_payload`` and the connection closed (the stream cannot
be resynchronised); a client that closes its side gets the replies to what it sent, then the connection
is closed. Every handler runs under a timeout, and any exception becomes a failure
reply: one client can never stop the server.

Every wait on the network is bounded: a connection idle for ``idle_timeout`` (nothing received, no
request being answered) is closed by one sweep over all connections (``_sweep``, every
``idle_timeout`` / 4 at most one second, so it is closed within 1.25 times ``idle_timeout``; a timer per
read cost more than the rest of a request); a reply that cannot be written within ``write_timeout``
(a client that stopped reading, its socket buffers full) aborts the connection, and closing one waits
at most ``CLOSE_TIMEOUT`` for unsent bytes before aborting it, so a client that never reads cannot
hold a connection.

Limits, each refusal naming its setting: beyond ``max_connections`` open connections a new one gets
one ``operation_error`` frame and is closed; each connection has a token bucket of
``max_request_burst`` requests refilled at ``max_requests_per_second``, and a request beyond it is
answered ``operation_error`` without being parsed; after ``RATE_LIMIT_STRIKES`` such refusals in a
row the connection is closed. With TLS settings the endpoint speaks TLS 1.2+ only (optionally
requiring client certificates); a failed handshake (a plaintext client) closes that connection alone.
"""

import asyncio
import contextlib
import fcntl
import functools
import logging
import socket
import ssl
import sys
import termios
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass

from redis.exceptions import RedisError

from services.core.errors import (
    InternalError,
    InvalidPayloadError,
    OperationError,
    StreamManagerError,
    failure_response,
)
from services.core.framing import HEADER_SIZE, FrameDecoder, FrameTooLargeError, encode_frame, encode_message
from services.core.messages import (
    InitRequest,
    Request,
    WebRTCRequest,
    encoded_envelope,
    envelope,
    failure_envelope,
    new_request_id,
    parse_request,
    success_envelope,
)
from services.manager.handlers import Handlers, Reply
from services.manager.metrics import INVALID, ManagerMetrics
from services.manager.settings import ManagerSettings

logger = logging.getLogger(__name__)

QUEUE_LIMIT = 16  # frames waiting on one connection beyond which it is read no further until answered
RATE_LIMIT_STRIKES = 10  # refused requests in a row after which a connection is closed
REFUSAL_LINGER = 1.0  # seconds a refused connection waits for its client to close (so it reads the reply)
HANDSHAKE_TIMEOUT = 10.0  # longest TLS handshake (also bounded by idle_timeout)
# Connections the kernel queues before they are accepted (capped by net.core.somaxconn). asyncio's default,
# 100, overflowed with 256 clients each opening a connection per request (tests/benchmarks/tcp_front.py):
# connections were reset or waited for a SYN retransmit (p99 1.05 s).
LISTEN_BACKLOG = 1024
CLOSE_TIMEOUT = 2.0  # longest a closing connection waits for its unsent bytes to leave before it is aborted
# Seconds the kernel holds a new connection for its first bytes before it is accepted (TCP_DEFER_ACCEPT): the
# request is then read in the accept's own callback. A client that sends nothing for that long is accepted anyway.
DEFER_ACCEPT = 1
ACCEPT_BATCH = 64  # connections accepted per wake-up of a listening socket before other callbacks run
ACCEPT_RETRY_DELAY = 1.0  # seconds accepting pauses when the process runs out of descriptors or memory
ONE_SHOT_READ = 65536  # the first read of a new connection; a read that fills it is handed to a _Connection


class WriteTimeoutError(Exception):
    """A reply could not be written within ``write_timeout``: the client does not read."""


def ssl_context(settings: ManagerSettings) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or later) from the settings' PEM files; None without TLS."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    if settings.tls_client_ca_file is not None:
        context.load_verify_locations(cafile=settings.tls_client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class TokenBucket:
    """``rate`` requests per second on average, at most ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class StreamManagerServer:
    def __init__(self, settings: ManagerSettings, handlers: Handlers, metrics: ManagerMetrics | None = None) -> None:
        self._settings = settings
        self._handlers = handlers
        self._metrics = metrics or ManagerMetrics()
        self._metrics.watch_connections(lambda: self._admitted)
        self._server: asyncio.Server | None = None  # with TLS or close_after_reply off: asyncio accepts
        self._listeners: list[socket.socket] = []  # else the listening sockets this server accepts from itself
        self._one_shots: dict[asyncio.Task[None], socket.socket] = {}  # new connections answered or handed over
        self._connections: set[_Connection] = set()
        self._admitted = 0  # connections being served (refused ones are not counted)
        self._sweeper: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the serving loop (asking for it costs a system call)

    async def start(self) -> None:
        context = ssl_context(self._settings)
        handshake = min(HANDSHAKE_TIMEOUT, self._settings.idle_timeout) if context is not None else None
        loop = self.loop = asyncio.get_running_loop()
        if context is None and self._settings.close_after_reply:
            self._listeners = _listening_sockets(self._settings.host, self._settings.port)
            for listener in self._listeners:
                loop.add_reader(listener.fileno(), self._accept, listener)
        else:
            self._server = await loop.create_server(lambda: _Connection(self), self._settings.host,
                                                    self._settings.port, ssl=context, ssl_handshake_timeout=handshake,
                                                    backlog=LISTEN_BACKLOG)
        self._sweeper = loop.call_later(self._sweep_interval, self._sweep)
        logger.info("stream manager listening on %s:%d%s", self._settings.host, self.port,
                    " (TLS, client certificates required)" if self._settings.tls_client_ca_file is not None
                    else " (TLS)" if context is not None else "")

    @property
    def port(self) -> int:
        """The bound port (the real one when the settings asked for port 0)."""
        if self._server is not None:
            return int(self._server.sockets[0].getsockname()[1])
        if self._listeners:
            return int(self._listeners[0].getsockname()[1])
        raise RuntimeError("the server is not started")

    async def close(self, grace: float = 2.0) -> None:
        """Stops accepting, cancels the requests being answered (waiting at most ``grace`` s: a
        cancellation inside a redis.asyncio call may be swallowed on Python 3.11), then closes every
        connection, those whose request is still being answered included: none outlives the server."""
        if self._server is None and not self._listeners:
            return
        if self._server is not None:
            self._server.close()
        for listener in self._listeners:
            if self.loop is not None:
                self.loop.remove_reader(listener.fileno())
            listener.close()
        self._listeners = []
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        busy = [connection.task for connection in self._connections if connection.task is not None]
        busy += self._one_shots
        for task in busy:
            task.cancel()
        if busy:
            await asyncio.wait(busy, timeout=grace)
        for sock in self._one_shots.values():  # a task that swallowed its cancellation: its reply finds it closed
            sock.close()
        for connection in list(self._connections):
            connection.finish()
        self._server = None

    # -- connections accepted by this server (plain TCP, closing after the reply): see the module's docstring

    def _accept(self, listener: socket.socket) -> None:
        """Accepts the connections waiting on ``listener`` (at most ``ACCEPT_BATCH`` per wake-up)."""
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _address = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:  # out of descriptors (EMFILE, ENFILE) or memory: the backlog waits
                logger.error("cannot accept a connection (%s); accepting again in %g s", exc, ACCEPT_RETRY_DELAY)
                assert self.loop is not None
                self.loop.remove_reader(listener.fileno())
                self.loop.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting, listener)
                return
            self._one_shot(sock)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if listener in self._listeners and self.loop is not None:
            self.loop.add_reader(listener.fileno(), self._accept, listener)

    def _one_shot(self, sock: socket.socket) -> None:
        """Serves a new connection whose one request came with it: answered here when that needs no waiting,
        by a task of its own when it does; anything else (no request yet, a frame not whole, more than one,
        the connection limit reached) is handed to a :class:`_Connection` with the bytes read so far."""
        try:
            data = sock.recv(ONE_SHOT_READ, socket.MSG_DONTWAIT)
        except BlockingIOError:
            self._adopt(sock)  # no request within DEFER_ACCEPT
            return
        except OSError:
            sock.close()  # reset before its request
            return
        if not data:
            sock.close()  # closed without a request (a port probe)
            return
        size = int.from_bytes(data[:HEADER_SIZE], "big")
        limit = self._settings.max_connections
        if (len(data) != HEADER_SIZE + size or size > self._settings.max_frame_size or len(data) == ONE_SHOT_READ
                or (limit and self._admitted >= limit)):
            self._adopt(sock, data)
            return
        answer, keep_alive = self.answer_at_once(data[HEADER_SIZE:])
        if isinstance(answer, _Pending):
            self._spawn(self._answer_one_shot(sock, answer), sock, admitted=True)
            return
        self._reply_one_shot(sock, answer, keep_alive)

    async def _answer_one_shot(self, sock: socket.socket, pending: "_Pending") -> None:
        self._reply_one_shot(sock, await self.answer_later(pending), pending.request.keep_alive)

    def _reply_one_shot(self, sock: socket.socket, frame: bytes, keep_alive: bool | None) -> None:
        """Sends a new connection's one reply and closes it, as the reference does; the connection goes on as a
        :class:`_Connection` when its request asked ``keep_alive``, when more from its client waits (a second
        request: it is answered too), or with the part of the reply the kernel did not take."""
        try:
            sent = sock.send(frame, socket.MSG_DONTWAIT)
            if sent == len(frame) and not keep_alive and _unread_bytes(sock.fileno()) == 0:
                sock.close()
                return
        except BlockingIOError:
            sent = 0
        except OSError:  # the client went away
            sock.close()
            return
        self._adopt(sock, output=frame[sent:], keep_alive=bool(keep_alive), answered=True)

    def _adopt(self, sock: socket.socket, data: bytes = b"", output: bytes = b"", keep_alive: bool = False,
               answered: bool = False) -> None:
        """Hands an accepted socket to a :class:`_Connection` that first writes ``output``, then reads ``data``;
        ``answered``: its first request was admitted and answered here, so the connection limit does not refuse it
        (a refusal after part of a reply would corrupt the stream)."""
        self._spawn(self._adopted(sock, data, output, keep_alive, answered), sock, admitted=answered)

    async def _adopted(self, sock: socket.socket, data: bytes, output: bytes, keep_alive: bool,
                       answered: bool) -> None:
        assert self.loop is not None
        sock.setblocking(False)
        await self.loop.connect_accepted_socket(lambda: _Connection(self, data, output, keep_alive, answered), sock)

    def _spawn(self, work: Coroutine[None, None, None], sock: socket.socket, admitted: bool = False) -> None:
        """Runs ``work`` for a socket accepted here; when it fails or is cancelled (the server closing) before the
        socket is closed or handed over, closes the socket. ``admitted``: it counts among the connections served
        while it runs (a connection handed over then counts itself)."""
        assert self.loop is not None
        if admitted:
            self._admitted += 1
        task = self.loop.create_task(work)
        self._one_shots[task] = sock
        task.add_done_callback(functools.partial(self._spawned, sock, admitted))

    def _spawned(self, sock: socket.socket, admitted: bool, task: "asyncio.Task[None]") -> None:
        self._one_shots.pop(task, None)
        if admitted:
            self._admitted -= 1
        if task.cancelled() or task.exception() is not None:
            if not task.cancelled():
                logger.warning("could not serve an accepted connection: %r", task.exception())
            sock.close()  # nothing when its transport has it (uvloop detaches it, asyncio closes this very object)

    @property
    def _sweep_interval(self) -> float:
        return min(self._settings.idle_timeout / 4, 1.0)

    def _sweep(self) -> None:
        """Closes the connections idle for ``idle_timeout``; runs every ``_sweep_interval``."""
        now = time.monotonic()
        idle = self._settings.idle_timeout
        for connection in list(self._connections):
            if connection.idle_since(now) >= idle:
                logger.debug("closing an idle connection")
                connection.finish()
        assert self.loop is not None
        self._sweeper = self.loop.call_later(self._sweep_interval, self._sweep)

    def _admit(self, connection: "_Connection", admitted: bool = False) -> bool:
        """Counts a new connection; False (and it is not counted) beyond ``max_connections``, unless it was
        ``admitted`` already (a connection whose first request was answered before it was handed over)."""
        self._connections.add(connection)
        limit = self._settings.max_connections
        if limit and self._admitted >= limit and not admitted:
            return False
        self._admitted += 1
        return True

    def _release(self, connection: "_Connection", admitted: bool) -> None:
        self._connections.discard(connection)
        if admitted:
            self._admitted -= 1

    def _refusal(self) -> bytes:
        limit = self._settings.max_connections
        logger.warning("refusing a connection: %d connections open (MANAGER_MAX_CONNECTIONS)", limit)
        exc = OperationError(f"connection limit: {limit} connections already open (MANAGER_MAX_CONNECTIONS)",
                             "The stream manager has too many open connections; retry later.")
        self._metrics.answered(INVALID, exc.error_type, 0.0)
        return encode_message(failure_envelope(new_request_id(), exc, None))

    def _rate_limited(self, bucket: TokenBucket, strikes: int) -> bytes:
        closing = f"; closing the connection after {strikes} refused requests in a row" \
            if strikes >= RATE_LIMIT_STRIKES else ""
        exc = OperationError(
            f"rate limit: more than {bucket.rate:g} requests/s on this connection (burst {bucket.burst}; "
            f"MANAGER_MAX_REQUESTS_PER_SECOND){closing}",
            "Too many requests on this connection; slow down.",
        )
        self._metrics.answered(INVALID, exc.error_type, 0.0)
        if strikes == 1:
            logger.warning("rate limit: more than %g requests/s on a connection", bucket.rate)
        return encode_message(failure_envelope(new_request_id(), exc, None))

    def _too_large(self, exc: FrameTooLargeError) -> bytes:
        self._metrics.answered(INVALID, exc.error_type, 0.0)
        refusal = InvalidPayloadError(f"{exc} (MANAGER_MAX_FRAME_SIZE)", exc.public_message)
        return encode_message(failure_envelope(new_request_id(), refusal, None))

    def answer_at_once(self, body: bytes) -> "tuple[bytes | _Pending, bool | None]":
        """The reply frame for one frame body when it is made without waiting for anything (a malformed
        frame, a refused token, a LIST answered from memory), else the parsed request for
        :meth:`answer_later`; and the request's ``keep_alive`` (None when it has none or did not parse).
        Never raises. A reply made at once is never counted in flight."""
        request_id = new_request_id()
        started = time.perf_counter()
        request: Request | None = None
        try:
            request = parse_request(body)
            reply = self._handlers.answer_at_once(request)
        except Exception as exc:
            reply = _failure(exc, request)
        keep_alive = None if request is None else request.keep_alive
        if reply is None:
            assert request is not None
            return _Pending(request, request_id, started), keep_alive
        return self._answered(request, request_id, started, reply), keep_alive

    async def answer_later(self, pending: "_Pending") -> bytes:
        """The reply frame for a request :meth:`answer_at_once` left; never raises (but for cancellation)."""
        request = pending.request
        self._metrics.request_started()
        try:
            async with asyncio.timeout(self._timeout_for(request)):
                reply = await self._handlers.handle(request, pending.request_id)
        except Exception as exc:
            reply = _failure(exc, request)
        finally:
            self._metrics.request_finished()
        return self._answered(request, pending.request_id, pending.started, reply)

    def _answered(self, request: Request | None, request_id: str, started: float, reply: Reply) -> bytes:
        """Counts and logs one reply; its frame."""
        elapsed = time.perf_counter() - started
        request_type = getattr(request, "type", INVALID)
        error_type = None if reply.response.get("status") == "success" else str(reply.response.get("error_type"))
        self._metrics.answered(request_type, error_type, elapsed)
        if logger.isEnabledFor(logging.INFO):
            logger.info("%s %s -> %s in %.1f ms", request_type, reply.pipeline_id or "-", error_type or "success",
                        elapsed * 1e3, extra={"pipeline_id": reply.pipeline_id})
        return _reply_frame(request_id, reply)

    def _timeout_for(self, request: Request) -> float:
        if isinstance(request, InitRequest | WebRTCRequest):
            return self._settings.init_handler_timeout
        return self._settings.handler_timeout


@dataclass(frozen=True, slots=True)
class _Pending:
    """A request parsed, not answered yet: what :meth:`StreamManagerServer.answer_later` answers."""

    request: Request
    request_id: str
    started: float  # time.perf_counter() when its frame was taken up


class _Connection(asyncio.Protocol):
    """One client connection: frames in, replies out in order (see the module's theory of operation)."""

    def __init__(self, server: StreamManagerServer, data: bytes = b"", output: bytes = b"",
                 keep_alive: bool = False, answered: bool = False) -> None:
        self._server = server
        self._answered = answered  # its first request was answered before the server handed it over
        self._adopted_data = data  # what the server read before handing the connection over (see _adopt)
        self._adopted_output = output
        self._settings = server._settings
        assert server.loop is not None
        self._loop = server.loop
        self._transport: asyncio.Transport | None = None
        self._admitted = False
        self._refused = False
        self._tls = False
        self._decoder: FrameDecoder | None = None
        self._bucket: TokenBucket | None = None
        self._strikes = 0  # requests refused in a row by the rate limit
        self._queue: deque[bytes | FrameTooLargeError] = deque()
        self.task: asyncio.Task[None] | None = None  # answering the queue; None while there is nothing to answer
        self._reading = True
        self._eof = False  # close once what was received is answered (the client closed its side, or a refusal)
        self._keep_alive = keep_alive or not self._settings.close_after_reply  # until a request says otherwise
        self._fd: int | None = None  # the socket's descriptor, once asked for (-1: none)
        self._closing = False
        self._lost = False
        self._last_active = time.monotonic()
        self._paused = False  # the transport's buffer is over its high-water mark
        self._drained: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the refusal's linger or the close's deadline

    # -- the protocol's callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no subclass)
        self._tls = transport.get_extra_info("sslcontext") is not None
        if not self._server._admit(self, self._answered):
            self._refuse()
            return
        self._admitted = True
        self._decoder = FrameDecoder(self._settings.max_frame_size)
        rate = self._settings.max_requests_per_second
        if rate > 0:
            self._bucket = TokenBucket(rate, self._settings.max_request_burst)
        if self._adopted_output:
            self._write(self._adopted_output)
            if not self._adopted_data and self._done():
                self.finish()
        if self._adopted_data:
            self.data_received(self._adopted_data)
        self._adopted_data = self._adopted_output = b""

    def data_received(self, data: bytes) -> None:
        if self._refused or self._closing or self._decoder is None:
            return  # a refused connection's request, or bytes after an oversized frame: not read
        self._last_active = time.monotonic()
        try:
            self._queue.extend(self._decoder.feed(data))
        except FrameTooLargeError as exc:
            self._queue.append(exc)  # answered in turn, then the connection is closed
        if self._queue:
            if len(self._queue) >= QUEUE_LIMIT:
                self._pause_reading()
            if self.task is None:
                self._serve()

    def eof_received(self) -> bool:
        if self._decoder is not None and self._decoder.pending:
            logger.debug("client disconnected mid-frame (%d bytes pending)", self._decoder.pending)
        self._eof = True
        if self.task is None:
            self.finish()
        # Half-open until the replies to what was sent are written; TLS has no half-close (the transport
        # closes, and a reply still being made is dropped).
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            logger.debug("client went away: %r", exc)
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
        self._wake_writer()
        self._server._release(self, self._admitted)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writer()

    # -- the rest

    def idle_since(self, now: float) -> float:
        """Seconds since the client last sent anything; 0 while a request is answered or once closing."""
        if self.task is not None or self._closing or self._refused:
            return 0.0
        return now - self._last_active

    def finish(self) -> None:
        """Closes the connection once its unsent bytes are out, aborting it after ``CLOSE_TIMEOUT``."""
        if self._closing or self._lost or self._transport is None:
            return
        self._closing = True
        self._transport.close()
        if self._transport.get_write_buffer_size():
            self._timer = self._loop.call_later(CLOSE_TIMEOUT, self._transport.abort)

    def _refuse(self) -> None:
        """One failure frame naming the limit, then the connection is closed. Closing with the client's
        request unread would reset the connection, and the client could lose the reply: half-close, and
        give the client ``REFUSAL_LINGER`` to read it and close."""
        assert self._transport is not None
        self._refused = True
        self._transport.write(self._server._refusal())
        if self._transport.can_write_eof():
            self._transport.write_eof()
        self._timer = self._loop.call_later(REFUSAL_LINGER, self.finish)

    def _pause_reading(self) -> None:
        if self._reading and self._transport is not None:
            self._reading = False
            self._transport.pause_reading()

    def _wake_writer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _serve(self) -> None:
        """Answers the queue in order, at once while each reply is made without waiting; the first request
        that must wait (or a client that has not taken its replies yet) hands the rest to a task."""
        try:
            while self._queue and not self._lost and not self._closing and not self._paused:
                pending = self._next()
                if pending is not None:
                    self.task = self._loop.create_task(self._answer_queue(pending))
                    return
            if self._paused and not self._lost and not self._closing:
                self.task = self._loop.create_task(self._answer_queue(None))  # bounded by write_timeout
                return
        except Exception:
            logger.exception("connection failed unexpectedly")
            self._eof = True
        if self._done():
            self.finish()
        self._last_active = time.monotonic()

    def _next(self) -> _Pending | None:
        """Takes the next frame: answers it when that needs no waiting, else returns it parsed."""
        server = self._server
        item = self._queue.popleft()
        if not self._reading and len(self._queue) < QUEUE_LIMIT and self._transport is not None:
            self._reading = True
            self._transport.resume_reading()
        if isinstance(item, FrameTooLargeError):
            self._write(server._too_large(item))
            self._queue.clear()
            self._eof = True
            return None
        if self._bucket is not None and not self._bucket.take():
            self._strikes += 1
            self._write(server._rate_limited(self._bucket, self._strikes))
            if self._strikes >= RATE_LIMIT_STRIKES:
                self._queue.clear()
                self._eof = True
            return None
        self._strikes = 0
        answer, keep_alive = server.answer_at_once(item)
        if isinstance(answer, _Pending):
            return answer
        self._write(answer)
        self._replied(keep_alive)
        return None

    def _replied(self, keep_alive: bool | None) -> None:
        """After each reply: a request's ``keep_alive`` holds for the connection from then on."""
        if keep_alive is not None:
            self._keep_alive = keep_alive

    def _done(self) -> bool:
        """Whether the connection is to be closed now that its queue is answered: the client closed its side
        (or it is closed for an oversized frame, the rate limit), or it is not kept alive and nothing more from
        the client is waiting (no frame begun, no unread byte: ``_unread_bytes``). So a client that sent several
        requests at once gets every reply, and the reference's client, which waits for its one reply, gets it
        and the close."""
        if self._closing or self._lost:
            return False  # closed already (its descriptor may belong to another connection by now)
        if self._eof:
            return True
        if self._keep_alive or self._decoder is None or self._decoder.pending:
            return False
        if self._fd is None:
            sock = self._transport.get_extra_info("socket") if self._transport is not None else None
            self._fd = sock.fileno() if sock is not None else -1
        try:
            return self._fd < 0 or _unread_bytes(self._fd) == 0
        except OSError:  # the socket is gone: nothing to wait for
            return True

    async def _answer_queue(self, pending: _Pending | None) -> None:
        """Answers ``pending`` (when there is one), waits until the client has taken the replies, and
        goes on with the queue the same way."""
        server = self._server
        try:
            while True:
                if pending is not None:
                    frame = await server.answer_later(pending)
                    if self._lost:
                        logger.debug("client went away before its reply")
                        break
                    self._write(frame)
                    self._replied(pending.request.keep_alive)
                await self._drain()
                if not self._queue or self._lost or self._closing:
                    break
                pending = self._next()
        except WriteTimeoutError:
            logger.warning("closing a connection whose client read no reply for %g s (MANAGER_WRITE_TIMEOUT)",
                           self._settings.write_timeout)
            if self._transport is not None:
                self._transport.abort()
        except asyncio.CancelledError:
            pass  # the server is closing
        except Exception:
            logger.exception("connection failed unexpectedly")
            self._eof = True
        finally:
            self.task = None
        if self._done():
            self.finish()
        self._last_active = time.monotonic()

    def _write(self, frame: bytes) -> None:
        """Writes one reply frame (the transport keeps what the kernel does not take yet)."""
        if self._closing or self._lost or self._transport is None:
            return
        self._transport.write(frame)

    async def _drain(self) -> None:
        """Returns once the transport's buffer is under its high-water mark; raises
        :class:`WriteTimeoutError` when the client has not taken enough of it within ``write_timeout``."""
        if not self._paused or self._closing or self._lost:
            return  # the usual case: the kernel took it all
        self._drained = self._loop.create_future()
        try:
            async with asyncio.timeout(self._settings.write_timeout):
                await self._drained
        except TimeoutError:
            raise WriteTimeoutError from None


def _listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Non-blocking sockets listening on ``port`` of every address ``host`` resolves to (as asyncio's
    ``create_server`` binds them), each with ``TCP_DEFER_ACCEPT`` where the platform has it."""
    sockets: list[socket.socket] = []
    bound: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                                  flags=socket.AI_PASSIVE):
            if (family, address) in bound:
                continue
            bound.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
            with contextlib.suppress(AttributeError, OSError):  # Linux's; elsewhere the request comes a read later
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _unread_bytes(fd: int) -> int:
    """Bytes received on the socket ``fd`` and not read yet (FIONREAD)."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, bytes(4)), sys.byteorder)


def _failure(exc: Exception, request: Request | None) -> Reply:
    """The reply for a handler's exception; foreign errors are mapped once, here."""
    if isinstance(exc, TimeoutError):
        exc = InternalError("the request timed out in the stream manager")
    elif isinstance(exc, RedisError):
        exc = InternalError(f"Redis is unavailable: {type(exc).__name__}: {exc}",
                            "The stream manager cannot reach its state store.")
    elif not isinstance(exc, StreamManagerError):
        logger.exception("unexpected error handling a %s request", getattr(request, "type", "invalid"))
    # Only per-pipeline requests echo their id; an INIT's extra keys (a stray "pipeline_id": 0) never do.
    echoed = None if isinstance(request, InitRequest | WebRTCRequest) else getattr(request, "pipeline_id", None)
    return Reply(failure_response(exc), echoed)


def _reply_frame(request_id: str, reply: Reply) -> bytes:
    if reply.encoded is not None:
        return encode_frame(encoded_envelope(request_id, reply.encoded, reply.pipeline_id))
    if reply.response.get("status") == "success":
        return encode_message(success_envelope(request_id, reply.response, reply.pipeline_id))
    return encode_message(envelope(request_id, reply.response, reply.pipeline_id))  # a failure, relayed unchanged

