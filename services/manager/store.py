"""The manager's Redis I/O for pipeline records: create, confirm, read, desired state, retire, remove.

Every key comes from ``services.core.keys``. Writes that must not interleave with a task's own
writes (desired state, retiring a pipeline) are Lua scripts, so they are atomic in Redis.

Formats (``services.core.formats``): a record or a spec of a newer major than this release reads is
refused with the reason: the reaper skips that record (logged once) and leaves it as it is, ``get``
answers ``operation_error`` naming the versions, ``spec`` raises ``FormatError`` to its caller.
"""

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from services.core import keys
from services.core.formats import SPEC as SPEC_FORMAT
from services.core.formats import FormatError, readable
from services.core.records import DesiredState, PipelineRecord, PipelineState
from services.infra.pipeline_reads import PipelineReads, not_found, record_of, stored_object, text, texts
from services.infra.pipelined_redis import PipelinedConnection
from services.infra.tracked_keys import TrackedKeys

logger = logging.getLogger(__name__)

READ_BATCH = 256  # records read per round trip when every live record is read (the reaper's sweep)

FINAL_STATES = tuple(state.value for state in PipelineState if state.is_final)

# KEYS: record. ARGV: desired, final states... Returns the record (flat HGETALL) after the write,
# or nil when it does not exist. A pipeline asked to terminate, or already over, keeps its desire.
_REQUEST_STATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local fields = redis.call('HMGET', KEYS[1], 'desired_state', 'state')
local over = fields[1] == 'TERMINATED'
for i = 2, #ARGV do if fields[2] == ARGV[i] then over = true end end
if ARGV[1] == 'TERMINATED' or not over then
    redis.call('HSET', KEYS[1], 'desired_state', ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: index, record, heartbeat, then the keys to expire. ARGV: pipeline_id, ttl, new_state
# ('' = keep), last_error, now, require_no_heartbeat ('1'/'0'), expected_state ('' = any),
# final states... Returns 1 when the pipeline was retired, 0 when a condition did not hold.
_RETIRE = """
if redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('SREM', KEYS[1], ARGV[1])
    return 0
end
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local state = redis.call('HGET', KEYS[2], 'state')
if ARGV[7] ~= '' and state ~= ARGV[7] then return 0 end
local final = false
for i = 8, #ARGV do if state == ARGV[i] then final = true end end
if ARGV[3] ~= '' and not final then
    redis.call('HSET', KEYS[2], 'state', ARGV[3], 'updated_at', ARGV[5])
    if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'last_error', ARGV[4]) end
end
redis.call('SREM', KEYS[1], ARGV[1])
for i = 4, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


# KEYS: record, heartbeat. ARGV: expected epoch, expected state, now, restart_at, reason,
# count as failure ('1'/'0'), crash signature ('' = not an early crash). A lost pipeline gets a new
# epoch (fencing out whatever may still run the old one) and a scheduled re-dispatch, unless it
# changed meanwhile or a heartbeat came back. Returns the new epoch, or 0 when a condition did not hold.
_RESTART = """
local fields = redis.call('HMGET', KEYS[1], 'epoch', 'state', 'desired_state')
if not fields[1] or tonumber(fields[1]) ~= tonumber(ARGV[1]) or fields[2] ~= ARGV[2] then return 0 end
if fields[3] == 'TERMINATED' then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HINCRBY', KEYS[1], 'restarts', 1)
if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[1], 'failures', 1) end
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'owner', '', 'updated_at', ARGV[3], 'restart_at', ARGV[4],
           'last_error', ARGV[5], 'crash_signature', ARGV[7])
