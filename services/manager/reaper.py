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

Unconfirmed INITs: an INIT writes its record with a deadline (``confirm_by``: init_timeout +
heartbeat_grace after it was written) and clears it, atomically, only as it hands the success reply
back (``services.manager.handlers``); on failure its manager removes the record itself. A record that
still carries a deadline belongs to that INIT: the reaper neither restarts nor retires it. Once the
deadline has passed its manager is gone (killed between writing the record and replying): the client
never got the pipeline's id, so nothing may keep running for it. The reaper then marks it abandoned
and desired TERMINATED in one script (from then on the INIT can no longer confirm it), publishes
TERMINATE to a task that may run it, and removes every key, as a failed INIT does. An abandonment cut
short (this manager dies too) is finished by the next sweep of whoever holds the lease.

Several managers: only the holder of the reaper lease sweeps (``services.manager.lease``); ``run``
takes or renews it before each sweep and stops acting the moment it cannot, and the sweep stops
midway when the lease's validity runs out under it. A manager that does not hold the lease keeps no
missing-heartbeat timers, so a new holder starts them afresh: it never declares a pipeline lost on a
timer it did not run itself.

Admission of re-dispatches: a sweep reads the registrations once and draws on them through an
``admission.Ledger``: every pipeline already dispatched but not claimed yet, then every re-dispatch
as it is sent, books a slot (and its RAM), so a sweep never sends more pipelines to a queue than its
workers have room for, even while their registrations (refreshed each second) have not caught up.

Each pipeline is handled on its own: an error on one (anything but Redis being unreachable) is
logged with its traceback and the sweep goes on with the next, so one bad record never stops the
supervision of the others.

Draining workers (``services.manager.drain``): after the pipelines, each sweep advances every
drain by at most one step (a finished move noticed, or the next pipeline handed over), with the
sweep's admission ledger, so a drain never sends more pipelines to a queue than its other workers
have room for. A stored spec of a newer format major (``services.core.formats``) is not re-dispatched:
the pipeline stays PENDING (logged once) for a manager of a release that reads it.

Each completed sweep's duration and size go to the manager's metrics
(``vsim_manager_reaper_sweep_seconds``, ``vsim_manager_reaper_last_sweep_seconds``,
``vsim_manager_reaper_last_sweep_pipelines``): a sweep reads every live record, so its time grows
with the fleet, and once it nears ``reaper_interval`` lost pipelines are noticed late
(``tests/benchmarks/fleet.py`` measures it up to 3,200 pipelines).

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
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.core import keys
from services.core.control import Command, ControlCommand
from services.core.errors import OperationError
from services.core.formats import FormatError
from services.core.records import WORKER_SHUTDOWN, DesiredState, PipelineRecord, PipelineState
from services.core.tasks import queue_for
from services.manager.admission import AdmissionPolicy, Ledger, read_registrations
from services.manager.dispatch import Dispatcher
from services.manager.drain import Drainer
from services.manager.lease import ReaperLease
from services.manager.settings import ManagerSettings
from services.manager.store import LiveRecord, PipelineStore

logger = logging.getLogger(__name__)

HEARTBEAT_LOST = "worker lost (no heartbeat)"
NEVER_CLAIMED = "no worker claimed the pipeline in time"
NOT_MOVABLE = "a WebRTC pipeline cannot move to another worker (its peer was connected to the lost one)"
YIELD_EVERY = 256  # records the sweep handles before it lets waiting requests run
_BEATING = (PipelineState.INITIALISING, PipelineState.RUNNING, PipelineState.MUTED)


