"""Supervision: retires pipelines that are over and re-dispatches those whose task was lost.

Every ``reaper_interval`` it looks at each indexed pipeline:

- A **final** record (its files ended, it was terminated or failed) leaves the index and its keys
  get ``finished_ttl``, so it drops out of ``list_pipelines`` while its last status stays readable.
- A **running** record (INITIALISING, RUNNING, MUTED) whose heartbeat key has been missing for
  ``heartbeat_grace`` (the key itself lives ``WORKER_HEARTBEAT_TTL`` seconds after the last tick),
  or at once when its task let go because its worker is shutting down, is **lost**.
- A **PENDING** record nobody claimed within ``init_timeout`` + grace of its dispatch is lost too.

A lost pipeline is **restarted** (at-least-once): one Lua script bumps its epoch (fencing out any
task still running the old epoch: its every write, results included, is refused from then on),
sets it PENDING and schedules a re-dispatch: at once after a first crash, a shutdown hand-off
or a dispatch nobody claimed, then after an exponential backoff for a pipeline that keeps
crashing. The schedule lives in the record (``restart_at``), so a manager restart still carries it out. The due
re-dispatch is sent only when a live worker of the pipeline's device queue has room for it (the
same admission as an INIT: a free slot, RAM); until then the pipeline waits, PENDING, with the
reason in ``last_error``. After ``max_restarts`` crashes, or
when termination was requested, it is retired as FAILED / TERMINATED instead. A pipeline that is not
``movable`` (a WebRTC pipeline: the peer connection lived in the lost task) is retired FAILED at once,
with that reason, whether its worker crashed or shut down.

Which losses are crashes: only a task that claimed the pipeline and then stopped beating
(``HEARTBEAT_LOST``). A worker's shutdown hand-off is not one, and neither is a dispatch nobody
claimed in time (``NEVER_CLAIMED``: the task waited in a busy queue or its message was lost; no
process died running it). Those are restarted at once and count only in ``restarts``.

A task that died twice the same way is not restarted a third time. A spec that kills the process
running it (a decoder or model that exhausts memory, a native crash) would otherwise take down one
worker after another until ``max_restarts``. What the manager can observe of a loss is its reason,
the record's state when it was lost, and how long after its dispatch (both on the manager's own
clock) it was declared lost. A crash declared less than ``crash_loop_window`` after its dispatch is
**early**, and its **signature** is its reason and state, e.g. "worker lost (no heartbeat) while
INITIALISING". Each restart stores the signature of the loss that caused it ("" when that loss was
not an early crash); when the next loss is an early crash with the same stored signature, the
pipeline is FAILED with "the pipeline's task died twice the same way (<signature>, within <window> s
of its dispatch); not restarted". Any other loss in between clears the stored signature: only two
consecutive early crashes of one kind count. A worker that happens to die soon after taking the
pipeline, twice in a row, at the same stage, is what the rule cannot tell apart from a poisonous
spec; ``MANAGER_CRASH_LOOP_WINDOW=0`` turns it off.

Admission of re-dispatches: a sweep reads the registrations once and draws on them through an
``admission.Ledger``: every pipeline already dispatched but not claimed yet, then every re-dispatch
as it is sent, books a slot (and its RAM), so a sweep never sends more pipelines to a queue than its
workers have room for, even while their registrations (refreshed each second) have not caught up.

Each pipeline is handled on its own: an error on one (anything but Redis being unreachable) is
logged with its traceback and the sweep goes on with the next, so one bad record never stops the
supervision of the others.

Redis outages: while Redis is unreachable no task can refresh its heartbeat, and the keys may
expire meanwhile (a Redis restarted with its data drops those whose TTL passed while it was down).
A missing heartbeat then says nothing about the task, so after a sweep failed on a Redis error the
missing-heartbeat timers start again, and only ``outage_grace`` after the first sweep that reaches
Redis again: every task still running has ticked by then (within about 2 s of reconnecting). A
short outage therefore never restarts a pipeline; a task that died during one is declared lost
within ``outage_grace + heartbeat_grace + reaper_interval`` (7 s by default) of Redis coming back.
An outage shorter than ``reaper_interval`` that no sweep saw needs no such care: it is shorter
than the heartbeat's TTL.
"""

