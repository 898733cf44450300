"""The registry of live workers: who is registered, found without scanning the keyspace.

Theory of operation
-------------------
A worker announces itself with its registration key (``keys.worker_registration``: its room as
JSON, with a TTL) and, written by the same Lua script, its hostname in one sorted set
(``keys.workers_registry``) scored by the time that key expires. Both the score and the expiry
come from the Redis server's clock (``TIME`` inside the script), so the invariant "a member's score
is still ahead of Redis's clock exactly while its key lives" holds whatever the clocks of the
worker and the reader say. A clean stop removes both in one transaction.

The same publishing script answers whether the worker is being drained (its field in
``keys.worker_drains``): the worker learns it at every beat without another round trip.

A reader (the manager's admission, the API's /metrics) runs one script that drops the members whose
score has passed (their keys have expired: the worker died or lost Redis) and returns the others,
then fetches their keys with one MGET: O(live workers) per read, where ``SCAN vsim:worker:*`` was
O(every key in the database) on every INIT and every scrape. A member whose key is missing anyway
(deleted by hand) is skipped, and pruned once its score passes.

Registrations written the old way (the key alone, by a worker older than the registry) are not
seen: workers and the manager ship together, and a new worker still writes the key an older
manager scans for, so upgrading the workers first keeps every INIT admitted.
"""

import redis
from redis.asyncio import Redis as AsyncRedis

from services.core import keys

# KEYS: registration, registry, drains. ARGV: payload (JSON), ttl (seconds), hostname. Returns 1
# when the worker is being drained (its field in the drains hash exists), else 0.
_PUBLISH = """
local now = redis.call('TIME')
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('ZADD', KEYS[2], tonumber(now[1]) + tonumber(now[2]) / 1000000 + ttl, ARGV[3])
return redis.call('HEXISTS', KEYS[3], ARGV[3])
"""

# KEYS: registry. Drops the members whose registration has expired; returns the others.
_LIVE = """
local now = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(now[1]) + tonumber(now[2]) / 1000000))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def publish(client: redis.Redis, hostname: str, payload: str, ttl: int) -> bool:
    """Writes ``hostname``'s registration (``payload``, living ``ttl`` seconds) and its registry member;
    whether the worker is being drained (``keys.worker_drains``), read in the same script."""
    script = client.register_script(_PUBLISH)  # no round trip: EVALSHA, the script loaded once per server
    drained = script(keys=[keys.worker_registration(hostname), keys.workers_registry(), keys.worker_drains()],
                     args=[payload, ttl, hostname])
    return bool(drained)


def withdraw(client: redis.Redis, hostname: str) -> None:
    """Removes ``hostname``'s registration and its registry member (a clean stop)."""
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.worker_registration(hostname))
        pipe.zrem(keys.workers_registry(), hostname)
        pipe.execute()


async def live_registrations(client: AsyncRedis) -> list[tuple[str, bytes]]:
    """``(hostname, registration JSON)`` of every live worker, by hostname; two round trips."""
    members = await client.register_script(_LIVE)(keys=[keys.workers_registry()])
    names = sorted(_text(member) for member in members)
    if not names:
        return []
    raws = await client.mget([keys.worker_registration(name) for name in names])
    return [(name, raw if isinstance(raw, bytes) else str(raw).encode())
            for name, raw in zip(names, raws, strict=True) if raw is not None]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