class Reaper:
    def __init__(self, settings: ManagerSettings, store: PipelineStore, dispatcher: Dispatcher,
                 redis: Redis, on_sweep: Callable[[float, int], None] | None = None,
                 lease: ReaperLease | None = None) -> None:
        """``on_sweep(seconds, pipelines)`` is told of each completed sweep (the manager's metrics).
        ``lease``: the reaper lease :meth:`run` takes and renews (one is made when not given); a bare
        :meth:`sweep` (tests) acts without it."""
        self._settings = settings
        self._on_sweep = on_sweep
        self._store = store
        self._dispatcher = dispatcher
        self._redis = redis
        self.lease = lease or ReaperLease(redis, settings.reaper_lease_ttl)
        self._leased = False  # True while run() drives the sweeps: they then act only while the lease is valid
        self._missing_since: dict[str, float] = {}  # pipeline id -> monotonic time its heartbeat went missing
        self._redis_down = False  # the last sweep failed on a Redis error
        self._blind_until = 0.0  # monotonic time before which a missing heartbeat starts no timer
        self._drainer = Drainer(store, dispatcher, redis)  # hands pipelines over off draining workers
        self._told_format: set[str] = set()  # pipelines whose newer-format spec was already logged

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps until ``stop`` is set; an error in one sweep (Redis down) is logged, the next retries.

        Stopped by an event rather than cancelled: a cancellation landing inside a redis.asyncio
        call can be swallowed on Python 3.11 (measured), which would leave the loop running.

        Each round first takes or renews the reaper lease (``services.manager.lease``): only its holder
        sweeps, and a round whose renewal fails does nothing. A manager that does not hold it keeps no
        missing-heartbeat timers: a new holder starts them afresh. When ``stop`` is set the lease is released.
        """
        self._leased = True
        try:
            while not stop.is_set():
                try:
                    if await self.lease.refresh():
                        await self.sweep()
                    else:
                        self._missing_since.clear()
                except RedisError as exc:
                    self._on_redis_error(exc)
                except Exception:
                    logger.exception("reaper sweep failed; the next one retries")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.reaper_interval):
                        await stop.wait()
        finally:
            self._leased = False
            await self.lease.release()

    def _on_redis_error(self, exc: RedisError) -> None:
        if not self._redis_down:
            logger.warning("reaper: Redis unreachable, no pipeline is declared lost meanwhile: %s: %s",
                           type(exc).__name__, exc)
        self._redis_down = True
        self._missing_since.clear()

    async def sweep(self) -> None:
        started = time.perf_counter()
        live = await self._store.live_records()
        if self._redis_down:
            self._redis_down = False
            self._blind_until = time.monotonic() + self._settings.outage_grace
            logger.info("reaper: Redis reachable again; missing heartbeats count from %.1f s on",
                        self._settings.outage_grace)
        seen = {item.record.pipeline_id for item in live}
        self._missing_since = {pid: t for pid, t in self._missing_since.items() if pid in seen}
        ledger: Ledger | None = None  # read once per sweep, only when a re-dispatch is due
        for index, item in enumerate(live):
            record = item.record
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # requests waiting on the event loop go first (a sweep of thousands)
            if self._leased and not self.lease.valid():
                logger.warning("reaper: the lease ran out during a sweep (a slow Redis?); the sweep stops")
                return
            try:
                if record.confirm_by:  # an INIT's record: its manager's until the deadline, then abandoned
                    await self._settle_unconfirmed(record)
                    continue
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

        async def sweep_ledger() -> Ledger:  # the drains draw on this sweep's ledger too
            nonlocal ledger
            if ledger is None:
                ledger = await self._ledger(live)
            return ledger

        if not self._leased or self.lease.valid():
            await self._drainer.sweep(live, sweep_ledger)  # errors of one drain are its own; Redis's stop the sweep
        if self._on_sweep is not None:  # a sweep cut short (Redis, the lease) is not timed
            self._on_sweep(time.perf_counter() - started, len(live))

    async def _settle_unconfirmed(self, record: PipelineRecord) -> None:
        """Nothing before the record's deadline (its INIT is still under way, or its manager removes it on
        failure); past it, the INIT's manager is gone: the pipeline is terminated and every key removed."""
        if not await self._store.abandon_unconfirmed(record.pipeline_id):
            return  # not due yet, or its INIT confirmed it meanwhile
        with contextlib.suppress(RedisError):  # the desired state is written: a task that runs stops anyway
            await self._redis.publish(keys.pipeline_control_channel(record.pipeline_id), ControlCommand(
                command=Command.TERMINATE, request_id=f"{uuid.uuid4()}:abandon", epoch=record.epoch,
            ).model_dump_json())
        await self._store.remove(record.pipeline_id)
        logger.warning("pipeline %s removed: its INIT was never confirmed to a client (the manager handling it "
                       "is gone); its task, if any, was told to terminate", record.pipeline_id)

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
        try:
            spec = await self._store.spec(record.pipeline_id)
        except FormatError as exc:  # a newer manager's spec: left PENDING for a manager that reads it
            if record.pipeline_id not in self._told_format:
                logger.warning("pipeline %s not re-dispatched: %s", record.pipeline_id, exc)
            self._told_format.add(record.pipeline_id)
            return
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
