"""Knowing, without asking Redis, that keys under a prefix have not changed since they were read.

LIST_PIPELINES reads the pipelines' index, which changes only when a pipeline is created, ends or is
removed. Asking Redis for it on every request was the largest cost of the manager's TCP front
(``tests/benchmarks/tcp_front.py``: the command's write and Redis's wake-up were a third of the
manager's busy time, and a floor server doing nothing but one Redis read answers 0.84 times as many
requests as the reference, which keeps its pipelines in memory). A reader that knows the index has
not changed since its last read can answer from that read.

Theory of operation: Redis's client-side caching support (``CLIENT TRACKING``, Redis 6 and later) in
broadcasting mode: one connection of its own asks Redis to send it the name of every key under
``prefix`` written by anyone (a manager, the reaper, a worker restoring its pipeline after a Redis
restart, a Lua script, an operator's redis-cli), and subscribes to those messages
(``__redis__:invalidate``, redirected to itself so the protocol stays RESP2). Every message, a
``FLUSHDB`` included, moves :meth:`version` on. A reader notes the version before its read and keeps
what it read only if the version is the same once the reply is in (:class:`TrackedValue`): a write
that raced the read moved it on, so nothing read before a write is kept after the write's message.

The version is ``None`` (nothing may be answered from memory) whenever the messages cannot be trusted
to arrive: before the subscription is confirmed, after the connection is lost (until a new one is
subscribed, with a new version), and when Redis has not answered the connection's ``PING`` (sent every
``PING_INTERVAL``) for ``STALE_AFTER``: a Redis that hangs, or a network that drops packets without
closing the connection, costs readers their memory within that bound. A Redis that refuses
``CLIENT TRACKING`` (older than 6, or an ACL without it) leaves the version ``None`` for good: every
read goes to Redis, as it did before this module (logged once); one that refuses the subscription (an
ACL without the channel) is tried again, every 2 s at most, with the failure logged once.

A process's own writes call :meth:`changed` once Redis has acknowledged them, so its next read is
fresh without waiting for Redis's message; another process's writes are seen when their message
arrives, which Redis sends in the same turn of its event loop as the write's acknowledgement (on one
host the message was in before the writer's own call returned, 2026-12-05).
"""

import asyncio
import logging
import time
from typing import Any

import hiredis
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from services.core.redaction import redact_text
from services.infra.pipelined_redis import RespLink, take_over

logger = logging.getLogger(__name__)

CHANNEL = "__redis__:invalidate"
PING_INTERVAL = 0.5  # seconds between PINGs on the tracking connection
STALE_AFTER = 1.5  # seconds without a word from Redis after which nothing is answered from memory
RECONNECT_PAUSE = (0.05, 2.0)  # first and longest pause between attempts to connect again
_SUBSCRIBE_WORDS: Any = ("SUBSCRIBE", CHANNEL)  # (hiredis's stubs type the words as a one-tuple)
_SUBSCRIBE = bytes(hiredis.pack_command(_SUBSCRIBE_WORDS))
_PING = b"*1\r\n$4\r\nPING\r\n"


class _Messages(RespLink):
    """The tracking connection once subscribed-to: every reply is a PING's answer or an invalidation."""

    def __init__(self, owner: "TrackedKeys", connection: AbstractConnection, writer: asyncio.StreamWriter) -> None:
        super().__init__(connection, writer)
        self._owner = owner
        self.ended: asyncio.Future[None] = self.loop.create_future()  # its error once the connection is lost

    def received(self, reply: Any) -> bool:
        if isinstance(reply, ResponseError):  # SUBSCRIBE or PING refused (an ACL without the channel)
            self.lost(RedisConnectionError(f"Redis refused a command of the tracking connection: {reply}"))
            return False
        self._owner._heard(reply)
        return True

    def lost(self, error: RedisConnectionError) -> None:
        if not self.ended.done():
            self.ended.set_exception(error)
            self.ended.exception()  # marked seen: a connection lost while closing has nobody to raise it to
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


