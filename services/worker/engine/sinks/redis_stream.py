"""Appends each round to the pipeline's Redis Stream, trimmed to ``maxlen`` (approximately).

One round trip per batch. Unfenced (the engine on its own): a pipeline of ``XADD key MAXLEN ~ N``
per round plus an ``INCRBY`` of the dropped counter. Fenced (a pipeline task): one Lua script
that first checks that the pipeline's record still carries this task's epoch and owner, then
appends every round with its ``epoch`` field. A superseded task (the manager re-dispatched the
pipeline after losing its heartbeat) therefore cannot append a single result after the new epoch
was written: two producers never write the same stream at once. A refused write raises
:class:`FencedOut` and calls ``on_fenced`` once, so the task stops at once.

A write that finds the record *missing* is not refused yet: Redis may have restarted without its
data while the task kept running. The sink asks ``on_missing`` (the task's
``Ownership.restore``), which puts the record back when that is what happened, and writes again;
only when the restore is refused (the record was removed on purpose) is the task fenced out.

Outages and failovers (fenced sink)
-----------------------------------
A write that fails because Redis cannot be reached (connection refused or lost, a timeout, a server
still loading, a demoted master answering READONLY) raises :class:`SinkUnavailable`: the
``BufferedSink`` keeps the batch and writes it again until Redis (or, with Sentinel, the promoted
replica) answers; new results wait in its bounded queue meanwhile, and what overflows it is dropped
and counted as before. Two things make that safe and complete:

- **Retries are idempotent.** Each entry gets its id in the script, ``<ms>-<ordinal>``: the
  milliseconds of Redis's clock (as ``*`` would, never below the stream's last id) and the task's own
  ordinal for the entry (1, 2, 3 ... over the task's life, fixed when the batch is first attempted)
  as the sequence part. The script reads the stream's last entry first: when it is this task's
  (its ``epoch`` field) and its ordinal reaches the batch's, that part of the batch is already there
  (an attempt whose reply was lost) and is not appended twice.
- **What the old master acknowledged but never replicated is replayed.** Replication is
  asynchronous, so a master killed right after acknowledging a write may take it with it, and the
  promoted replica's stream ends a few entries earlier. The sink remembers its last
  ``replay_window`` acknowledged entries (their ids and fields) and the highest acknowledged
  ordinal; every write tells the script that ordinal, and when the stream's last entry is not this
  task's or has a lower ordinal, the script writes nothing and answers with that last id. The sink
  then sends the remembered entries after it, and the script appends them with their **original
  ids** (explicit-id XADD keeps the order and does not hand a consumer that had already read them
  on the old master a second copy), then the batch. They count as ``replayed``; acknowledged
  entries missing beyond the window (or older than the stream's ``maxlen``) count as ``lost``:
  both appear in the pipeline's STATUS report and metrics. Nothing missing goes uncounted.

The same check runs after Redis restarted without its data: the stream is empty, the window is
written back and the rest of what the task had acknowledged (up to ``maxlen``) counts as lost.
The unfenced sink (the engine on its own) keeps ``*`` ids and drops a failed batch: its retries
could not be told from duplicates.
"""

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from services.core import keys
from services.core.fencing import fence_lua
from services.core.results import EPOCH, encode_entry
from services.worker.engine.results import RoundResult
from services.worker.engine.sinks import Recovery, SinkUnavailable

log = logging.getLogger(__name__)

# Errors after which the same write may succeed (the server comes back, or Sentinel promotes a replica).
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError, redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError, ConnectionError, TimeoutError,
)
REPLAY_WINDOW = 256  # acknowledged entries remembered for a replay (WORKER_RESULTS_REPLAY_WINDOW)

