"""The TCP endpoint: length-prefixed JSON requests in, one reply frame per request out.

Theory of operation: ``asyncio.start_server`` runs one coroutine per connection, so clients are
served concurrently and a slow request (an init waiting for its worker) only delays its own
connection. Each connection feeds every read into ONE ``FrameDecoder``, which reassembles split
headers and bodies and yields each complete frame; frames are answered in order, so a client may
send several requests on one connection (the reference's clients send one and read one). A frame
over the size cap is answered ``invalid_payload`` and the connection closed (the stream cannot be
resynchronised); a connection idle for ``idle_timeout`` is closed; a client that goes away mid-frame
is dropped. Every handler runs under a timeout, and any exception becomes a failure reply: one
client can never stop the server.
"""

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from services.core.errors import InternalError, StreamManagerError, failure_response
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


class StreamManagerServer:
    def __init__(self, settings: ManagerSettings, handlers: Handlers, metrics: ManagerMetrics | None = None) -> None:
        self._settings = settings
        self._handlers = handlers
        self._metrics = metrics or ManagerMetrics()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._settings.host, self._settings.port)
        logger.info("stream manager listening on %s:%d", self._settings.host, self.port)

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
        self._metrics.connected()
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            logger.debug("client went away")
        except asyncio.CancelledError:
            pass  # the server is closing
        except Exception:
            logger.exception("connection failed unexpectedly")
        finally:
            self._metrics.disconnected()
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(self._settings.max_frame_size)
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
                await _send(writer, failure_envelope(new_request_id(), exc, None))
                return
            for body in frames:
                await _send(writer, await self.answer(body))

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
    return Reply(failure_response(exc), getattr(request, "pipeline_id", None))


def _envelope(request_id: str, reply: Reply) -> dict[str, Any]:
    if reply.response.get("status") == "success":
        return success_envelope(request_id, reply.response, reply.pipeline_id)
    # A failure as the task (or a handler) shaped it, relayed unchanged.
    return {"request_id": request_id, "response": reply.response, "pipeline_id": reply.pipeline_id}


async def _send(writer: asyncio.StreamWriter, envelope: dict[str, Any]) -> None:
    writer.write(encode_message(envelope))
    await writer.drain()
