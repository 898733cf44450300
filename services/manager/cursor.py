"""CONSUME_RESULT's cursor over a pipeline's results stream, read without deleting anything.

Theory of operation: the stream is shared (any consumer group may read it too), so CONSUME_RESULT
never XDELs; it keeps its own cursor in ``keys.pipeline_consumed``: ``last_id`` (last entry
returned), ``position`` (how many entries the stream had ever received up to ``last_id``),
``consumed`` and ``dropped`` (running totals) and ``last_non_empty``. The task trims the stream
from its head (``MAXLEN ~``), so when the cursor falls before the stream's first entry, the entries
added after the cursor but no longer present were dropped unread:
``entries-added - position - length`` (``XINFO STREAM``, Redis >= 7). One Lua script does the
read and the cursor update atomically.
"""

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from services.core import keys
from services.core.results import Output, decode_entry

# KEYS: stream, cursor hash. ARGV: max entries, now (unix seconds).
# Returns {entries (XRANGE reply), dropped, remaining}.
_CONSUME = """
local function before(a, b)
    local a_ms, a_seq = string.match(a, '(%d+)-(%d+)')
    local b_ms, b_seq = string.match(b, '(%d+)-(%d+)')
    a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
    if a_ms ~= b_ms then return a_ms < b_ms end
    return tonumber(a_seq) < tonumber(b_seq)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {{}, 0, 0} end
local cursor = redis.call('HMGET', KEYS[2], 'last_id', 'position')
local last_id = cursor[1] or '0-0'
local position = tonumber(cursor[2] or '0')
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local added, length, first = nil, 0, nil
for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1]
    elseif info[i] == 'length' then length = info[i + 1]
    elseif info[i] == 'first-entry' then first = info[i + 1] end
end
if added == nil then added = position + length end  -- Redis < 7: drops cannot be counted
local dropped = 0
if length == 0 or (first and before(last_id, first[1])) then
    dropped = math.max(0, added - position - length)
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. last_id, '+', 'COUNT', ARGV[1])
local n = #entries
if n > 0 or dropped > 0 then
    if n > 0 then
        last_id = entries[n][1]
        redis.call('HSET', KEYS[2], 'last_non_empty', ARGV[2])
    end
    position = position + dropped + n
    redis.call('HSET', KEYS[2], 'last_id', last_id, 'position', position)
    redis.call('HINCRBY', KEYS[2], 'consumed', n)
    redis.call('HINCRBY', KEYS[2], 'dropped', dropped)
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end  -- a retired pipeline's keys all expire
end
return {entries, dropped, math.max(0, added - position)}
"""


@dataclass(frozen=True, slots=True)
class ResultEntry:
    outputs: list[Output]
    frames_metadata: list[Output]


@dataclass(frozen=True, slots=True)
class ConsumedBatch:
    entries: list[ResultEntry]
    dropped: int  # entries trimmed from the stream before this cursor read them
    remaining: int  # entries still unread after this batch


class ResultsCursor:
    def __init__(self, redis: Redis) -> None:
        self._consume = redis.register_script(_CONSUME)

    async def consume(self, pipeline_id: str, max_entries: int, now: float) -> ConsumedBatch:
        """Up to ``max_entries`` entries after the cursor, oldest first; advances the cursor."""
        raw_entries, dropped, remaining = await self._consume(
            keys=[keys.results_stream(pipeline_id), keys.pipeline_consumed(pipeline_id)],
            args=[max_entries, now],
        )
        return ConsumedBatch([_entry(fields) for _, fields in raw_entries], int(dropped), int(remaining))


def _entry(flat_fields: list[Any]) -> ResultEntry:
    outputs, frames_metadata = decode_entry(dict(zip(flat_fields[::2], flat_fields[1::2], strict=True)))
    return ResultEntry(outputs, frames_metadata)
