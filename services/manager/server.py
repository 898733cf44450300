"""The TCP endpoint: length-prefixed JSON requests in, one reply frame per request out.

Theory of operation: ``asyncio.start_server`` runs one coroutine per connection, so clients are
served concurrently and a slow request (an init waiting for its worker) only delays its own
connection. Each connection feeds every read into ONE ``FrameDecoder``, which reassembles split
headers and bodies and yields each complete frame; frames are answered in order, so a client may
send several requests on one connection (the reference's clients send one and read one). A frame
over the size cap is answered ``invalid_payload`` and the connection closed (the stream cannot be
resynchronised); a connection idle for ``idle_timeout`` is closed; a client that goes away mid-frame
is dropped. Every handler runs under a timeout, and any exception becomes a failure reply: one
client can never stop the server. Every wait on the network is bounded too: a reply that cannot be
written within ``write_timeout`` (a client that stopped reading, its socket buffers full) aborts the
connection, and closing one waits at most ``CLOSE_TIMEOUT`` for unsent bytes before aborting it, so a
client that never reads cannot hold a server task.

Limits, each refusal naming its setting: beyond ``max_connections`` open connections a new one gets
one ``operation_error`` frame and is closed; each connection has a token bucket of
``max_request_burst`` requests refilled at ``max_requests_per_second``, and a request beyond it is
answered ``operation_error`` without being parsed; after ``RATE_LIMIT_STRIKES`` such refusals in a
row the connection is closed. With TLS settings the endpoint speaks TLS 1.2+ only (optionally
requiring client certificates); a failed handshake (a plaintext client) closes that connection alone.
"""

import asyncio
import contextlib
import logging
import ssl
import time
from typing import Any

from redis.exceptions import RedisError

from services.core.errors import (
    InternalError,
    InvalidPayloadError,
    OperationError,
    StreamManagerError,
    failure_response,
)
from services.core.framing import FrameDecoder, FrameTooLargeError, encode_message
from services.core.messages import (
    InitRequest,
    Request,
    WebRTCRequest,
    failure_envelope,
    new_request_id,
    parse_request,
    success_envelope,
)
from services.manager.handlers import Handlers, Reply
from services.manager.metrics import INVALID, ManagerMetrics
from services.manager.settings import ManagerSettings