# KEYS: record, stream, dropped counter. ARGV: epoch, owner, maxlen, dropped, highest acknowledged
# ordinal (0: none yet), replay ('0': check only, '1': candidates follow), number of candidates, then
# each candidate as its id, its field count and field/value pairs, then the batch's first ordinal and
# each round as its field count and field/value pairs.
# Returns {-2} record missing, {-1} fenced out, {-3, last id, ours} acknowledged entries are missing
# and no candidates were sent (nothing written in these three cases), else {added, replayed, ids}
# (ids: one per round, the id it has in the stream).
_FENCED_APPEND = fence_lua("{-2}", "{-1}") + f"""
local function parse(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return tonumber(ms), tonumber(seq)
end
local function after(a_ms, a_seq, b_ms, b_seq)
    if a_ms ~= b_ms then return a_ms > b_ms end
    return a_seq > b_seq
end
local function add(id, at)
    local count = tonumber(ARGV[at])
    local command = {{'XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], id}}
    for j = at + 1, at + 2 * count do command[#command + 1] = ARGV[j] end
    command[#command + 1] = '{EPOCH}'
    command[#command + 1] = ARGV[1]
    redis.call(unpack(command))
    return at + 1 + 2 * count
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local last_ms, last_seq, ours = 0, 0, false
if #last > 0 then
    last_ms, last_seq = parse(last[1][1])
    local fields = last[1][2]
    for i = 1, #fields, 2 do
        if fields[i] == '{EPOCH}' and tonumber(fields[i + 1]) == tonumber(ARGV[1]) then ours = true end
    end
end
local acked = tonumber(ARGV[5])
if acked > 0 and ARGV[6] == '0' and (not ours or last_seq < acked) then
    return {{-3, #last > 0 and last[1][1] or '', ours and 1 or 0}}
end
local present_until = ours and last_seq or 0
-- New ids must also exceed the stream's last generated id, which an XDEL of its newest entries leaves behind.
if redis.call('EXISTS', KEYS[2]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[2])
    for i = 1, #info, 2 do
        if info[i] == 'last-generated-id' then
            local ms, seq = parse(info[i + 1])
            if after(ms, seq, last_ms, last_seq) then last_ms, last_seq = ms, seq end
        end
    end
end
local pos = 8
local replayed = 0
for c = 1, tonumber(ARGV[7]) do
    local ms, seq = parse(ARGV[pos])
    if after(ms, seq, last_ms, last_seq) then
        add(ARGV[pos], pos + 1)
        last_ms, last_seq = ms, seq
        replayed = replayed + 1
    end
    pos = pos + 2 + 2 * tonumber(ARGV[pos + 1])
end
local first = tonumber(ARGV[pos])
pos = pos + 1
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ids, added, ordinal, skipped = {{}}, 0, first, 0
while pos <= #ARGV do
    if ordinal <= present_until then
        ids[#ids + 1] = ''
        skipped = skipped + 1
        pos = pos + 1 + 2 * tonumber(ARGV[pos])
    else
        local ms = math.max(now_ms, last_ms)
        if ms == last_ms and ordinal <= last_seq then ms = last_ms + 1 end
        local id = string.format('%.0f-%.0f', ms, ordinal)
        pos = add(id, pos)
        last_ms, last_seq = ms, ordinal
        ids[#ids + 1] = id
        added = added + 1
    end
    ordinal = ordinal + 1
end
if skipped > 0 then
    -- rounds an earlier attempt wrote (its reply was lost): their ids, for the replay memory
    local found = {{}}
    for _, entry in ipairs(redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', skipped + added + replayed)) do
        local _, seq = parse(entry[1])
        found[seq] = entry[1]
    end
    for i = 1, skipped do ids[i] = found[first + i - 1] or '' end
end
if added > 0 and tonumber(ARGV[4]) > 0 then redis.call('INCRBY', KEYS[3], ARGV[4]) end
return {{added, replayed, ids}}
"""


_MISSING = -2
_FENCED = -1
_ENTRIES_MISSING = -3

StreamId = tuple[int, int]


def _parse_id(value: bytes | str) -> StreamId | None:
    text = value.decode() if isinstance(value, bytes) else value
    if not text:
        return None
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def _flat(entry: dict[str, str]) -> list[str]:
    return [str(len(entry)), *(item for pair in entry.items() for item in pair)]


@dataclass(frozen=True, slots=True)
class Fence:
    """The ownership a fenced sink checks on every write."""

    epoch: int
    owner: str
    on_fenced: Callable[[], None] = lambda: None
    # The record is missing: restore it if Redis lost it; True when it exists again (then the write
    # is retried), False when it was removed on purpose (then the write counts as fenced out).
    on_missing: Callable[[], bool] = lambda: False


class FencedOut(RuntimeError):
    """The pipeline's record no longer carries this task's epoch: nothing was written."""