class TrackedKeys:
    """A version of the keys under ``prefix`` that moves on whenever any of them is written (see the module)."""

    def __init__(self, pool: ConnectionPool, prefix: str) -> None:
        self._pool = pool
        self._prefix = prefix
        self._version = 0
        self._subscribed = False  # Redis confirmed the subscription on the current connection
        self._heard_at = 0.0  # time.monotonic() of Redis's last word on the current connection
        self._task: asyncio.Task[None] | None = None
        self._closed = False  # aclose() was called: no connection is kept or made again
        self._messages: _Messages | None = None
        self._failing = False  # the last session failed (logged once per outage)

    def version(self) -> int | None:
        """The current version; None while the keys' messages cannot be trusted to arrive."""
        if not self._subscribed or time.monotonic() - self._heard_at > STALE_AFTER:
            return None
        return self._version

    def changed(self) -> None:
        """This process wrote under the prefix (and Redis acknowledged it): what was read before is stale."""
        self._version += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"tracking {self._prefix}")

    async def aclose(self) -> None:
        """Ends the tracking connection and its task. The task ends even where a cancellation is swallowed
        inside a redis.asyncio call (Python 3.11): it connects no more once closed."""
        self._closed = True
        task, self._task = self._task, None
        self._drop()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        pause = RECONNECT_PAUSE[0]
        while not self._closed:
            started = time.monotonic()
            try:
                await self._session()
            except ResponseError as exc:
                logger.warning("Redis refuses CLIENT TRACKING (%s): keys under %s are read from Redis on every "
                               "request", redact_text(str(exc)), self._prefix)
                return
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._closed:
                    return
                if not self._failing:
                    logger.warning("the tracking connection for %s failed (%s: %s); reading Redis on every request "
                                   "until it is back", self._prefix, type(exc).__name__, redact_text(str(exc)))
                self._failing = True
            finally:
                self._drop()
            if time.monotonic() - started > 2 * STALE_AFTER:
                pause = RECONNECT_PAUSE[0]  # it had worked for a while: this is a new outage
            await asyncio.sleep(pause)
            pause = min(RECONNECT_PAUSE[1], pause * 2)

    async def _session(self) -> None:
        """One tracking connection, from connecting to losing it."""
        messages = self._messages = await take_over(
            self._pool, lambda connection, writer: _Messages(self, connection, writer), self._track,
            closed=lambda: self._closed)
        # Subscribed only now, once the transport is read here: no message can be left in redis-py's reader.
        assert messages.transport is not None
        messages.transport.write(_SUBSCRIBE)
        self._heard_at = time.monotonic()
        while True:
            await asyncio.wait({messages.ended}, timeout=PING_INTERVAL)
            if messages.ended.done():
                messages.ended.result()  # raises why it was lost
            if time.monotonic() - self._heard_at > STALE_AFTER:
                raise RedisConnectionError(f"no word from Redis on the tracking connection for {STALE_AFTER:g} s")
            messages.transport.write(_PING)

    async def _track(self, connection: AbstractConnection) -> None:
        """Asks Redis to send this connection the name of every key written under the prefix."""
        await connection.send_command("CLIENT", "ID")
        client_id = await connection.read_response()
        await connection.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST",
                                      "PREFIX", self._prefix)
        await connection.read_response()  # a ResponseError when Redis refuses tracking

    def _heard(self, reply: Any) -> None:
        """One reply on the tracking connection."""
        self._heard_at = time.monotonic()
        head = _word(reply[0]) if isinstance(reply, list) and reply else _word(reply)
        if head == "pong":
            return
        if head == "subscribe":
            self._version += 1  # a new connection: nothing read before it is known to be current
            self._subscribed = True
            if self._failing:
                logger.warning("the tracking connection for %s works again", self._prefix)
                self._failing = False
            return
        self._version += 1  # an invalidation (a key's name, or nil for a flush), or anything unexpected

    def _drop(self) -> None:
        self._subscribed = False
        self._version += 1
        messages, self._messages = self._messages, None
        if messages is not None and messages.transport is not None and not messages.transport.is_closing():
            messages.transport.abort()


def _word(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace").lower()
    return value.lower() if isinstance(value, str) else ""


class TrackedValue:
    """One value read from keys under a :class:`TrackedKeys` prefix, kept while they have not changed."""

    __slots__ = ("_keys", "_value", "_version")

    def __init__(self, keys: TrackedKeys) -> None:
        self._keys = keys
        self._value: Any = None
        self._version: int | None = None

    def get(self) -> tuple[bool, Any]:
        """(True, the value) while it is current; (False, None) when it must be read."""
        version = self._keys.version()
        if version is not None and version == self._version:
            return True, self._value
        return False, None

    def before_read(self) -> int | None:
        return self._keys.version()

    def keep(self, value: Any, version: int | None) -> None:
        """Keeps ``value`` read since ``before_read`` returned ``version``, if nothing changed meanwhile."""
        if version is not None and self._keys.version() == version:
            self._value, self._version = value, version
