"""One Redis connection that carries the hot reads of every request at once: LIST_PIPELINES and STATUS.

Theory of operation: a pooled call through redis-py's asyncio client takes a connection from the
pool (a lock), wraps the write in a task with a timeout and the read in another timeout, retries
through a policy object and gives the connection back (the lock again): measured on the manager's
TCP front (``tests/benchmarks/tcp_front.py``), about a third of its CPU per ``list_pipelines``,
most of it around a reply Redis sends in microseconds. Here every caller writes its command on ONE
connection as it comes (pipelining: Redis answers in order) and waits on a future; the replies are
parsed (hiredis) in the transport's own callback and each is handed to the oldest waiter. Nothing is
taken or given back per call, and no task is woken between Redis's reply and its caller.

The connection is made by redis-py from the client's own pool settings (address, credentials, TLS,
database, or the current master of a Sentinel group), so it goes where the pool's connections go;
once its handshake is done, its transport is given a protocol of ours (``set_protocol``). Against
reading through redis-py's stream reader, the same benchmark (``list_pipelines``, a connection per
request, the two managers side by side in 4 interleaved rounds, 2026-12-04): 3,131 against 2,854
req/s at 1 client (p50 0.26 against 0.28 ms), 6,638 against 5,600 at 4, 9,794 against 7,430 at 16.

Bounds, as the pooled calls have them: a reply that does not come within ``reply_timeout`` (a hung
Redis) fails every waiting call with redis-py's ``TimeoutError`` and drops the connection (one timer,
armed only while calls wait, not one per call); a broken connection fails every waiting call with
``ConnectionError`` and the next call connects again; a call that met a connection broken since it was
made (a restarted Redis) is tried again up to ``RETRIES`` times, after ``RETRY_PAUSE`` (these are reads:
repeating one is harmless), and one whose connect is refused fails at once (an outage).
An error reply (``NOSCRIPT``, ``WRONGTYPE``) goes to its own caller only. A caller cancelled while it
waits (its handler's timeout) leaves its place in the line, so the replies after it still match.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

RETRIES = 2  # further tries of a call that met a broken connection
RETRY_PAUSE = 0.05  # seconds before each


class RespLink(asyncio.Protocol):
    """A Redis connection made by redis-py, its transport then read here: each reply parsed (hiredis) as it
    arrives and handed to :meth:`received` in the transport's own callback (no reader task to wake);
    :meth:`lost` once the connection breaks or stops speaking RESP. Made by :func:`take_over`."""

    def __init__(self, connection: AbstractConnection, writer: asyncio.StreamWriter) -> None:
        self.connection = connection
        self.writer = writer  # redis-py's, kept: collecting it would close the transport
        options: dict[str, Any] = {"protocolError": InvalidResponse, "replyError": BaseParser.parse_error}
        if connection.encoder.decode_responses:  # the replies redis-py's own parser would give
            options.update(encoding=connection.encoder.encoding, errors=connection.encoder.encoding_errors)
        self._parser = hiredis.Reader(**options)
        self.transport: asyncio.WriteTransport | None = None
        # The loop it was made on, kept: Python 3.11's get_running_loop() makes a getpid() system call,
        # which was 4% of the manager's busy time answering LIST (py-spy).
        self.loop = asyncio.get_running_loop()

    def received(self, reply: Any) -> bool:
        """One reply; False to read no further replies of this read (the connection was dropped)."""
        raise NotImplementedError

    def lost(self, error: RedisConnectionError) -> None:
        """The connection broke, or what came is not RESP (nothing after it can be matched)."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no subclass)

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        while True:
            try:
                reply = self._parser.gets()
            except Exception as exc:  # not RESP: nothing after it can be matched
                self.lost(RedisConnectionError(f"reading from Redis failed: {exc!r}"))
                return
            if reply is False:
                return
            if not self.received(reply):
                return

    def eof_received(self) -> bool:
        return False  # Redis closed its side: the transport closes, connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost(RedisConnectionError(f"Redis closed the connection ({exc!r})" if exc
                                       else "Redis closed the connection"))


Link = TypeVar("Link", bound=RespLink)


async def take_over(pool: ConnectionPool, link: Callable[[AbstractConnection, asyncio.StreamWriter], Link],
                    prepare: Callable[[AbstractConnection], Awaitable[None]] | None = None,
                    closed: Callable[[], bool] = lambda: False) -> Link:
    """A connection made by redis-py from ``pool``'s own settings (address, credentials, TLS, database, or the
    current master of a Sentinel group), ``prepare``d with redis-py's own calls, then read by ``link``.

    The handshake (TLS, AUTH, SELECT, the Sentinel's master) is redis-py's. ``prepare`` must leave nothing
    outstanding, so that redis-py's reader holds no byte of the link's; from then on the transport is the
    link's (it closes it). Raises redis-py's errors, or ``ConnectionError`` once ``closed()``."""
    connection = pool.connection_class(**pool.connection_kwargs)
    await connection.connect()  # type: ignore[no-untyped-call]  # bounded by the pool's timeouts (a hung handshake)
    try:
        if prepare is not None:
            await prepare(connection)
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    writer = connection._writer  # redis-py keeps its stream writer there
    if closed() or writer is None:
        await connection.disconnect(nowait=True)
        raise RedisConnectionError("the connection is closed" if closed()
                                   else "redis-py's connection has no stream writer to take over")
    made = link(connection, writer)
    writer.transport.set_protocol(made)
    made.connection_made(writer.transport)
    connection._writer = connection._reader = None  # the transport is the link's now
    return made


