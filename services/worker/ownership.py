"""A task's ownership of one pipeline record: the atomic claim and every write fenced by it.

The epoch in the record is the fencing token. A task claims ``(pipeline_id, epoch)`` once; from
then on each of its writes (state, heartbeat, report) is a Lua script that first checks that the
record still carries our epoch and our owner, so a task whose epoch was superseded (the manager
re-dispatched the pipeline) can never overwrite the new owner's state.
"""

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from services.core import keys
from services.core.records import DesiredState, PipelineState

log = logging.getLogger(__name__)

HEARTBEAT_TTL = 3  # seconds (WORKER_HEARTBEAT_TTL); refreshed every supervision tick (1 s)
BEAT_PERIOD = 1.0

_FINAL = ", ".join(f"['{state.value}'] = true" for state in PipelineState if state.is_final)

# KEYS: record, heartbeat. ARGV: epoch, owner, now, heartbeat ttl, heartbeat value.
# Returns {1, desired_state} when claimed, {0, reason} when this task is a stale duplicate.
_CLAIM = f"""
local final = {{{_FINAL}}}
local record = redis.call('HMGET', KEYS[1], 'epoch', 'state', 'desired_state')
if not record[1] then return {{0, 'no record'}} end
if tonumber(record[1]) ~= tonumber(ARGV[1]) then return {{0, 'record is at epoch ' .. record[1]}} end
if record[2] and final[record[2]] then return {{0, 'pipeline is already ' .. record[2]}} end
if record[3] == '{DesiredState.TERMINATED.value}' then return {{0, 'termination was requested'}} end
local beat = redis.call('GET', KEYS[2])
if beat then
    local ok, holder = pcall(cjson.decode, beat)
    if ok and type(holder) == 'table' and tonumber(holder['epoch']) == tonumber(ARGV[1]) then
        return {{0, 'epoch already claimed by a live task'}}
    end
end
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'state', '{PipelineState.INITIALISING.value}',
           'updated_at', ARGV[3], 'last_error', '')
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
return {{1, record[3] or '{DesiredState.RUNNING.value}'}}
"""

# The fence every later write starts with: the record still has our epoch and our owner.
_FENCE = """
local record = redis.call('HMGET', KEYS[1], 'epoch', 'owner', 'desired_state')
if tonumber(record[1]) ~= tonumber(ARGV[1]) or record[2] ~= ARGV[2] then return {0} end
"""

# KEYS: record, heartbeat, report, consumed. ARGV: epoch, owner, now, ttl, heartbeat value, state,
# report. Returns {0} when fenced out, else {1, desired_state, last_non_empty or ''}.
_TICK = _FENCE + f"""
redis.call('HSET', KEYS[1], 'state', ARGV[6], 'updated_at', ARGV[3])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
redis.call('SET', KEYS[3], ARGV[7])
local consumed = redis.call('HGET', KEYS[4], 'last_non_empty')
return {{1, record[3] or '{DesiredState.RUNNING.value}', consumed or ''}}
"""

# KEYS: record, heartbeat. ARGV: epoch, owner, now, ttl, heartbeat value. Heartbeat only (while the
# pipeline is being built). Returns {0} when fenced out, {1} otherwise.
_BEAT = _FENCE + """
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
return {1}
"""

# KEYS: record, heartbeat, report. ARGV: epoch, owner, now, state, last_error, report ('' = keep).
# The task lets go: last state and report written, heartbeat removed. Returns {0} when fenced out.
_RELEASE = _FENCE + """
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'updated_at', ARGV[3], 'last_error', ARGV[5])
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6]) end
redis.call('DEL', KEYS[2])
return {1}
"""


@dataclass(frozen=True, slots=True)
class Tick:
    """What a fenced heartbeat learnt: whether we still own the pipeline, and what is wanted of it."""

    owned: bool
    desired: DesiredState = DesiredState.RUNNING
    last_non_empty: float | None = None


class Ownership:
    """Claim and fenced writes of one task on one ``(pipeline_id, epoch)``."""

    def __init__(self, client: redis.Redis, pipeline_id: str, epoch: int, owner: str,
                 heartbeat_ttl: int = HEARTBEAT_TTL) -> None:
        self.pipeline_id = pipeline_id
        self.epoch = epoch
        self.owner = owner
        self.heartbeat_ttl = heartbeat_ttl
        self._client = client
        self._record = keys.pipeline_record(pipeline_id)
        self._heartbeat = keys.pipeline_heartbeat(pipeline_id)
        self._report = keys.pipeline_report(pipeline_id)
        self._consumed = keys.pipeline_consumed(pipeline_id)
        self._claim = client.register_script(_CLAIM)
        self._tick = client.register_script(_TICK)
        self._release = client.register_script(_RELEASE)
        self._beat_script = client.register_script(_BEAT)

    def claim(self) -> DesiredState | None:
        """Claims the record; returns its desired state, or None when this task is stale."""
        claimed, detail = self._claim(
            keys=[self._record, self._heartbeat],
            args=[self.epoch, self.owner, time.time(), self.heartbeat_ttl, self._beat()],
        )
        if not claimed:
            log.warning("pipeline %s epoch %d not claimed: %s", self.pipeline_id, self.epoch, _text(detail))
            return None
        log.info("pipeline %s epoch %d claimed by %s", self.pipeline_id, self.epoch, self.owner)
        return DesiredState(_text(detail))

    def tick(self, state: PipelineState, report: str) -> Tick:
        """Heartbeat, state and report in one fenced write; raises redis errors to the caller."""
        reply = self._tick(
            keys=[self._record, self._heartbeat, self._report, self._consumed],
            args=[self.epoch, self.owner, time.time(), self.heartbeat_ttl, self._beat(), state.value, report],
        )
        if not reply[0]:
            return Tick(owned=False)
        consumed = _text(reply[2])
        return Tick(True, DesiredState(_text(reply[1])), float(consumed) if consumed else None)

    def beat(self) -> bool:
        """A fenced heartbeat refresh alone; False when fenced out."""
        reply = self._beat_script(keys=[self._record, self._heartbeat],
                                  args=[self.epoch, self.owner, time.time(), self.heartbeat_ttl, self._beat()])
        return bool(reply[0])

    @contextlib.contextmanager
    def beating(self) -> Iterator[None]:
        """Keeps the heartbeat fresh while the body runs (loading a model on a GPU can take longer
        than the heartbeat TTL; without this the manager would declare the task lost meanwhile)."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(BEAT_PERIOD):
                try:
                    if not self.beat():
                        return
                except redis.RedisError as exc:
                    log.warning("pipeline %s: heartbeat failed: %s", self.pipeline_id, exc)

        thread = threading.Thread(target=run, name=f"beat-{self.pipeline_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(2 * BEAT_PERIOD)

    def release(self, state: PipelineState, last_error: str = "", report: str = "") -> bool:
        """Last fenced write: state, last_error and report; the heartbeat goes. False if fenced out."""
        reply = self._release(
            keys=[self._record, self._heartbeat, self._report],
            args=[self.epoch, self.owner, time.time(), state.value, last_error, report],
        )
        return bool(reply[0])

    def desired_state(self) -> DesiredState:
        raw = self._client.hget(self._record, "desired_state")
        return DesiredState(_text(raw)) if raw else DesiredState.RUNNING

    def _beat(self) -> str:
        return json.dumps({"owner": self.owner, "epoch": self.epoch})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
