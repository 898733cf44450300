"""A task's ownership of one pipeline record: the atomic claim and every write fenced by it.

The epoch in the record is the fencing token. A task claims ``(pipeline_id, epoch)`` once; from
then on each of its writes (state, heartbeat, report) is a Lua script that first checks that the
record still carries our epoch and our owner, so a task whose epoch was superseded (the manager
re-dispatched the pipeline) can never overwrite the new owner's state.

A record that is missing altogether is not the same as one at another epoch
--------------------------------------------------------------------------------
A Redis restarted without persistence (or restored from an older snapshot, or a promoted replica
that had not received the latest writes) comes back without the record, the spec and the index
entry, while the task is still running the pipeline. Treating that as "fenced out" would stop
every pipeline of the deployment. So every fenced script tells the two apart: at another epoch or
owner it answers 0 (fenced: stop), missing it answers -1 with the server's ``run_id``, and the task
then **restores** its record, spec, index entry and heartbeat in one more script, only if the
record is still missing, and carries on (the manager lists it again and every command works).

Who may restore: only a task that still runs the pipeline and owned the record at its last
successful fenced write, and only when the record vanished with Redis's data rather than being
removed on purpose. The last part is told by the Redis server's ``run_id`` (``INFO server``, read
inside the scripts): every fenced write that succeeds remembers it, and a restart changes it. So

- a record the manager removed on purpose (a failed init's clean-up ``store.remove``; a finished
  record whose ``finished_ttl`` expired while the task was cut off) or that an operator deleted
  (``DEL``, ``FLUSHALL``) is missing on the *same* server: the restore refuses, the task stops as
  if fenced, nothing is resurrected;
- a record lost by a restart is missing on a *new* server: restored, with the desired state the
  task last read (a MUTE is not forgotten) and the state it runs in;
- a task that was ever refused (another epoch took the record) never restores again, and a
  restore is one atomic "only if missing" script, so two tasks racing to restore cannot both
  win: the loser's next fenced write sees the winner's epoch and stops. There are never two
  producers.

What is accepted: a record removed on purpose less than one tick (a second) before Redis lost its
data is restored by its task when Redis comes back, because the task cannot tell that removal
from the loss. It is then an ordinary listed pipeline that TERMINATE stops.
"""

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from services.core import keys
from services.core.fencing import fence_lua
from services.core.records import DesiredState, PipelineState
from services.infra.os_threads import name_os_thread

log = logging.getLogger(__name__)

TERMINATION_REQUESTED = "termination was requested"
HEARTBEAT_TTL = 3  # seconds (WORKER_HEARTBEAT_TTL); refreshed every supervision tick (1 s)
BEAT_PERIOD = 1.0

OWNED, FENCED, MISSING = 1, 0, -1  # first element of every fenced script's reply
RESTORED, PRESENT, REMOVED = 1, 2, 0  # first element of the restore script's reply

_FINAL = ", ".join(f"['{state.value}'] = true" for state in PipelineState if state.is_final)

# The Redis server's identity: a restart (with or without its data) changes it, a DEL or FLUSHALL does not.
_SERVER = "local server = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or ''\n"

# KEYS: record, heartbeat, spec. ARGV: epoch, owner, now, heartbeat ttl, heartbeat value.
# Returns {1, desired_state, server, record (flat HGETALL), spec or ''} when claimed, {0, reason}
# when this task is a stale duplicate. What it returns is what a restore writes back later.
_CLAIM = f"""
local final = {{{_FINAL}}}
local record = redis.call('HMGET', KEYS[1], 'epoch', 'state', 'desired_state')
if not record[1] then return {{0, 'no record'}} end
if tonumber(record[1]) ~= tonumber(ARGV[1]) then return {{0, 'record is at epoch ' .. record[1]}} end
if record[2] and final[record[2]] then return {{0, 'pipeline is already ' .. record[2]}} end
if record[3] == '{DesiredState.TERMINATED.value}' then return {{0, '{TERMINATION_REQUESTED}'}} end
local beat = redis.call('GET', KEYS[2])
if beat then
    local ok, holder = pcall(cjson.decode, beat)
    if ok and type(holder) == 'table' and tonumber(holder['epoch']) == tonumber(ARGV[1]) then
        return {{0, 'epoch already claimed by a live task'}}
    end
end
-- last_error stays: after a restart it says why the previous task was lost (status shows it)
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'state', '{PipelineState.INITIALISING.value}',
           'updated_at', ARGV[3])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
{_SERVER}
return {{1, record[3] or '{DesiredState.RUNNING.value}', server, redis.call('HGETALL', KEYS[1]),
        redis.call('GET', KEYS[3]) or ''}}
"""