class RedisStreamSink:
    name = "redis_stream"

    def __init__(self, client: redis.Redis, pipeline_id: str, maxlen: int, fence: Fence | None = None,
                 replay_window: int = REPLAY_WINDOW):
        if maxlen < 1:
            raise ValueError("results buffer size must be at least 1")
        if replay_window < 0:
            raise ValueError("the replay window cannot be negative")
        self._client = client
        self._pipeline_id = pipeline_id
        self._record = keys.pipeline_record(pipeline_id)
        self._stream = keys.results_stream(pipeline_id)
        self._dropped_key = keys.results_dropped(pipeline_id)
        self._maxlen = maxlen
        self._fence = fence
        self._append = client.register_script(_FENCED_APPEND) if fence is not None else None
        self._fenced = False
        # Fenced writes only (see the module docstring). Touched by the sink's one writing thread;
        # ``recovery`` is read from others (ints: a stale read is harmless).
        self._next_ordinal = 1
        self._acked = 0  # the highest ordinal Redis acknowledged
        self._window: deque[tuple[StreamId, list[str]]] = deque(maxlen=replay_window)
        self._pending: tuple[Sequence[RoundResult], int, list[list[str]]] | None = None
        self._abandoned: deque[tuple[int, int]] = deque(maxlen=1024)  # ordinals of batches never written
        self._replayed = 0
        self._lost = 0

    def recovery(self) -> Recovery:
        return Recovery(self._replayed, self._lost)

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        if self._fence is not None and self._append is not None:
            self._write_fenced(self._fence, self._append, results, dropped)
            return
        pipe = self._client.pipeline(transaction=False)
        for result in results:
            entry = encode_entry(result.outputs(), result.frames_metadata())
            pipe.xadd(self._stream, entry, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        if dropped:
            pipe.incrby(self._dropped_key, dropped)
        pipe.execute()

    def _batch(self, results: Sequence[RoundResult]) -> tuple[int, list[list[str]]]:
        """The batch's first ordinal and encoded rounds: the same as last time when this is a retry of it."""
        if self._pending is not None:
            batch, first, entries = self._pending
            if batch is results:
                return first, entries
            self._abandoned.append((first, first + len(entries) - 1))  # given up on: never written
        entries = [_flat(encode_entry(result.outputs(), result.frames_metadata())) for result in results]
        first, self._next_ordinal = self._next_ordinal, self._next_ordinal + len(entries)
        self._pending = (results, first, entries)
        return first, entries

    def _write_fenced(self, fence: Fence, append: Script, results: Sequence[RoundResult], dropped: int) -> None:
        first, entries = self._batch(results)
        script_keys = [self._record, self._stream, self._dropped_key]
        candidates: list[tuple[StreamId, list[str]]] | None = None
        missing_since: tuple[StreamId | None, bool] | None = None
        restored = False
        try:
            while True:
                args: list[Any] = [fence.epoch, fence.owner, self._maxlen, dropped, self._acked,
                                   0 if candidates is None else 1, len(candidates or ())]
                for stream_id, fields in candidates or ():
                    args += [f"{stream_id[0]}-{stream_id[1]}", *fields]
                args.append(first)
                for fields in entries:
                    args += fields
                reply = append(keys=script_keys, args=args)
                code = int(reply[0])
                if code == _MISSING and not restored:
                    restored = True
                    if fence.on_missing():
                        continue
                elif code == _ENTRIES_MISSING and candidates is None:
                    last_id, ours = _parse_id(reply[1]), bool(int(reply[2]))
                    missing_since = (last_id, ours)
                    candidates = [item for item in self._window if last_id is None or item[0] > last_id]
                    continue
                break
        except TRANSIENT_ERRORS as exc:
            raise SinkUnavailable(f"Redis unavailable: {type(exc).__name__}: {exc}") from exc
        if code < 0:
            self._pending = None
            if not self._fenced:
                self._fenced = True
                fence.on_fenced()
            why = "the record was removed" if code in (_MISSING, _ENTRIES_MISSING) else \
                f"epoch {fence.epoch} was superseded"
            raise FencedOut(f"{why}: {len(results)} results not written")
        if missing_since is not None:
            self._account(missing_since, int(reply[1]))
        for written, fields in zip((_parse_id(value) for value in reply[2]), entries, strict=True):
            if written is not None:
                self._window.append((written, fields))
        self._acked = first + len(entries) - 1
        self._pending = None

    def _account(self, missing_since: tuple[StreamId | None, bool], replayed: int) -> None:
        """Counts what the server had lost of the acknowledged entries: replayed, or lost for good."""
        last_id, ours = missing_since
        since = last_id[1] if ours and last_id is not None else 0  # the last ordinal the stream still had
        missing = min(self._acknowledged_after(since), self._maxlen)
        lost = max(0, missing - replayed)
        self._replayed += replayed
        self._lost += lost
        log.warning("pipeline %s: the results stream had lost %d acknowledged results (a failover to a replica "
                    "that had not received them, or Redis restarted without its data): %d replayed with their "
                    "original ids, %d lost", self._pipeline_id, missing, replayed, lost)

    def _acknowledged_after(self, since: int) -> int:
        """Acknowledged entries with an ordinal above ``since``; ordinals of batches never written (dropped
        after an error) do not count."""
        count = max(0, self._acked - since)
        for low, high in self._abandoned:
            count -= max(0, min(high, self._acked) - max(low, since + 1) + 1)
        return max(0, count)

    def close(self) -> None:
        """The client belongs to the caller, who closes it."""
