"""The reaper lease: which of several managers sharing one Redis may supervise pipelines.

Theory of operation: every manager serves requests, but only one reaper may act at a time (two
would both see a lost pipeline and both re-dispatch it, or one would retire what the other just
restarted). The right to act is one Redis key (``keys.reaper_lease``) holding a random token:

- **take**: ``SET key token NX PX ttl``. Whoever set it holds it; the others keep trying, once per
  reaper interval. A manager whose holding ended on a Redis error finds the key still holding its own
  token when Redis comes back (with its data) and renews it instead of waiting for it to expire.
- **renew**: each sweep of the holder runs a compare-and-set script (``PEXPIRE`` only when the key
  still holds its token). A renewal that fails (the key expired and another manager took it, Redis
  unreachable, a Redis error) ends the holding at once: that sweep does nothing.
- **valid**: the holder acts only while its lease is valid by its own clock: until ``valid_fraction``
  of the TTL after the moment it *sent* the last successful take or renewal (the key itself lives
  the whole TTL from when Redis received it, which is later). The reaper checks it before each
  pipeline it handles, so a sweep that ran long (a slow Redis) stops midway instead of acting on a
  lease that may have passed to another manager.
- **release**: a stopping manager deletes the key when it still holds its token (compare and delete),
  so another manager takes over at its next attempt instead of after the TTL.

Takeover time: after a clean stop, at most one reaper interval (the next attempt of another
manager). After the holder dies (``kill -9``, power, partition) the key expires at most ``ttl``
after its last renewal, and another manager takes it at its next attempt: at most ``ttl +
reaper_interval`` (6 s with the defaults, 5 s and 1 s). The new holder starts its missing-heartbeat
timers afresh, so a pipeline lost at that moment is declared lost ``heartbeat_grace`` after that.

What a lease cannot rule out, and why it is harmless here: a holder frozen (SIGSTOP, a long GC)
between its validity check and its next Redis write may write after its lease passed on. Every write
of the reaper is already a compare-and-set on the pipeline's record (epoch, state, no heartbeat), so
such a late write finds the record moved on and changes nothing, or repeats what the new holder
did (a re-dispatch of the same epoch, which the worker's claim refuses the second time).
"""

import logging
import os
import socket
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.core import keys

logger = logging.getLogger(__name__)

VALID_FRACTION = 0.6  # of the TTL, counted from the sending of the last take or renewal

# KEYS: lease. ARGV: token, ttl ms. 1 when renewed, 0 when the key no longer holds the token.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""

# KEYS: lease. ARGV: token. 1 when deleted, 0 when the key no longer holds the token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
end
return 0
"""


class ReaperLease:
    """This manager's side of the lease: :meth:`refresh` each sweep, :meth:`valid` before each action."""

    def __init__(self, redis: Redis, ttl: float, valid_fraction: float = VALID_FRACTION) -> None:
        self._redis = redis
        self._ttl_ms = max(1, int(ttl * 1000))
        self._valid_for = ttl * valid_fraction
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        # Who holds it, readable in Redis by an operator (GET vsim:manager:reaper-lease); no secret.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self._valid_until = 0.0  # monotonic; 0 = not held

    @property
    def held(self) -> bool:
        """Whether this manager held the lease at its last take or renewal (and has not let go since)."""
        return self._valid_until > 0.0

    def valid(self) -> bool:
        """Whether this manager may act now: it holds the lease and its validity has not run out."""
        return self.held and time.monotonic() < self._valid_until

    async def refresh(self) -> bool:
        """Renews the lease when held, else tries to take it; whether this manager holds it now.

        A Redis error ends the holding (it is logged once, by the caller's outage handling) and is raised.
        """
        sent = time.monotonic()
        was_held = self.held
        try:
            ok = False
            if not was_held:
                ok = bool(await self._redis.set(keys.reaper_lease(), self.token, nx=True, px=self._ttl_ms))
            if not ok:  # held, or still ours from before an outage that ended the holding here
                ok = bool(await self._renew(keys=[keys.reaper_lease()], args=[self.token, self._ttl_ms]))
        except RedisError:
            self._lose("Redis could not be reached to renew it")
            raise
        if ok:
            self._valid_until = sent + self._valid_for
            if not was_held:
                logger.info("reaper lease taken (%s): this manager's reaper acts", self.token)
        elif was_held:
            self._lose("another manager holds it now, or it expired")
        return ok

    def _lose(self, why: str) -> None:
        if self.held:
            logger.warning("reaper lease lost (%s): this manager's reaper stops acting", why)
        self._valid_until = 0.0

    async def release(self) -> None:
        """Gives the lease back when this manager still holds it (a stopping manager)."""
        if not self.held:
            return
        self._valid_until = 0.0
        try:
            if await self._release(keys=[keys.reaper_lease()], args=[self.token]):
                logger.info("reaper lease released (%s)", self.token)
        except RedisError as exc:
            logger.warning("reaper lease not released (%s: %s); it expires by itself", type(exc).__name__, exc)
