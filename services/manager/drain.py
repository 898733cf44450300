"""Draining workers: the drain and undrain commands, the worker listing, and the reaper's hand-over.

Theory of operation
-------------------
``drain_worker`` (a live, registered worker only: else ``not_found``) adds the worker's field to
``keys.worker_drains()``; from then on

1. **No new work.** Admission (``services.manager.admission``) refuses a draining worker at once
   (it reads the drain flags with the registrations), and the worker itself stops consuming its
   Celery queues at its next registration beat (``services.worker.drain``; within about a second),
   after which Celery cannot hand it any task, INIT or re-dispatch. Its registration then says
   ``draining: true, consuming: false``. ``undrain_worker`` removes the field: the worker consumes
   again at its next beat and admission counts it again.
2. **Hand-over**, by the reaper, one pipeline at a time per draining worker, and only once the
   worker's registration confirms that it stopped consuming (else the re-dispatch could land on it
   again). Each sweep :meth:`Drainer.sweep`, for each drain:

   - when a move is under way, checks whether it is done: the pipeline runs (RUNNING or MUTED) on
     another worker at a newer epoch, or is over. Until then nothing else moves;
   - else takes the oldest movable pipeline the worker runs (RUNNING or MUTED; one still starting
     is waited for), checks that another worker of its queue has room (the reaper's admission
     ledger, draining workers excluded) and, if so, **hands it over**: one Lua script bumps its
     epoch (the old task is fenced out: its next write, results included, is refused, and it stops),
     counts a restart but no failure (``last_error`` "worker draining", no crash signature, no
     backoff), deletes the old heartbeat, marks it dispatched and names the move in the drain's
     progress (so the drain never reads as done in between); then the spec is sent to the queue at
     once. The reaper's usual claim deadline covers a dispatch nobody claims;
   - a pipeline that cannot move (``movable`` False: a WebRTC peer is connected to this worker) is
     left running there and listed in ``unmovable``; it is never killed by a drain;
   - when no other worker has room, nothing is stopped: the drain waits, and says why in
     ``waiting`` (as it does while the worker has not stopped consuming, or is not registered).

   The progress (the move under way, how many moved, the last move's duration, why it waits) is
   written back into the worker's field each sweep, only while the field exists (a Lua script, so
   an undrain is never undone). Everything lives in Redis: a restarted manager, or another one
   taking over the reaper, carries on where the last sweep left off.

The gap a client sees per pipeline is the new task's start on the other worker: the old epoch's
results stop at the epoch bump (fenced), the new epoch's first result follows once the other worker
has claimed, built and started it (``tests/e2e/test_drain.py`` measures it from the results stream).

``list_workers`` answers every registered worker and every drained one (a drained worker that is not
registered, e.g. stopped for its upgrade, is listed with ``registered: false`` until undrained), with
its pipelines counted from the live records (by owner) and its drain's progress.
"""

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.core import keys
from services.core.drain import DrainProgress, owner_host
from services.core.errors import NotFoundError, OperationError
from services.core.formats import FormatError
from services.core.records import WORKER_DRAINING, DesiredState, PipelineRecord, PipelineState
from services.core.registration import WorkerRegistration
from services.core.tasks import queue_for
from services.manager.admission import Ledger, read_registrations
from services.manager.dispatch import Dispatcher
from services.manager.store import LiveRecord, PipelineStore

logger = logging.getLogger(__name__)

_MOVABLE_STATES = (PipelineState.RUNNING, PipelineState.MUTED)

