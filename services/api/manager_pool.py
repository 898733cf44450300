"""A bounded pool of persistent connections from the HTTP API to the stream manager.

Theory of operation: the manager answers several requests per connection, in order and one at a
time, when each asks ``"keep_alive": true`` (without it the manager closes the connection after the
reply, as the reference does: :mod:`services.manager.server`); its replies carry no id of the client's
choosing. So a
connection here carries ONE request at a time: pipelining would make each reply wait for the
requests before it on the same connection (a slow INIT would hold up the STATUS behind it), and a
connection lost with several requests outstanding would leave each one's fate unknown.

:class:`ManagerPool` holds at most ``size`` connections. A semaphore of ``size`` slots bounds the
requests in flight, so ``size`` connections always suffice: a request takes a slot, then the most
recently used idle connection (or opens one), sends one frame, waits for one frame and gives both
back. Connections are asyncio protocols, so one that the manager closes (its idle timeout, a restart)
is noticed when its FIN arrives and leaves the idle list at once: a request never writes on a
connection already known to be closed. An idle connection is closed after ``idle_timeout`` (keep it
below the manager's ``MANAGER_IDLE_TIMEOUT``, so the manager never closes one as a request is being
written on it), and a connection is retired after ``max_requests`` requests. The manager rate-limits
each connection (``MANAGER_MAX_REQUESTS_PER_SECOND``, bursts of ``MANAGER_MAX_REQUEST_BURST``): a
limit meant for one client, not for the API that carries every client's requests. A connection that
carries fewer requests than the burst is never refused, so the API is not rate-limited, as it was
not when it opened a connection per command.

Failures: a connection lost before its reply (reset, or closed) is closed, never reused. When it had
been reused from the pool and the request is a read (:data:`READ_COMMANDS`), the request is sent once
more, on a new connection: the manager may have closed a pooled connection at that very moment (a
restart). Any other command is never sent twice once written: the manager may have carried it out (a
second INIT would start a second pipeline); its caller gets the error, as with a connection per
command. CONSUME_RESULT is not a read here: it moves the pipeline's cursor, so sending it twice could
skip results. A request past its deadline closes its connection, so its late reply can never answer
the next request. The errors are those of the one-connection client: ``OSError`` and ``TimeoutError``
become :class:`~services.client.errors.ConnectivityError` in :class:`PooledManagerClient`, a
connection closed before its reply or an oversized reply is a ``CommunicationProtocolError``.

Several managers (``API_MANAGER_ADDRESSES``): a new connection goes to the first address that accepts
one, in the order of :mod:`services.client.addresses` (an address whose connection failed is tried
after the others for a few seconds); a failed connect moves on to the next address at once, as no
request was written. Pooled connections keep the manager they were opened to. When a manager dies its
connections see their FIN or reset and leave the pool; a request written on one just then fails as
above (a read is sent again on a new connection, which the next manager takes).
"""

import asyncio
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from services.client.addresses import DEFAULT_CONNECT_TIMEOUT, DEFAULT_RETRY_AFTER, Address, AddressList
from services.client.errors import CommunicationProtocolError
from services.client.tcp import (
    DEFAULT_INIT_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_REPLY_SIZE,
    AddressesOption,
    AsyncManagerClient,
    TLSOption,
    _closed_early,
    _none_reachable,
    _parse_envelope,
    _unreachable,
)
from services.core.framing import FrameDecoder, FrameTooLargeError, encode_message
from services.infra.pipeline_reads import StoredReads

logger = logging.getLogger(__name__)

# Commands that change nothing: sent a second time when a pooled connection fails under them.
READ_COMMANDS = frozenset({"list_pipelines", "status", "get_workflow", "list_workflows"})

DEFAULT_POOL_SIZE = 8
DEFAULT_IDLE_TIMEOUT = 10.0  # below the manager's own (MANAGER_IDLE_TIMEOUT, 30 s by default)
DEFAULT_MAX_REQUESTS = 100  # below the manager's burst per connection (MANAGER_MAX_REQUEST_BURST, 200)


class _ConnectionLost(Exception):
    """The connection ended before the reply; ``cause`` is the socket's error (None: closed cleanly),
    ``written`` whether the request had been handed to the connection."""

    def __init__(self, cause: Exception | None, written: bool = True) -> None:
        super().__init__(str(cause) if cause else "closed")
        self.cause = cause
        self.written = written

    def public(self) -> Exception:
        """The error the one-connection client raises for the same failure."""
        return self.cause if isinstance(self.cause, OSError) else _closed_early()


