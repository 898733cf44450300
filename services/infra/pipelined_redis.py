"""One Redis connection that carries the hot reads of every request at once: LIST_PIPELINES and STATUS.

Theory of operation: a pooled call through redis-py's asyncio client takes a connection from the
pool (a lock), wraps the write in a task with a timeout and the read in another timeout, retries
through a policy object and gives the connection back (the lock again): measured on the manager's
TCP front (``tests/benchmarks/tcp_front.py``), about a third of its CPU per ``list_pipelines``,
most of it around a reply Redis sends in microseconds. Here every caller writes its command on ONE
connection as it comes (pipelining: Redis answers in order) and waits on a future; one reader task
reads the replies and hands each to the oldest waiter. Nothing is taken or given back per call.

The connection is made by redis-py from the client's own pool settings (address, credentials, TLS,
database, or the current master of a Sentinel group), so it goes where the pool's connections go.
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
import contextlib
import logging
import math
import time
from collections import deque
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

RETRIES = 2  # further tries of a call that met a broken connection
RETRY_PAUSE = 0.05  # seconds before each


class PipelinedConnection:
    """Read commands from many coroutines on one Redis connection (see the module)."""

    def __init__(self, pool: ConnectionPool, reply_timeout: float) -> None:
        self._pool = pool
        self._reply_timeout = reply_timeout
        self._connection: AbstractConnection | None = None
        self._connecting: asyncio.Task[AbstractConnection] | None = None
        self._reader: asyncio.Task[None] | None = None
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
            was_connected = self._connection is not None
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
        await self._drop(RedisConnectionError("the connection is closed"))

    async def _once(self, words: tuple[Any, ...]) -> Any:
        connection = self._connection
        if connection is None or self._reader is None:
            connection = await self._connect()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((time.monotonic(), future))
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(self._reply_timeout, self._watch)
        # Appended before the write, and nothing is awaited in between: the line's order is the wire's.
        try:
            await connection.send_packed_command(connection.pack_command(*words), check_health=False)
        except BaseException:
            future.cancel()  # not written (redis-py has dropped the connection): its place is skipped, unread
            raise
        return await future

    async def _connect(self) -> AbstractConnection:
        """The connection, made by one attempt that every caller arriving meanwhile waits for (a lock would
        hand the connection to its waiters one loop turn each: 1,000 callers at once waited 10 s)."""
        if self._closed:
            raise RedisConnectionError("the connection is closed")
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
            self._connecting.add_done_callback(_retrieved)
        return await asyncio.shield(self._connecting)  # a cancelled caller leaves the attempt to the others

    async def _open(self) -> AbstractConnection:
        connection = self._pool.connection_class(**self._pool.connection_kwargs)  # the pool's own settings
        await connection.connect()  # type: ignore[no-untyped-call]  # bounded by the pool's timeouts (a hung handshake)
        # From here a wait for a reply is bounded by the watchdog, and a write only queues in the transport:
        # without a socket timeout, redis-py writes without a task and a timer per command.
        connection.socket_timeout = None
        if self._closed:
            await connection.disconnect()
            raise RedisConnectionError("the connection is closed")
        self._connection = connection
        self._reader = asyncio.get_running_loop().create_task(self._read(connection), name="pipelined-redis")
        return connection

    async def _read(self, connection: AbstractConnection) -> None:
        while True:
            try:
                reply: Any = await connection.read_response(timeout=math.inf)
            except ResponseError as exc:  # an error reply: its caller's alone
                reply = exc
            except asyncio.CancelledError:
                return
            except Exception as exc:  # the connection broke (or was dropped): every waiting call fails
                if self._connection is connection:
                    await self._drop(exc if isinstance(exc, RedisConnectionError | RedisTimeoutError)
                                     else RedisConnectionError(f"reading from Redis failed: {exc!r}"))
                return
            if not self._waiting:
                await self._drop(RedisConnectionError("Redis sent a reply nobody asked for"))
                return
            _, future = self._waiting.popleft()
            if not future.done():  # its caller was cancelled: the reply is dropped, the line stays in step
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    def _watch(self) -> None:
        """Fails every waiting call when the oldest has waited ``reply_timeout``; re-armed while calls wait."""
        self._watchdog = None
        if not self._waiting:
            return
        waited = time.monotonic() - self._waiting[0][0]
        if waited >= self._reply_timeout:
            logger.debug("no reply from Redis for %.1f s: the pipelined connection is dropped", waited)
            self._detach(RedisTimeoutError(f"Timeout reading from Redis ({self._reply_timeout:g} s)"))
            return
        self._watchdog = asyncio.get_running_loop().call_later(self._reply_timeout - waited, self._watch)

    def _detach(self, error: Exception) -> tuple[AbstractConnection | None, asyncio.Task[None] | None]:
        """Fails every waiting call with ``error`` and forgets the connection (the next call connects anew);
        its reader is cancelled, which disconnects it (redis-py does on a cancelled read)."""
        connection, reader = self._connection, self._reader
        self._connection = self._reader = None
        waiting, self._waiting = self._waiting, deque()
        for _, future in waiting:
            if not future.done():
                future.set_exception(error)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        return connection, reader

    async def _drop(self, error: Exception) -> None:
        """:meth:`_detach`, then waits for the connection to be closed."""
        connection, reader = self._detach(error)
        if reader is not None and reader is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)


def _retrieved(attempt: "asyncio.Task[AbstractConnection]") -> None:
    """Marks a failed connect's error as seen: its callers got it, or were cancelled meanwhile."""
    if not attempt.cancelled():
        attempt.exception()