# KEYS: drains. ARGV: hostname, progress JSON. Rewrites a drain's progress only while it exists.
_SAVE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: record, heartbeat, drains. ARGV: expected epoch, expected state, expected owner, now, reason,
# hostname, progress JSON (the move under way). Moves a running pipeline off its (draining) worker: a
# new epoch fences the old task out; a restart but not a failure; dispatched now (the claim deadline
# counts from here). The drain's progress names the move in the same step, so no reader ever sees the
# pipeline gone from the worker with no move under way (a drain "done" too early). Returns the new
# epoch, or 0 when the record changed meanwhile, termination was requested or the drain was cancelled.
_HAND_OVER = """
if redis.call('HEXISTS', KEYS[3], ARGV[6]) == 0 then return 0 end
local fields = redis.call('HMGET', KEYS[1], 'epoch', 'state', 'owner', 'desired_state')
if not fields[1] or tonumber(fields[1]) ~= tonumber(ARGV[1]) or fields[2] ~= ARGV[2] then return 0 end
if fields[3] ~= ARGV[3] or fields[4] == 'TERMINATED' then return 0 end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HINCRBY', KEYS[1], 'restarts', 1)
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'owner', '', 'updated_at', ARGV[4], 'restart_at', '0',
           'dispatched_at', ARGV[4], 'last_error', ARGV[5], 'crash_signature', '')
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[3], ARGV[6], ARGV[7])
return epoch
"""


class Drains:
    """The drains in Redis: request, cancel, read, progress, and the hand-over of one pipeline."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._save = redis.register_script(_SAVE)
        self._hand_over = redis.register_script(_HAND_OVER)

    async def request(self, hostname: str) -> bool:
        """Starts draining ``hostname``; False when it was draining already (its progress is kept)."""
        progress = DrainProgress(requested_at=time.time(), updated_at=time.time())
        return bool(await self._redis.hsetnx(keys.worker_drains(), hostname, progress.model_dump_json()))

    async def cancel(self, hostname: str) -> bool:
        """Stops draining ``hostname``; False when it was not draining."""
        return bool(await self._redis.hdel(keys.worker_drains(), hostname))

    async def read(self) -> dict[str, DrainProgress]:
        """Every drain by hostname; an unreadable value reads as a fresh drain (it is rewritten next sweep)."""
        drains = {}
        for field, value in (await self._redis.hgetall(keys.worker_drains())).items():
            hostname = _text(field)
            try:
                drains[hostname] = DrainProgress.model_validate_json(value)
            except ValidationError:
                drains[hostname] = DrainProgress(requested_at=time.time())
        return drains

    async def save(self, hostname: str, progress: DrainProgress) -> bool:
        progress = progress.model_copy(update={"updated_at": time.time()})
        return bool(await self._save(keys=[keys.worker_drains()], args=[hostname, progress.model_dump_json()]))

    async def hand_over(self, record: PipelineRecord, hostname: str, progress: DrainProgress) -> int | None:
        """Bumps the epoch of ``record`` (still as read: same epoch, state and owner) and saves ``progress``
        (the move under way) for ``hostname``'s drain, at once; the new epoch, or None."""
        progress = progress.model_copy(update={"updated_at": time.time()})
        epoch = await self._hand_over(
            keys=[keys.pipeline_record(record.pipeline_id), keys.pipeline_heartbeat(record.pipeline_id),
                  keys.worker_drains()],
            args=[record.epoch, record.state.value, record.owner, time.time(), WORKER_DRAINING, hostname,
                  progress.model_dump_json()],
        )
        return int(epoch) or None