# The fence every later write starts with: the record still has our epoch and our owner. Missing
# (Redis lost it, or it was removed): {-1, server}, for the caller to decide whether to restore.
_FENCE = fence_lua("{-1, server}", "{0}", ("desired_state",), _SERVER)

# Writes the report (KEYS[3]); a retired pipeline's keys expire with its record (finished TTL), so a
# report written after the retirement keeps or gets the record's TTL. Used by the tick and the release.
_STORE_REPORT = """
local function store_report(report)
    redis.call('SET', KEYS[3], report, 'KEEPTTL')
    local ttl = redis.call('TTL', KEYS[1])
    if ttl > 0 and redis.call('TTL', KEYS[3]) == -1 then redis.call('EXPIRE', KEYS[3], ttl) end
end
"""

# KEYS: record, heartbeat, report, consumed. ARGV: epoch, owner, now, ttl, heartbeat value, state,
# report. Returns {1, desired_state, last_non_empty or '', server} when owned.
_TICK = _FENCE + _STORE_REPORT + f"""
local final = {{{_FINAL}}}
-- A record the manager already retired (terminated while it was starting) keeps its final state.
if not final[redis.call('HGET', KEYS[1], 'state')] then
    redis.call('HSET', KEYS[1], 'state', ARGV[6], 'updated_at', ARGV[3])
end
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
store_report(ARGV[7])
local consumed = redis.call('HGET', KEYS[4], 'last_non_empty')
return {{1, record[3] or '{DesiredState.RUNNING.value}', consumed or '', server}}
"""

# KEYS: record, heartbeat. ARGV: epoch, owner, now, ttl, heartbeat value. Heartbeat only (while the
# pipeline is being built). Returns {1, server} when owned.
_BEAT = _FENCE + """
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
return {1, server}
"""

# KEYS: record, heartbeat, report. ARGV: epoch, owner, now, state, last_error, report ('' = keep).
# The task lets go: last state and report written, heartbeat removed. Returns {1, server} when owned.
_RELEASE = _FENCE + _STORE_REPORT + """
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'updated_at', ARGV[3], 'last_error', ARGV[5])
if ARGV[6] ~= '' then store_report(ARGV[6]) end
redis.call('DEL', KEYS[2])
return {1, server}
"""