return epoch
"""

# KEYS: record. ARGV: expected epoch, now. Marks a scheduled re-dispatch as sent (restart_at 0,
# updated_at and dispatched_at now: the claim deadline and the crash-loop window count from here).
# Returns 1, or 0 when the record moved on.
_DISPATCHED = """
local fields = redis.call('HMGET', KEYS[1], 'epoch', 'state')
if tonumber(fields[1]) ~= tonumber(ARGV[1]) or fields[2] ~= 'PENDING' then return 0 end
redis.call('HSET', KEYS[1], 'restart_at', '0', 'updated_at', ARGV[2], 'dispatched_at', ARGV[2])
return 1
"""


# KEYS: record. Confirms an INIT's record as its success reply is handed back (confirm_by 0). Returns
# 1, or 0 when the record is gone or the reaper is abandoning it (confirm_by -1): the INIT then fails.
_CONFIRM = """
local by = redis.call('HGET', KEYS[1], 'confirm_by')
if not by and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(by) == -1 then return 0 end
redis.call('HSET', KEYS[1], 'confirm_by', '0')
return 1
"""

# KEYS: record. ARGV: now. An unconfirmed record past its deadline (or one already being abandoned) is
# marked abandoned (confirm_by -1: its INIT can no longer confirm it) and desired TERMINATED.
# Returns 1 when the caller is to terminate and remove it, 0 when it is confirmed or not due yet.
_ABANDON = """
local by = tonumber(redis.call('HGET', KEYS[1], 'confirm_by') or '0') or 0
if by == 0 or by > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'confirm_by', '-1', 'desired_state', 'TERMINATED')
return 1
"""


@dataclass(frozen=True, slots=True)
class LiveRecord:
    """A live pipeline's record as the reaper sees it, with whether its heartbeat key exists."""

    record: PipelineRecord
    heartbeat: bool