class Drainer:
    """The reaper's part of draining: advances every drain by at most one step per sweep."""

    def __init__(self, store: PipelineStore, dispatcher: Dispatcher, redis: Redis) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._redis = redis
        self._drains = Drains(redis)
        self._told: dict[str, str | None] = {}  # hostname -> the waiting reason last logged (logged on change)

    async def sweep(self, live: list[LiveRecord], ledger: Callable[[], Awaitable[Ledger]]) -> None:
        """``live``: this sweep's records; ``ledger()``: the sweep's admission ledger (read when first needed)."""
        drains = await self._drains.read()
        self._told = {hostname: told for hostname, told in self._told.items() if hostname in drains}
        if not drains:
            return
        registrations = {registration.hostname: registration for registration in await read_registrations(self._redis)}
        for hostname, progress in drains.items():
            try:
                progress = await self._advance(hostname, progress, registrations.get(hostname), live, ledger)
            except RedisError:
                raise
            except Exception:
                logger.exception("drain of worker %s could not advance; the sweep goes on", hostname)
                continue
            if progress.waiting != self._told.get(hostname):
                self._told[hostname] = progress.waiting
                if progress.waiting:
                    logger.info("drain of worker %s waits: %s", hostname, progress.waiting)
            await self._drains.save(hostname, progress)

    async def _advance(self, hostname: str, progress: DrainProgress, registration: WorkerRegistration | None,
                       live: list[LiveRecord], ledger: Callable[[], Awaitable[Ledger]]) -> DrainProgress:
        records = {item.record.pipeline_id: item.record for item in live}
        on_worker = running_on(hostname, live)
        unmovable = [record.pipeline_id for record in on_worker if not record.movable]
        progress = progress.model_copy(update={"unmovable": unmovable, "waiting": None})
        if progress.moving is not None:
            progress = self._check_move(hostname, progress, records.get(progress.moving))
            if progress.moving is not None:
                return progress
        if registration is None:
            waiting = "the worker is not registered (stopped?); pipelines it ran are restarted as lost" \
                if on_worker else None
            return progress.model_copy(update={"waiting": waiting})
        if registration.consuming is None:
            return progress.model_copy(update={
                "waiting": "the worker does not report its consumer (a release before drains): it cannot drain; "
                           "stop it instead (SIGTERM hands its pipelines over)"})
        if registration.consuming:
            return progress.model_copy(update={"waiting": "the worker has not stopped consuming its queues yet"})
        candidates = sorted((record for record in on_worker if record.movable and record.state in _MOVABLE_STATES
                             and record.desired_state is not DesiredState.TERMINATED
                             and not record.confirm_by),  # an INIT still under way is its manager's
                            key=lambda record: (record.created_at, record.pipeline_id))
        if not candidates:
            starting = sum(1 for record in on_worker if record.movable)
            waiting = f"{starting} pipeline(s) still starting on the worker" if starting else None
            return progress.model_copy(update={"waiting": waiting})
        return await self._move(hostname, progress, candidates[0], await ledger())

    def _check_move(self, hostname: str, progress: DrainProgress, record: PipelineRecord | None) -> DrainProgress:
        """``progress`` with the move under way finished when it is (``moving`` None), else with why it waits."""
        done = {"moving": None, "moving_from_epoch": 0}
        if record is None or record.state.is_final:  # retired meanwhile (terminated, ended, failed)
            return progress.model_copy(update=done)
        if record.epoch > progress.moving_from_epoch and record.state in _MOVABLE_STATES and record.owner:
            if owner_host(record.owner) == hostname:  # landed back here (taken before the consumer stopped)
                return progress.model_copy(update=done)
            took = time.time() - progress.moving_since
            logger.info("drain of worker %s: pipeline %s runs on %s (epoch %d) after %.1f s", hostname,
                        record.pipeline_id, owner_host(record.owner), record.epoch, took)
            return progress.model_copy(update={**done, "moved": progress.moved + 1, "last_move_s": round(took, 3)})
        if record.state is PipelineState.PENDING and record.restart_at > 0:
            waiting = f"pipeline {record.pipeline_id} waits for a worker with room ({record.last_error})"
        else:
            waiting = f"pipeline {record.pipeline_id} is starting on another worker ({record.state.value})"
        return progress.model_copy(update={"waiting": waiting})

    async def _move(self, hostname: str, progress: DrainProgress, record: PipelineRecord,
                    ledger: Ledger) -> DrainProgress:
        queue = queue_for(record.device)
        try:
            ledger.admit(queue)  # draining workers are refused: another worker must have room
        except OperationError as exc:
            return progress.model_copy(update={"waiting": f"no other worker has room for pipeline "
                                                          f"{record.pipeline_id}: {exc}"})
        try:
            spec = await self._store.spec(record.pipeline_id)
        except FormatError as exc:
            return progress.model_copy(update={"waiting": f"pipeline {record.pipeline_id} is left running: {exc}"})
        if spec is None:
            return progress.model_copy(update={"waiting": f"pipeline {record.pipeline_id} has no readable spec; "
                                                          "it is left running"})
        moving = {"moving": record.pipeline_id, "moving_from_epoch": record.epoch, "moving_since": time.time()}
        epoch = await self._drains.hand_over(record, hostname, progress.model_copy(update=moving))
        if epoch is None:
            return progress  # it changed meanwhile: the next sweep sees it as it is now
        # the move was saved with the hand-over, before the send: a crash resumes it
        logger.warning("drain of worker %s: pipeline %s handed over (epoch %d -> %d), sent to %s", hostname,
                       record.pipeline_id, record.epoch, epoch, queue)
        reply_to = keys.reply_list(str(uuid.uuid4()))  # nobody waits: the task's reply just expires
        await self._dispatcher.dispatch(record.pipeline_id, epoch, spec, reply_to, record.device)
        return progress.model_copy(update=moving)