class _Replies(RespLink):
    """A pipelined connection's link: each reply goes to the oldest waiting call."""

    def __init__(self, owner: "PipelinedConnection", connection: AbstractConnection,
                 writer: asyncio.StreamWriter) -> None:
        super().__init__(connection, writer)
        self._owner = owner

    def received(self, reply: Any) -> bool:
        return self._owner._deliver(self, reply)

    def lost(self, error: RedisConnectionError) -> None:
        self._owner._lost(self, error)


class PipelinedConnection:
    """Read commands from many coroutines on one Redis connection (see the module)."""

    def __init__(self, pool: ConnectionPool, reply_timeout: float) -> None:
        self._pool = pool
        self._reply_timeout = reply_timeout
        self._link: _Replies | None = None
        self._connecting: asyncio.Task[_Replies] | None = None
        self._waiting: deque[tuple[float, asyncio.Future[Any]]] = deque()  # (sent at, its reply)
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    async def evalsha(self, sha: str, script: bytes | str | memoryview, keys: list[str], args: list[Any]) -> Any:
        """``EVALSHA`` of a read-only script; loads it first when Redis does not know it (``NOSCRIPT``)."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", script)
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)

    async def execute(self, *words: Any) -> Any:
        """One command's reply; redis-py's ``ConnectionError`` / ``TimeoutError`` / ``ResponseError`` as
        a pooled call raises them."""
        for attempt in range(RETRIES + 1):
            was_connected = self._link is not None
            try:
                return await self._once(words)
            except RedisConnectionError:
                # Only a connection that worked and broke (Redis restarted) is tried again; a refused
                # connect is an outage, answered at once.
                if attempt == RETRIES or self._closed or not was_connected:
                    raise
                await asyncio.sleep(RETRY_PAUSE)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self._closed = True
        link = self._detach(RedisConnectionError("the connection is closed"))
        if link is not None and link.transport is not None:
            link.transport.close()

    async def _once(self, words: tuple[Any, ...]) -> Any:
        link = self._link
        if link is None:
            link = await self._connect()
        command = _pack(link.connection, words)
        transport = link.transport
        if transport is None or transport.is_closing():  # broken since: its connection_lost is on its way
            self._lost(link, RedisConnectionError("the connection to Redis is closing"))
            raise RedisConnectionError("the connection to Redis is closing")
        future: asyncio.Future[Any] = link.loop.create_future()
        # Appended and written with nothing awaited in between: the line's order is the wire's.
        self._waiting.append((time.monotonic(), future))
        if self._watchdog is None:
            self._watchdog = link.loop.call_later(self._reply_timeout, self._watch)
        transport.write(command)
        return await future

    async def _connect(self) -> _Replies:
        """The connection, made by one attempt that every caller arriving meanwhile waits for (a lock would
        hand the connection to its waiters one loop turn each: 1,000 callers at once waited 10 s)."""
        if self._closed:
            raise RedisConnectionError("the connection is closed")
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
            self._connecting.add_done_callback(_retrieved)
        return await asyncio.shield(self._connecting)  # a cancelled caller leaves the attempt to the others

    async def _open(self) -> _Replies:
        link = await take_over(self._pool, lambda connection, writer: _Replies(self, connection, writer),
                               closed=lambda: self._closed)
        self._link = link
        return link

    def _deliver(self, link: _Replies, reply: Any) -> bool:
        """Hands one reply to the oldest waiting call; False when the connection was dropped instead."""
        if link is not self._link:
            return False  # a dropped connection's late bytes
        if not self._waiting:
            self._lost(link, RedisConnectionError("Redis sent a reply nobody asked for"))
            return False
        _, future = self._waiting.popleft()
        if not future.done():  # its caller was cancelled: the reply is dropped, the line stays in step
            if isinstance(reply, ResponseError):  # an error reply: its caller's alone
                future.set_exception(reply)
            else:
                future.set_result(reply)
        return True

    def _lost(self, link: _Replies, error: Exception) -> None:
        """The connection broke (or can no longer be read): every waiting call fails, the next one
        connects again."""
        if link is self._link:
            self._detach(error)
        if link.transport is not None and not link.transport.is_closing():
            link.transport.abort()

    def _watch(self) -> None:
        """Fails every waiting call when the oldest has waited ``reply_timeout``; re-armed while calls wait."""
        self._watchdog = None
        if not self._waiting:
            return
        waited = time.monotonic() - self._waiting[0][0]
        if waited >= self._reply_timeout:
            logger.debug("no reply from Redis for %.1f s: the pipelined connection is dropped", waited)
            link = self._detach(RedisTimeoutError(f"Timeout reading from Redis ({self._reply_timeout:g} s)"))
            if link is not None and link.transport is not None:
                link.transport.abort()
            return
        self._watchdog = asyncio.get_running_loop().call_later(self._reply_timeout - waited, self._watch)

    def _detach(self, error: Exception) -> _Replies | None:
        """Fails every waiting call with ``error`` and forgets the connection (the next call connects anew)."""
        link, self._link = self._link, None
        waiting, self._waiting = self._waiting, deque()
        for _, future in waiting:
            if not future.done():
                future.set_exception(error)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        return link


def _pack(connection: AbstractConnection, words: tuple[Any, ...]) -> bytes:
    """The command in RESP: hiredis packs it in C; redis-py's packer where the client encodes text other
    than as UTF-8 (hiredis always does)."""
    if connection.encoder.encoding.lower().replace("-", "") == "utf8":
        return bytes(hiredis.pack_command(words))
    return b"".join(connection.pack_command(*words))


def _retrieved(attempt: "asyncio.Task[_Replies]") -> None:
    """Marks a failed connect's error as seen: its callers got it, or were cancelled meanwhile."""
    if not attempt.cancelled():
        attempt.exception()