logger = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
RATE_LIMIT_STRIKES = 10  # refused requests in a row after which a connection is closed
REFUSAL_LINGER = 1.0  # seconds a refused connection waits for its client to close (so it reads the reply)
HANDSHAKE_TIMEOUT = 10.0  # longest TLS handshake (also bounded by idle_timeout)
# Connections the kernel queues before they are accepted (capped by net.core.somaxconn). asyncio's default,
# 100, overflowed with 256 clients each opening a connection per request (tests/benchmarks/tcp_front.py):
# connections were reset or waited for a SYN retransmit (p99 1.05 s).
LISTEN_BACKLOG = 1024
CLOSE_TIMEOUT = 2.0  # longest a closing connection waits for its unsent bytes to leave before it is aborted


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
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._admitted = 0  # connections being served (refused ones are not counted)

    async def start(self) -> None:
        context = ssl_context(self._settings)
        handshake = min(HANDSHAKE_TIMEOUT, self._settings.idle_timeout) if context is not None else None
        self._server = await asyncio.start_server(self._serve, self._settings.host, self._settings.port,
                                                  ssl=context, ssl_handshake_timeout=handshake, backlog=LISTEN_BACKLOG)
        logger.info("stream manager listening on %s:%d%s", self._settings.host, self.port,
                    " (TLS, client certificates required)" if self._settings.tls_client_ca_file is not None
                    else " (TLS)" if context is not None else "")

    @property
    def port(self) -> int:
        """The bound port (the real one when the settings asked for port 0)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, grace: float = 2.0) -> None:
        """Stops accepting, then cancels the connections still open (waiting at most ``grace`` s:
        a cancellation inside a redis.asyncio call may be swallowed on Python 3.11)."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=grace)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        limit = self._settings.max_connections
        admitted = not limit or self._admitted < limit
        if admitted:
            self._admitted += 1
            self._metrics.connected()
        try:
            if admitted:
                await self._converse(reader, writer)
            else:
                await self._refuse_connection(reader, writer, limit)
        except (ConnectionError, asyncio.IncompleteReadError):
            logger.debug("client went away")
        except WriteTimeoutError:
            logger.warning("closing a connection whose client read no reply for %g s (MANAGER_WRITE_TIMEOUT)",
                           self._settings.write_timeout)
            writer.transport.abort()
        except asyncio.CancelledError:
            pass  # the server is closing
        except Exception:
            logger.exception("connection failed unexpectedly")
        finally:
            if admitted:
                self._admitted -= 1
                self._metrics.disconnected()
            self._connections.discard(task)
            await _close(writer)

    async def _refuse_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                 limit: int) -> None:
        """One failure frame naming the limit, then the connection is closed."""
        logger.warning("refusing a connection: %d connections open (MANAGER_MAX_CONNECTIONS)", limit)
        exc = OperationError(f"connection limit: {limit} connections already open (MANAGER_MAX_CONNECTIONS)",
                             "The stream manager has too many open connections; retry later.")
        self._metrics.answered(INVALID, exc.error_type, 0.0)
        await self._send(writer, failure_envelope(new_request_id(), exc, None))
        # Closing with the client's request unread would reset the connection, and the client could
        # lose the reply: half-close, and give the client a moment to read it and close.
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REFUSAL_LINGER):
                while await reader.read(READ_SIZE):
                    pass

    def _rate_limited(self, bucket: TokenBucket, strikes: int) -> dict[str, Any]:
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
        return failure_envelope(new_request_id(), exc, None)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(self._settings.max_frame_size)
        rate = self._settings.max_requests_per_second
        bucket = TokenBucket(rate, self._settings.max_request_burst) if rate > 0 else None
        strikes = 0  # requests refused in a row by the rate limit
        while True:
            try:
                async with asyncio.timeout(self._settings.idle_timeout):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                logger.debug("closing an idle connection")
                return
            if not data:
                if decoder.pending:
                    logger.debug("client disconnected mid-frame (%d bytes pending)", decoder.pending)
                return
            try:
                frames = decoder.feed(data)
            except FrameTooLargeError as exc:
                self._metrics.answered(INVALID, exc.error_type, 0.0)
                refusal = InvalidPayloadError(f"{exc} (MANAGER_MAX_FRAME_SIZE)", exc.public_message)
                await self._send(writer, failure_envelope(new_request_id(), refusal, None))
                return
            for body in frames:
                if bucket is not None and not bucket.take():
                    strikes += 1
                    await self._send(writer, self._rate_limited(bucket, strikes))
                    if strikes >= RATE_LIMIT_STRIKES:
                        return
                    continue
                strikes = 0
                await self._send(writer, await self.answer(body))

    async def _send(self, writer: asyncio.StreamWriter, envelope: dict[str, Any]) -> None:
        """Writes one reply frame; raises :class:`WriteTimeoutError` when the client has not taken it
        (nor what was queued before it) within ``write_timeout``."""
        writer.write(encode_message(envelope))
        if not writer.transport.get_write_buffer_size():
            return  # the kernel took it all: nothing to wait for (the usual case; a timer per reply cost ~5% CPU)
        try:
            async with asyncio.timeout(self._settings.write_timeout):
                await writer.drain()
        except TimeoutError:
            raise WriteTimeoutError from None

    async def answer(self, body: bytes) -> dict[str, Any]:
        """The reply envelope for one frame body; never raises (but for cancellation)."""
        request_id = new_request_id()
        started = time.perf_counter()
        request: Request | None = None
        self._metrics.request_started()
        try:
            request = parse_request(body)
            async with asyncio.timeout(self._timeout_for(request)):
                reply = await self._handlers.handle(request, request_id)
        except Exception as exc:
            reply = _failure(exc, request)
        finally:
            self._metrics.request_finished()
        elapsed = time.perf_counter() - started
        request_type = getattr(request, "type", INVALID)
        error_type = None if reply.response.get("status") == "success" else str(reply.response.get("error_type"))
        self._metrics.answered(request_type, error_type, elapsed)
        logger.info("%s %s -> %s in %.1f ms", request_type, reply.pipeline_id or "-", error_type or "success",
                    elapsed * 1e3, extra={"pipeline_id": reply.pipeline_id})
        return _envelope(request_id, reply)

    def _timeout_for(self, request: Request) -> float:
        if isinstance(request, InitRequest | WebRTCRequest):
            return self._settings.init_handler_timeout
        return self._settings.handler_timeout


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


def _envelope(request_id: str, reply: Reply) -> dict[str, Any]:
    if reply.response.get("status") == "success":
        return success_envelope(request_id, reply.response, reply.pipeline_id)
    # A failure as the task (or a handler) shaped it, relayed unchanged.
    return {"request_id": request_id, "response": reply.response, "pipeline_id": reply.pipeline_id}


async def _close(writer: asyncio.StreamWriter) -> None:
    """Closes the connection; one whose unsent bytes do not leave within CLOSE_TIMEOUT (its client does not
    read: a plain close would wait for them forever) is aborted."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except Exception:
        logger.debug("error while closing a connection", exc_info=True)