# KEYS: record, heartbeat, spec, index. ARGV: server of our last successful write, heartbeat ttl,
# heartbeat value, pipeline id, spec ('' = none), then the record's field/value pairs.
# Returns {1, server} restored, {2, server} the record exists (nothing to do), {0, server} refused:
# the record went missing on the very server we last wrote to, so it was removed on purpose.
_RESTORE = _SERVER + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {2, server} end
if server == ARGV[1] then return {0, server} end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[5] ~= '' then redis.call('SET', KEYS[3], ARGV[5], 'NX') end
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2])
return {1, server}
"""


@dataclass(frozen=True, slots=True)
class Tick:
    """What a fenced heartbeat learnt: whether we still own the pipeline, and what is wanted of it."""

    owned: bool
    desired: DesiredState = DesiredState.RUNNING
    last_non_empty: float | None = None


class Ownership:
    """Claim and fenced writes of one task on one ``(pipeline_id, epoch)``; thread-safe (the supervisor,
    the heartbeat thread and the results sink all write through it)."""

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
        self._spec_key = keys.pipeline_spec(pipeline_id)
        self._claim = client.register_script(_CLAIM)
        self._tick = client.register_script(_TICK)
        self._release = client.register_script(_RELEASE)
        self._beat_script = client.register_script(_BEAT)
        self._restore = client.register_script(_RESTORE)
        # What a restore needs, all guarded by the lock: the record as claimed, the spec as stored,
        # the latest state written and desired state read, and the server of the last successful write.
        self._lock = threading.Lock()
        self._server: str | None = None  # None: never owned, or refused since: never restore
        self._claimed: dict[str, str] = {}
        self._spec = ""
        self.refusal: str | None = None  # why claim() refused, e.g. TERMINATION_REQUESTED
        self._state = PipelineState.INITIALISING
        self._desired = DesiredState.RUNNING

    def claim(self) -> DesiredState | None:
        """Claims the record; returns its desired state, or None when this task is stale."""
        reply = self._claim(
            keys=[self._record, self._heartbeat, self._spec_key],
            args=[self.epoch, self.owner, time.time(), self.heartbeat_ttl, self._beat()],
        )
        if not reply[0]:
            self.refusal = _text(reply[1])
            log.warning("pipeline %s epoch %d not claimed: %s", self.pipeline_id, self.epoch, self.refusal)
            return None
        desired = DesiredState(_text(reply[1]))
        flat = [_text(item) for item in reply[3]]
        with self._lock:
            self._server = _text(reply[2])
            self._claimed = dict(zip(flat[::2], flat[1::2], strict=True))
            self._spec = _text(reply[4])
            self._desired = desired
        log.info("pipeline %s epoch %d claimed by %s", self.pipeline_id, self.epoch, self.owner)
        return desired

    def tick(self, state: PipelineState, report: str) -> Tick:
        """Heartbeat, state and report in one fenced write; raises redis errors to the caller."""
        reply = self._fenced(self._tick, [self._record, self._heartbeat, self._report, self._consumed],
                             [self.epoch, self.owner, time.time(), self.heartbeat_ttl, self._beat(), state.value,
                              report], state)
        if reply is None:
            return Tick(owned=False)
        desired = DesiredState(_text(reply[1]))
        with self._lock:
            self._desired = desired
        consumed = _text(reply[2])
        return Tick(True, desired, float(consumed) if consumed else None)

    def beat(self) -> bool:
        """A fenced heartbeat refresh alone; False when fenced out."""
        reply = self._fenced(self._beat_script, [self._record, self._heartbeat],
                             [self.epoch, self.owner, time.time(), self.heartbeat_ttl, self._beat()])
        return reply is not None

    @contextlib.contextmanager
    def beating(self) -> Iterator[None]:
        """Keeps the heartbeat fresh while the body runs (loading a model on a GPU can take longer
        than the heartbeat TTL; without this the manager would declare the task lost meanwhile)."""
        stop = threading.Event()

        def run() -> None:
            name_os_thread()
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
        """Last fenced write: state, last_error and report; the heartbeat goes. False if fenced out.

        A record lost with Redis's data is restored first, so an end that happened during the
        outage is still seen (and retired) by the manager. Nothing is restored after this.
        """
        reply = self._fenced(self._release, [self._record, self._heartbeat, self._report],
                             [self.epoch, self.owner, time.time(), state.value, last_error, report], state)
        with self._lock:
            self._server = None
        return reply is not None

    def restore(self) -> bool:
        """Puts the record back when Redis lost it; True when it exists again (restored or present).

        The results sink calls this when its fenced write finds the record missing, then retries.
        """
        with self._lock:
            return self._restore_locked()

    def desired_state(self) -> DesiredState | None:
        """The record's desired state; None when the record is missing (Redis lost it: the next tick
        restores it with the desired state last read, which must not be mistaken for RUNNING)."""
        epoch, desired = self._client.hmget(self._record, ["epoch", "desired_state"])
        if epoch is None:
            return None
        return DesiredState(_text(desired)) if desired else DesiredState.RUNNING

    # ----------------------------------------------------------------- helpers

    def _fenced(self, script: Script, script_keys: list[str], args: Sequence[str | int | float],
                state: PipelineState | None = None) -> list[Any] | None:
        """Runs a fenced script; its reply when owned, None when fenced out.

        A record that went missing is restored (when allowed) and the script run once more.
        """
        with self._lock:
            if state is not None:
                self._state = state
            reply = script(keys=script_keys, args=args)
            if int(reply[0]) == MISSING and self._restore_locked():
                reply = script(keys=script_keys, args=args)
            if int(reply[0]) != OWNED:
                if self._server is not None:
                    log.warning("pipeline %s epoch %d: fenced out (the record is %s)", self.pipeline_id, self.epoch,
                                "gone" if int(reply[0]) == MISSING else "another task's")
                self._server = None
                return None
            self._server = _text(reply[-1])
            return list(reply)

    def _restore_locked(self) -> bool:
        if self._server is None:
            return False
        fields = {
            # confirm_by as claimed is the INIT's deadline (its manager confirms only after the claim): a
            # record restored with it would be abandoned by the reaper, so it comes back confirmed.
            **{name: value for name, value in self._claimed.items() if name != "confirm_by"},
            "pipeline_id": self.pipeline_id, "epoch": str(self.epoch), "owner": self.owner,
            "state": self._state.value, "desired_state": self._desired.value,
            "updated_at": str(time.time()), "restart_at": "0",
        }  # last_error as claimed: why the previous task was lost, if it was
        reply = self._restore(
            keys=[self._record, self._heartbeat, self._spec_key, keys.pipelines_index()],
            args=[self._server, self.heartbeat_ttl, self._beat(), self.pipeline_id, self._spec,
                  *(item for pair in fields.items() for item in pair)],
        )
        outcome, server = int(reply[0]), _text(reply[1])
        if outcome == REMOVED:
            log.warning("pipeline %s: its record was removed (Redis did not restart): not restoring it",
                        self.pipeline_id)
            self._server = None
            return False
        if outcome == RESTORED:
            log.warning("pipeline %s epoch %d: Redis lost its record (the server restarted); restored it (%s, %s)",
                        self.pipeline_id, self.epoch, self._state.value, self._desired.value)
        self._server = server
        return True

    def _beat(self) -> str:
        return json.dumps({"owner": self.owner, "epoch": self.epoch})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
