"""Admission control: whether a device queue has a live worker with room for one more pipeline.

Every worker publishes its room each second (``services.worker.registration``): free slots, the
host's available RAM, the RAM its pipelines use, the largest pipeline it has run and its optional
RAM budget. INIT reads all registrations once (the registry of live workers, then one MGET:
O(workers), ``services.infra.registry``) and :func:`admit` decides, as a pure function, before
anything is written, so a refused INIT leaves nothing behind.
A worker has room when it has a free slot, when its budget (if any) holds what its pipelines use
plus one more pipeline (as large as the largest it has run, like the reference's
``STREAM_MANAGER_MAX_RAM_MB`` check, or the configured estimate before it ran any), and when its
host has at least the configured floor of RAM available. A refusal names, for each worker of the
queue, every resource it lacks.

The decision is advisory, not a reservation: registrations are up to a second old and a slot is
only seen busy once its pool process has taken the task, so two INITs at the same instant can both
be admitted for the last slot. Celery then holds the second task in the queue (no prefetch) until
a slot frees; the manager stops waiting after ``init_timeout`` and removes the pipeline, and the
task, when a slot finally takes it, finds no record to claim and writes nothing. The manager
cannot choose the worker either: Celery hands the task to whichever worker of the queue asks
first, so a worker with a free slot but no RAM left may take it when another worker had room.
Fields a registration lacks (an older worker) are not checked.

A **draining** worker (``services.manager.drain``) has no room, whatever its slots: its drain flag
is read with the registrations (one HKEYS more), so admission refuses it from the moment the drain
is requested, before the worker's own registration says so. A registration of a newer format major
than this release reads (``services.core.formats``) is skipped with a warning, like an unreadable one.

The reaper admits several re-dispatches against one read of the registrations (a sweep), so it
draws on a :class:`Ledger`: each admission books one slot and one pipeline's RAM on the worker that
admitted it, and so does every pipeline already dispatched but not yet claimed (its slot is not
busy in any registration yet). One snapshot therefore never admits more pipelines than its workers
have room for, in one sweep or the next ones while the registrations lag.
"""

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError
from redis.asyncio import Redis

from services.core import keys
from services.core.errors import OperationError
from services.core.formats import FormatError
from services.core.registration import WorkerRegistration, check_format
from services.infra import registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    pipeline_ram_estimate_mb: int  # the need of a pipeline on a worker that has not run one yet
    min_free_ram_mb: int  # the host RAM that must stay available


async def read_registrations(redis: Redis) -> list[WorkerRegistration]:
    """Every live worker registration, by hostname, ``draining`` wherever a drain is requested;
    unreadable ones (and those of a newer format major) are skipped."""
    registrations = []
    draining = {_text(name) for name in await redis.hkeys(keys.worker_drains())}
    for name, raw in await registry.live_registrations(redis):
        try:
            registration = WorkerRegistration.model_validate_json(raw)
            check_format(registration)
        except ValidationError:
            logger.warning("ignoring unreadable worker registration %r", name)
            continue
        except FormatError as exc:
            if name not in _NEWER_FORMATS:
                logger.warning("ignoring worker %s: %s", name, exc)
            _NEWER_FORMATS.add(name)
            continue
        if name in draining and not registration.draining:
            registration = registration.model_copy(update={"draining": True})
        registrations.append(registration)
    return registrations


_NEWER_FORMATS: set[str] = set()  # workers whose newer-format registration was already logged


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def admit(queue: str, registrations: Iterable[WorkerRegistration], policy: AdmissionPolicy) -> WorkerRegistration:
    """The first live worker of ``queue`` (by hostname) with room for one more pipeline; else raises
    ``OperationError`` naming the queue and, for each of its workers, what it lacks."""
    serving = sorted((r for r in registrations if queue in r.queues), key=lambda r: r.hostname)
    if not serving:
        raise OperationError(f"no worker serves queue {queue}", "No worker is available for the requested device.")
    refusals = []
    for registration in serving:
        lacking = shortfalls(registration, policy)
        if not lacking:
            return registration
        refusals.append(f"{registration.hostname}: {' and '.join(lacking)}")
    raise OperationError(f"no capacity on {queue}: " + "; ".join(refusals),
                         "No worker has room for another pipeline on the requested device.")


def booked(worker: WorkerRegistration, policy: AdmissionPolicy) -> WorkerRegistration:
    """``worker`` as it is once it runs one more pipeline: a slot fewer, one pipeline's RAM more."""
    need, _ = _pipeline_need(worker, policy)
    changes: dict[str, int] = {"pipelines_ram_mb": worker.pipelines_ram_mb + need}
    if worker.free_slots is not None:
        changes["free_slots"] = max(0, worker.free_slots - 1)
    if worker.ram_available_mb is not None:
        changes["ram_available_mb"] = max(0, worker.ram_available_mb - need)
    return worker.model_copy(update=changes)


class Ledger:
    """One read of the registrations that admissions draw on, each booking what it admitted."""

    def __init__(self, registrations: Iterable[WorkerRegistration], policy: AdmissionPolicy) -> None:
        self._workers = {registration.hostname: registration for registration in registrations}
        self._policy = policy

    def admit(self, queue: str) -> None:
        """Books one pipeline on a worker of ``queue`` with room; else raises like :func:`admit`."""
        chosen = admit(queue, self._workers.values(), self._policy)
        self._workers[chosen.hostname] = booked(chosen, self._policy)

    def book(self, queue: str) -> None:
        """Books a pipeline already sent to ``queue`` (dispatched, not yet claimed) where there is room."""
        with contextlib.suppress(OperationError):  # no room left: it waits in the queue, nothing to book
            self.admit(queue)


def shortfalls(worker: WorkerRegistration, policy: AdmissionPolicy) -> list[str]:
    """What ``worker`` lacks to take one more pipeline, one phrase per resource (empty: it has room)."""
    lacking = []
    if worker.draining:
        lacking.append("draining")
    if worker.free_slots == 0:
        busy = f" ({worker.concurrency} of {worker.concurrency} busy)" if worker.concurrency is not None else ""
        lacking.append(f"no free slot{busy}")
    if worker.max_ram_mb is not None:
        need, source = _pipeline_need(worker, policy)
        if worker.pipelines_ram_mb + need > worker.max_ram_mb:
            lacking.append(f"RAM budget {worker.max_ram_mb} MB, {worker.pipelines_ram_mb} MB used + {need} MB "
                           f"per pipeline ({source})")
    if worker.ram_available_mb is not None and worker.ram_available_mb < policy.min_free_ram_mb:
        lacking.append(f"{worker.ram_available_mb} MB RAM available on its host, "
                       f"below the {policy.min_free_ram_mb} MB floor")
    return lacking


def _pipeline_need(worker: WorkerRegistration, policy: AdmissionPolicy) -> tuple[int, str]:
    """The RAM one more pipeline is assumed to take on ``worker``, and where that figure comes from."""
    if worker.largest_pipeline_ram_mb:
        return worker.largest_pipeline_ram_mb, "largest observed"
    return policy.pipeline_ram_estimate_mb, "estimate"