import asyncio
import contextlib
import logging
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.core import keys
from services.core.errors import OperationError
from services.core.records import WORKER_SHUTDOWN, DesiredState, PipelineRecord, PipelineState
from services.core.tasks import queue_for
from services.manager.admission import AdmissionPolicy, Ledger, read_registrations
from services.manager.dispatch import Dispatcher
from services.manager.settings import ManagerSettings
from services.manager.store import LiveRecord, PipelineStore

logger = logging.getLogger(__name__)

HEARTBEAT_LOST = "worker lost (no heartbeat)"
NEVER_CLAIMED = "no worker claimed the pipeline in time"
NOT_MOVABLE = "a WebRTC pipeline cannot move to another worker (its peer was connected to the lost one)"
_BEATING = (PipelineState.INITIALISING, PipelineState.RUNNING, PipelineState.MUTED)


class Reaper:
    def __init__(self, settings: ManagerSettings, store: PipelineStore, dispatcher: Dispatcher,
                 redis: Redis) -> None:
        self._settings = settings
        self._store = store
        self._dispatcher = dispatcher
        self._redis = redis
        self._missing_since: dict[str, float] = {}  # pipeline id -> monotonic time its heartbeat went missing
        self._redis_down = False  # the last sweep failed on a Redis error
        self._blind_until = 0.0  # monotonic time before which a missing heartbeat starts no timer

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps until ``stop`` is set; an error in one sweep (Redis down) is logged, the next retries.

        Stopped by an event rather than cancelled: a cancellation landing inside a redis.asyncio
        call can be swallowed on Python 3.11 (measured), which would leave the loop running.
        """
        while not stop.is_set():
            try:
                await self.sweep()
            except RedisError as exc:
                self._on_redis_error(exc)
            except Exception:
                logger.exception("reaper sweep failed; the next one retries")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.reaper_interval):
                    await stop.wait()

    def _on_redis_error(self, exc: RedisError) -> None:
        if not self._redis_down:
            logger.warning("reaper: Redis unreachable, no pipeline is declared lost meanwhile: %s: %s",
                           type(exc).__name__, exc)
        self._redis_down = True
        self._missing_since.clear()

    async def sweep(self) -> None:
        live = await self._store.live_records()
        if self._redis_down:
            self._redis_down = False
            self._blind_until = time.monotonic() + self._settings.outage_grace
            logger.info("reaper: Redis reachable again; missing heartbeats count from %.1f s on",
                        self._settings.outage_grace)
        seen = {item.record.pipeline_id for item in live}
        self._missing_since = {pid: t for pid, t in self._missing_since.items() if pid in seen}
        ledger: Ledger | None = None  # read once per sweep, only when a re-dispatch is due
        for item in live:
            record = item.record
            try:
                if record.state is PipelineState.PENDING and 0 < record.restart_at <= time.time():
                    if ledger is None:
                        ledger = await self._ledger(live)
                    await self._redispatch(record, ledger)
                else:
                    await self._inspect(item)
            except RedisError:
                raise  # Redis itself: the whole sweep stops (run() starts the outage handling)
            except Exception:
                logger.exception("reaper: pipeline %s (state %s) could not be handled; the sweep goes on",
                                 record.pipeline_id, record.state.value)

    async def _ledger(self, live: list[LiveRecord]) -> Ledger:
        """The registrations as of now, with every dispatched, not yet claimed pipeline booked."""
        policy = AdmissionPolicy(pipeline_ram_estimate_mb=self._settings.pipeline_ram_estimate_mb,
                                 min_free_ram_mb=self._settings.min_free_ram_mb)
        ledger = Ledger(await read_registrations(self._redis), policy)
        for item in live:
            if item.record.state is PipelineState.PENDING and item.record.restart_at == 0:
                ledger.book(queue_for(item.record.device))
        return ledger

    async def _inspect(self, item: LiveRecord) -> None:
        record = item.record
        if record.state.is_final:
            if await self._store.retire(record.pipeline_id, only_in_state=record.state):
                logger.info("pipeline %s is over (%s); retired", record.pipeline_id, record.state)
        elif record.state in _BEATING:
            await self._check_heartbeat(record, item.heartbeat)
        elif record.state is PipelineState.PENDING and record.restart_at == 0 and self._pending_too_long(record):
            await self.on_lost(record, NEVER_CLAIMED)

    async def _check_heartbeat(self, record: PipelineRecord, beating: bool) -> None:
        if beating:
            self._missing_since.pop(record.pipeline_id, None)
            return
        if record.last_error == WORKER_SHUTDOWN:  # the task let go on purpose: no need to wait
            await self.on_lost(record, WORKER_SHUTDOWN)
            return
        since = self._missing_since.setdefault(record.pipeline_id, max(time.monotonic(), self._blind_until))
        if time.monotonic() - since >= self._settings.heartbeat_grace:
            await self.on_lost(record, HEARTBEAT_LOST)

    def _pending_too_long(self, record: PipelineRecord) -> bool:
        dispatched = max(record.created_at, record.updated_at)
        return time.time() > dispatched + self._settings.init_timeout + self._settings.heartbeat_grace

    async def on_lost(self, record: PipelineRecord, reason: str) -> None:
        """No task runs the pipeline any more: restart it, or retire it when that is not wanted."""
        pid = record.pipeline_id
        self._missing_since.pop(pid, None)
        if record.desired_state is DesiredState.TERMINATED:
            await self._retire_lost(record, PipelineState.TERMINATED, f"{reason}; termination was requested")
            return
        if not record.movable:  # its peer connection was on the lost worker: nothing can take it over
            await self._retire_lost(record, PipelineState.FAILED, f"{reason}; {NOT_MOVABLE}")
            return
        failure = reason == HEARTBEAT_LOST  # the task claimed it, then died (see the module docstring)
        signature = self._crash_signature(record, reason)
        if signature and signature == record.crash_signature:
            await self._retire_lost(record, PipelineState.FAILED,
                                    f"the pipeline's task died twice the same way ({signature}, within "
                                    f"{self._settings.crash_loop_window:g} s of its dispatch); not restarted")
            return
        if failure and record.failures >= self._settings.max_restarts:
            await self._retire_lost(record, PipelineState.FAILED,
                                    f"{reason}; gave up after {record.failures} restarts")
            return
        delay = self._backoff(record.failures) if failure else 0.0
        epoch = await self._store.restart(record, reason, time.time() + delay, failure, signature)
        if epoch is None:
            return  # it changed meanwhile (a heartbeat came back, a terminate): the next sweep sees it
        logger.warning("pipeline %s lost (%s); epoch %d will be dispatched in %.1f s", pid, reason, epoch, delay)

    def _crash_signature(self, record: PipelineRecord, reason: str) -> str:
        """How the task died when this loss is an early crash (see the module docstring); else ""."""
        window = self._settings.crash_loop_window
        if reason != HEARTBEAT_LOST or window <= 0 or record.dispatched_at <= 0:
            return ""
        if time.time() - record.dispatched_at >= window:
            return ""
        return f"{reason} while {record.state.value}"

    def _backoff(self, failures: int) -> float:
        """0 for the first crash (most are one-offs), then initial, 2 x initial, ... up to the cap."""
        if failures == 0:
            return 0.0
        initial, cap = self._settings.restart_backoff_initial, self._settings.restart_backoff_max
        return float(min(cap, initial * 2 ** (failures - 1)))

    async def _retire_lost(self, record: PipelineRecord, state: PipelineState, reason: str) -> None:
        if await self._store.retire(record.pipeline_id, state, reason, only_without_heartbeat=True,
                                    only_in_state=record.state):
            logger.warning("pipeline %s %s: %s", record.pipeline_id, state.value, reason)

    async def _redispatch(self, record: PipelineRecord, ledger: Ledger) -> None:
        queue = queue_for(record.device)
        spec = await self._store.spec(record.pipeline_id)
        if spec is None:
            await self._retire_lost(record, PipelineState.FAILED,
                                    "cannot restart: the pipeline's spec is gone or unreadable")
            return
        try:
            ledger.admit(queue)  # the same admission as an INIT's, booked in this sweep's ledger
        except OperationError:
            return  # waits, PENDING, until a worker of the queue has room (or a terminate)
        # Marked first: if the send then fails, the claim deadline retires or restarts it again;
        # the reverse order could send the same epoch twice (harmless, the claim refuses the second).
        if not await self._store.mark_dispatched(record.pipeline_id, record.epoch):
            return
        reply_to = keys.reply_list(str(uuid.uuid4()))  # nobody waits: the task's reply just expires
        await self._dispatcher.dispatch(record.pipeline_id, record.epoch, spec, reply_to, record.device)
        logger.info("pipeline %s re-dispatched to %s (epoch %d, restart %d)", record.pipeline_id, queue,
                    record.epoch, record.restarts)