class _Connection(asyncio.Protocol):
    """One connection to the manager: sends one frame, resolves the reply's future with one frame."""

    def __init__(self, pool: "ManagerPool", max_reply: int, address: Address) -> None:
        self._pool = pool
        self.address = address  # the manager it was opened to
        self._decoder = FrameDecoder(max_reply)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[bytes] | None = None
        self._early: bytes | None = None  # a frame sent before any request: the manager's refusal on accept
        self.sent = 0  # requests written
        self.closed = False
        self.idle_since = 0.0
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # the transport closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameTooLargeError as exc:
            self._fail(CommunicationProtocolError(f"reply too large: {exc}",
                                                  "The stream manager's reply is too large.", inner_error=exc))
            return
        for frame in frames:
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)
            elif self.sent == 0 and self._early is None:
                self._early = frame  # the reply to the request still to come, as a fresh connection would get it
            else:
                self._fail(CommunicationProtocolError("the stream manager sent a frame that answers no request",
                                                      "The stream manager's reply is malformed."))
                return

    def eof_received(self) -> bool:
        self._lost(None)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)
        if not self.gone.done():
            self.gone.set_result(None)

    def _lost(self, exc: Exception | None) -> None:
        self._fail(_ConnectionLost(exc))

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._pool._forget(self)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def exchange(self, frame: bytes) -> bytes:
        """The reply frame to ``frame``; raises :class:`_ConnectionLost` or ``CommunicationProtocolError``."""
        if self._early is not None:  # answered before asked: the manager refused the connection
            early, self._early = self._early, None
            self.close()
            return early
        if self.closed or self._transport is None:
            raise _ConnectionLost(None, written=False)
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.sent += 1
        self._transport.write(frame)
        return await waiter


class ManagerPool:
    """At most ``size`` persistent connections to ``host:port`` (or to the managers of ``addresses``), one
    request in flight on each.

    ``idle_timeout``: seconds an unused connection is kept; ``max_requests``: requests a connection
    carries before it is closed (0: no limit). The pool belongs to the event loop that first uses it
    (a later loop starts it afresh); :meth:`aclose` closes every connection and refuses later requests.
    """

    def __init__(self, host: str, port: int, *, size: int = DEFAULT_POOL_SIZE,
                 ssl_context: ssl.SSLContext | None = None, server_hostname: str | None = None,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_requests: int = DEFAULT_MAX_REQUESTS,
                 max_reply: int = MAX_REPLY_SIZE, addresses: AddressList | None = None) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one connection, got size={size}")
        if max_requests < 0:
            raise ValueError(f"max_requests must be 0 (no limit) or more, got {max_requests}")
        self.host, self.port, self.size = host, port, size
        self.addresses = addresses or AddressList(((host, port),))
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname if ssl_context is not None else None
        self._idle_timeout = idle_timeout
        self._max_requests = max_requests
        self._max_reply = max_reply
        self._idle: deque[_Connection] = deque()  # the most recently used on the right
        self._open: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._closed = False
        self.opened = 0  # connections opened so far

    def __repr__(self) -> str:
        return (f"ManagerPool({self.addresses}, {len(self._open)}/{self.size} open"
                f"{', TLS' if self._ssl_context else ''})")

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def exchange(self, frame: bytes, *, read: bool) -> bytes:
        """The manager's reply frame to ``frame``. ``read``: the command changes nothing, so it may be sent
        again when a pooled connection turns out to be dead. Cancelling it (a deadline) closes its connection."""
        async with self._bind():
            connection = self._take()
            if connection is not None:
                try:
                    return await self._send(connection, frame)
                except _ConnectionLost as lost:
                    if lost.written and not read:
                        raise _public(lost, connection) from None
                    logger.debug("a pooled manager connection was lost (%s); sending the read again", lost)
            connection = await self._connect()
            try:
                return await self._send(connection, frame)
            except _ConnectionLost as lost:
                raise _public(lost, connection) from None

    async def aclose(self, grace: float = 1.0) -> None:
        """Closes every connection (waiting up to ``grace`` s for TLS to say goodbye); later requests fail
        with ``OSError``."""
        self._closed = True
        connections = list(self._open)
        for connection in connections:
            connection.close()
        self._idle.clear()
        if connections and self._loop is asyncio.get_running_loop():
            await asyncio.wait([connection.gone for connection in connections], timeout=grace)
            for connection in connections:
                if not connection.gone.done():
                    connection.abort()

    def _bind(self) -> asyncio.Semaphore:
        if self._closed:
            raise OSError("the API is shutting down: its manager connections are closed")
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._slots is None:
            # Another event loop (an embedding that runs the app twice): the old one's connections are
            # unusable from this one; they are dropped (closed if their loop still runs).
            for connection in list(self._open):
                connection.closed = True
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.call_soon_threadsafe(connection.close)
            self._open.clear()
            self._idle.clear()
            self._loop, self._slots = loop, asyncio.Semaphore(self.size)
        return self._slots

    def _take(self) -> _Connection | None:
        """The most recently used idle connection; the ones idle too long are closed on the way."""
        expired = time.monotonic() - self._idle_timeout
        while self._idle and self._idle[0].idle_since <= expired:
            self._idle.popleft().close()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self) -> _Connection:
        """A new connection to the first address that accepts one; ``ConnectivityError`` naming each
        address when none does (with one address: the connection's own ``OSError``)."""
        if self._closed:
            raise OSError("the API is shutting down: its manager connections are closed")
        loop = asyncio.get_running_loop()
        failures: list[tuple[Address, BaseException]] = []
        for address in self.addresses.order():
            try:
                if len(self.addresses) == 1:  # bounded by the request's own deadline, as before
                    _, connection = await self._create(loop, address)
                else:
                    async with asyncio.timeout(self.addresses.connect_timeout):
                        _, connection = await self._create(loop, address)
            except (OSError, TimeoutError) as exc:
                self.addresses.failed(address)
                if len(self.addresses) == 1:
                    raise
                failures.append((address, exc))
                continue
            self.addresses.succeeded(address)
            break
        else:
            raise _none_reachable(failures)
        self.opened += 1
        self._open.add(connection)
        if self._closed:
            connection.close()
            raise OSError("the API is shutting down: its manager connections are closed")
        return connection

    async def _create(self, loop: asyncio.AbstractEventLoop,
                      address: Address) -> tuple[asyncio.BaseTransport, _Connection]:
        hostname = (self._server_hostname or address[0]) if self._ssl_context is not None else None
        return await loop.create_connection(lambda: _Connection(self, self._max_reply, address), *address,
                                            ssl=self._ssl_context, server_hostname=hostname)

    async def _send(self, connection: _Connection, frame: bytes) -> bytes:
        try:
            reply = await connection.exchange(frame)
        except BaseException:  # lost, broken, or cancelled (a deadline): its next frame would answer nothing
            connection.close()
            raise
        if connection.closed or self._closed or 0 < self._max_requests <= connection.sent:
            connection.close()
        else:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        return reply

    def _forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)