class PipelineStore(PipelineReads):
    """The reads (:class:`~services.infra.pipeline_reads.PipelineReads`, shared with the HTTP API) and the writes."""

    def __init__(self, redis: Redis, finished_ttl: int, hot: PipelinedConnection | None = None,
                 index: TrackedKeys | None = None) -> None:
        super().__init__(redis, hot, index)
        self._finished_ttl = finished_ttl
        self._request_state = redis.register_script(_REQUEST_STATE)
        self._retire = redis.register_script(_RETIRE)
        self._restart = redis.register_script(_RESTART)
        self._dispatched = redis.register_script(_DISPATCHED)
        self._confirm = redis.register_script(_CONFIRM)
        self._abandon = redis.register_script(_ABANDON)
        self._unreadable: set[str] = set()  # ids whose unreadable record was already logged

    async def create(self, record: PipelineRecord, spec: dict[str, Any]) -> None:
        """Record, spec and index entry, all or nothing."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.pipeline_record(record.pipeline_id), mapping=dict(record.to_hash()))  # type: ignore[arg-type]
                pipe.set(keys.pipeline_spec(record.pipeline_id), json.dumps(spec))
                pipe.sadd(keys.pipelines_index(), record.pipeline_id)
                await pipe.execute()
        finally:  # a write that failed may still have been made
            self._index_changed()

    async def get(self, pipeline_id: str) -> PipelineRecord:
        raw = await self._redis.hgetall(keys.pipeline_record(pipeline_id))
        if not raw:
            raise not_found(pipeline_id)
        return record_of(pipeline_id, raw)

    async def request_state(self, pipeline_id: str, desired: DesiredState) -> PipelineRecord:
        """Writes the desired state (unless the pipeline is over) and returns the record after it."""
        flat = await self._request_state(keys=[keys.pipeline_record(pipeline_id)],
                                         args=[desired.value, *FINAL_STATES])
        if flat is None:
            raise not_found(pipeline_id)
        return record_of(pipeline_id, dict(zip(flat[::2], flat[1::2], strict=True)))

    async def live_records(self) -> list[LiveRecord]:
        """Every indexed pipeline's record and heartbeat presence.

        Ids without a record are skipped, and so are records that do not parse (a field a newer
        version wrote, a hand edit): each is logged once with its error, and the others are served.
        """
        ids = [text(member) for member in await self._redis.smembers(keys.pipelines_index())]
        live: list[LiveRecord] = []
        # In batches: each batch's round trip lets the event loop answer requests between them, where one
        # read of every record (3,200 in the fleet benchmark) held it for the whole parse.
        for start in range(0, len(ids), READ_BATCH):
            await self._read_live(ids[start:start + READ_BATCH], live)
        return live

    async def _read_live(self, ids: list[str], live: list[LiveRecord]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for pipeline_id in ids:
                pipe.hgetall(keys.pipeline_record(pipeline_id))
                pipe.exists(keys.pipeline_heartbeat(pipeline_id))
            replies = await pipe.execute()
        for pipeline_id, raw, beat in zip(ids, replies[::2], replies[1::2], strict=True):
            if not raw:
                continue
            try:
                live.append(LiveRecord(PipelineRecord.from_hash(texts(raw)), bool(beat)))
            except FormatError as exc:
                if pipeline_id not in self._unreadable:
                    logger.warning("pipeline %s left as it is: %s", pipeline_id, exc)
                self._unreadable.add(pipeline_id)
            except (KeyError, ValueError):
                if pipeline_id not in self._unreadable:
                    logger.exception("pipeline %s: unreadable record, left as it is", pipeline_id)
                self._unreadable.add(pipeline_id)

    async def retire(
        self,
        pipeline_id: str,
        state: PipelineState | None = None,
        last_error: str = "",
        *,
        only_without_heartbeat: bool = False,
        only_in_state: PipelineState | None = None,
    ) -> bool:
        """Takes the pipeline out of the index and gives its keys ``finished_ttl``.

        ``state`` (with ``last_error``) is written unless the record is already final. The
        ``only_*`` conditions are checked atomically; returns whether the pipeline was retired.
        """
        expiring = [k for k in keys.pipeline_keys(pipeline_id)
                    if k not in (keys.pipeline_record(pipeline_id), keys.pipeline_heartbeat(pipeline_id))]
        try:
            retired = await self._retire(
                keys=[keys.pipelines_index(), keys.pipeline_record(pipeline_id),
                      keys.pipeline_heartbeat(pipeline_id), *expiring],
                args=[pipeline_id, self._finished_ttl, state.value if state else "", last_error, time.time(),
                      "1" if only_without_heartbeat else "0", only_in_state.value if only_in_state else "",
                      *FINAL_STATES],
            )
        finally:  # a write that failed may still have been made
            self._index_changed()
        return bool(retired)

    async def restart(self, record: PipelineRecord, reason: str, restart_at: float, failure: bool,
                      crash_signature: str = "") -> int | None:
        """Bumps the epoch of a lost pipeline and schedules its re-dispatch; the new epoch, or None.

        Atomic with the conditions that make it safe: the record is still at ``record``'s epoch
        and state, nobody asked to terminate it, and no heartbeat exists. ``crash_signature`` is
        remembered for the next loss ('' when this one was not an early crash).
        """
        epoch = await self._restart(
            keys=[keys.pipeline_record(record.pipeline_id), keys.pipeline_heartbeat(record.pipeline_id)],
            args=[record.epoch, record.state.value, time.time(), restart_at, reason, "1" if failure else "0",
                  crash_signature],
        )
        return int(epoch) or None

    async def mark_dispatched(self, pipeline_id: str, epoch: int) -> bool:
        return bool(await self._dispatched(keys=[keys.pipeline_record(pipeline_id)], args=[epoch, time.time()]))

    async def confirm(self, pipeline_id: str) -> bool:
        """Marks an INIT's record confirmed (its client gets the id); False when it is gone or being abandoned."""
        return bool(await self._confirm(keys=[keys.pipeline_record(pipeline_id)]))

    async def abandon_unconfirmed(self, pipeline_id: str) -> bool:
        """Marks an unconfirmed record past its deadline abandoned and desired TERMINATED, atomically; whether
        it was (the caller then terminates its task and removes it)."""
        return bool(await self._abandon(keys=[keys.pipeline_record(pipeline_id)], args=[time.time()]))

    async def spec(self, pipeline_id: str) -> dict[str, Any] | None:
        """The task payload stored at INIT (what a re-dispatch sends again); None when missing or unreadable.

        Raises ``FormatError`` for a spec of a newer major (a newer manager stored it).
        """
        spec = stored_object(pipeline_id, await self._redis.get(keys.pipeline_spec(pipeline_id)), "spec")
        if spec is None:
            return None
        readable(f"pipeline {pipeline_id}'s spec", spec.get("format_version"), SPEC_FORMAT)
        return spec

    async def remove(self, pipeline_id: str) -> None:
        """Every trace of the pipeline: its keys and its index entry."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(*keys.pipeline_keys(pipeline_id))
                pipe.srem(keys.pipelines_index(), pipeline_id)
                await pipe.execute()
        finally:  # a write that failed may still have been made
            self._index_changed()