def running_on(hostname: str, live: list[LiveRecord]) -> list[PipelineRecord]:
    """The pipelines a task of ``hostname`` holds (claimed, not over), by their records' owner."""
    return [item.record for item in live if not item.record.state.is_final
            and item.record.state is not PipelineState.PENDING and owner_host(item.record.owner) == hostname]


async def drain_worker(redis: Redis, store: PipelineStore, hostname: str) -> dict[str, Any]:
    """Starts draining a live worker (idempotent); its listing. ``NotFoundError`` for an unknown worker."""
    registrations = {registration.hostname for registration in await read_registrations(redis)}
    if hostname not in registrations:
        raise NotFoundError(f"worker {hostname} is not registered (not running, or its registration expired)",
                            f"Worker {hostname} does not exist.")
    if await Drains(redis).request(hostname):
        logger.warning("worker %s is draining: it takes no new pipeline, its pipelines move to other workers",
                       hostname)
    return await worker_view(redis, store, hostname)


async def undrain_worker(redis: Redis, store: PipelineStore, hostname: str) -> dict[str, Any]:
    """Stops draining a worker (idempotent for a registered one); its listing."""
    cancelled = await Drains(redis).cancel(hostname)
    if cancelled:
        logger.warning("worker %s is no longer draining", hostname)
    view = await worker_view(redis, store, hostname, required=not cancelled)
    return view


async def worker_view(redis: Redis, store: PipelineStore, hostname: str, required: bool = True) -> dict[str, Any]:
    """One worker's listing; ``NotFoundError`` when it is neither registered nor drained (and ``required``)."""
    views = {view["hostname"]: view for view in await list_workers(redis, store)}
    if hostname in views:
        return views[hostname]
    if required:
        raise NotFoundError(f"worker {hostname} is not registered (not running, or its registration expired)",
                            f"Worker {hostname} does not exist.")
    return _view(hostname, None, None, [])


async def list_workers(redis: Redis, store: PipelineStore) -> list[dict[str, Any]]:
    """Every registered or drained worker, by hostname, with its pipelines and its drain's progress."""
    registrations = {registration.hostname: registration for registration in await read_registrations(redis)}
    # the records before the drains: a hand-over takes a pipeline off the worker and names the move in
    # one step, so records read first show it still there, or drains read after show the move (else a
    # drain could read as done while its last pipeline is between two workers)
    live = await store.live_records()
    drains = await Drains(redis).read()
    return [_view(hostname, registrations.get(hostname), drains.get(hostname), running_on(hostname, live))
            for hostname in sorted(registrations.keys() | drains.keys())]


def _view(hostname: str, registration: WorkerRegistration | None, drain: DrainProgress | None,
          pipelines: list[PipelineRecord]) -> dict[str, Any]:
    view: dict[str, Any] = {"hostname": hostname, "registered": registration is not None,
                            "draining": drain is not None, "pipelines": len(pipelines)}
    if registration is not None:
        view.update(queues=list(registration.queues), device=registration.device,
                    concurrency=registration.concurrency, busy_slots=registration.busy_slots,
                    free_slots=registration.free_slots, format_version=registration.format_version,
                    consuming=registration.consuming)
    if drain is not None:
        movable_left = sum(1 for record in pipelines if record.movable)
        stopped = registration is None or registration.consuming is False
        view["drain"] = {
            "requested_at": drain.requested_at, "pipelines_left": len(pipelines), "movable_left": movable_left,
            "moving": drain.moving, "moved": drain.moved, "last_move_s": drain.last_move_s,
            "waiting": drain.waiting, "unmovable": [r.pipeline_id for r in pipelines if not r.movable],
            "done": stopped and movable_left == 0 and drain.moving is None,
        }
    return view


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