def _public(lost: _ConnectionLost, connection: _Connection) -> Exception:
    """The error for a request lost on ``connection``: an ``OSError`` names the connection's manager."""
    public = lost.public()
    return _unreachable(*connection.address, public) if isinstance(public, OSError) else public


class PooledManagerClient(AsyncManagerClient):
    """:class:`~services.client.tcp.AsyncManagerClient` whose commands share a :class:`ManagerPool`
    instead of opening a connection each; same methods, replies, errors, token and TLS settings."""

    def __init__(self, host: str | None = None, port: int | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 init_timeout: float = DEFAULT_INIT_TIMEOUT, token: str | None = None, tls: TLSOption = None,
                 ca_file: str | os.PathLike[str] | None = None,
                 server_hostname: str | None = None, pool_size: int = DEFAULT_POOL_SIZE,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_requests: int = DEFAULT_MAX_REQUESTS,
                 addresses: AddressesOption = None, retry_after: float = DEFAULT_RETRY_AFTER,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, reads: StoredReads | None = None) -> None:
        super().__init__(host, port, timeout=timeout, init_timeout=init_timeout, token=token, tls=tls,
                         ca_file=ca_file, server_hostname=server_hostname, addresses=addresses,
                         retry_after=retry_after, connect_timeout=connect_timeout)
        self.pool = ManagerPool(self.host, self.port, size=pool_size, ssl_context=self.ssl_context,
                                server_hostname=self._server_hostname, idle_timeout=idle_timeout,
                                max_requests=max_requests, addresses=self.addresses)
        self.reads = reads

    async def request(self, command: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """The raw reply envelope to ``command`` (success or failure alike); raises only on I/O.

        With ``reads``, LIST_PIPELINES and STATUS are answered from Redis when the manager would answer
        them from the same reads (:class:`~services.infra.pipeline_reads.StoredReads`); else by the manager."""
        if self.reads is not None and command.get("type") in StoredReads.COMMANDS:
            envelope = await self.reads.reply(dict(command))
            if envelope is not None:
                return envelope
        limit = self.timeout if timeout is None else timeout
        message = self._with_token(dict(command))
        message["keep_alive"] = True  # the manager closes a connection after its reply unless asked not to
        frame = encode_message(message)
        try:
            async with asyncio.timeout(limit):  # waiting for a slot counts too
                body = await self.pool.exchange(frame, read=message.get("type") in READ_COMMANDS)
        except (OSError, TimeoutError) as exc:
            raise _unreachable(self.host, self.port, exc) from exc
        return _parse_envelope(body)

    async def aclose(self) -> None:
        await self.pool.aclose()
