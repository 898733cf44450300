"""The worker's registration: a key with a short TTL that tells the manager a queue has a live worker, and its room.

A daemon thread in the worker's main process refreshes ``keys.worker_registration(hostname)``
every second (TTL 5 s), together with the worker's member in the registry of live workers
(``services.infra.registry``: one script writes both); both are removed on a clean shutdown, and
after a crash the key expires and the readers prune the member. Redis errors are logged once per
outage and retried on the next beat.

Besides the queues, the key carries what the manager's admission control needs
(``services.manager.admission``): the slots and how many are busy, the host's RAM, the RAM the
running pipelines use (PSS of the pool processes running one, their own children included), the
largest single pipeline seen since the worker started, and the worker's optional RAM budget. PSS,
not RSS: pipeline processes share the engine's pages with the worker they were forked from (and
each other), and RSS would count those pages again in every one of them. The worker's inference
service (the models every pipeline shares) is published on its own, ``inference_service_ram_mb``:
it is the worker's fixed cost, not a pipeline's. A
busy slot is a pool process that is running a pipeline task, so a slot counts as free again as
soon as its process is gone, whatever Celery's bookkeeping says.

The key also carries its ``format_version`` (``services.core.formats``) and the drain fields: the
same script that publishes it answers whether the worker is drained, and the beat passes that on to
the consumer switch (``services.worker.drain``), which stops or resumes the consumption of the
worker's queues; the next beat publishes ``draining`` (as last seen) and ``consuming`` (as the
consumer does now).
"""

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

import psutil
import redis

from services.core import formats, keys
from services.core.registration import WorkerRegistration
from services.infra import registry
from services.worker.drain import ConsumerSwitch

log = logging.getLogger(__name__)

PERIOD = 1.0  # seconds
TTL = 5  # seconds
MIB = 2**20


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    hostname: str
    queues: tuple[str, ...]
    concurrency: int
    device: str
    max_ram_mb: int | None = None  # RAM budget of all its pipelines together (WORKER_MAX_RAM_MB)


@dataclass(frozen=True, slots=True)
class PipelineUsage:
    """What the processes running pipelines use at one instant."""

    busy: int  # pool processes running a pipeline
    ram_mb: int  # their PSS together
    largest_mb: int  # the PSS of the largest one (0 when none runs)
    shared_mb: int = 0  # the PSS of the processes serving them all (the inference service)


def measure(pipeline_pids: Collection[int], worker: psutil.Process, shared_pids: Collection[int] = ()) -> PipelineUsage:
    """The usage of the pipelines running in ``pipeline_pids`` that are still ``worker``'s processes.

    A pid counts only while it is a live child of the worker (or the worker itself: the solo pool
    runs its one task in the main process), so a pool process that died is never a busy slot.
    ``shared_pids`` (the inference service) are measured apart, as ``shared_mb``.
    """
    processes = {child.pid: child for child in _children(worker)}
    processes[worker.pid] = worker
    sizes = [size for pid in set(pipeline_pids) if pid in processes
             if (size := _memory_with_children(processes[pid])) is not None]
    shared = sum(size for pid in set(shared_pids) if pid in processes
                 if (size := _memory_with_children(processes[pid])) is not None)
    return PipelineUsage(busy=len(sizes), ram_mb=sum(sizes) // MIB, largest_mb=max(sizes, default=0) // MIB,
                         shared_mb=shared // MIB)


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return list(process.children())
    except psutil.Error:
        return []


def _memory_with_children(process: psutil.Process) -> int | None:
    """Memory in bytes of ``process`` and its descendants (PSS, else RSS); None when it has exited."""
    try:
        total = _memory(process)
        descendants = process.children(recursive=True)
    except psutil.Error:
        return None
    for child in descendants:
        try:
            total += _memory(child)
        except psutil.Error:  # exited meanwhile
            continue
    return total


def _memory(process: psutil.Process) -> int:
    try:
        return int(process.memory_full_info().pss)
    except (psutil.AccessDenied, AttributeError):  # no /proc/<pid>/smaps here: RSS, an overestimate
        return int(process.memory_info().rss)


class Registration:
    def __init__(
        self,
        client: redis.Redis,
        identity: WorkerIdentity,
        pipeline_pids: Callable[[], Collection[int]] = frozenset,
        shared_pids: Callable[[], Collection[int]] = frozenset,
        switch: ConsumerSwitch | None = None,
    ) -> None:
        """``pipeline_pids`` names the processes running a pipeline task (from Celery's state),
        ``shared_pids`` the ones serving them all (the inference service); ``switch`` stops and
        resumes the consumption of the worker's queues as its drain flag says (None: not drainable)."""
        self._switch = switch
        self._draining = False  # the drain flag as the last beat read it
        self._client = client
        self._identity = identity
        self._pipeline_pids = pipeline_pids
        self._shared_pids = shared_pids
        self._process = psutil.Process()
        self._largest_mb = 0  # the largest pipeline seen so far: the need of the next one
        self._key = keys.worker_registration(identity.hostname)
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="registration", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stops refreshing and deletes the key and the registry member (best effort: both expire anyway)."""
        self._stop.set()
        self._thread.join(timeout)
        try:
            registry.withdraw(self._client, self._identity.hostname)
        except redis.RedisError as exc:
            log.warning("could not delete worker registration %s: %s", self._key, exc)

    def payload(self) -> WorkerRegistration:
        """The registration as of now (measures the pipelines, and remembers the largest one)."""
        memory = psutil.virtual_memory()
        usage = measure(self._pipeline_pids(), self._process, self._shared_pids())
        # Kept for the worker's life, not only while a pipeline runs: like the reference, the next
        # pipeline is assumed to need as much as the largest one observed, even on an idle worker.
        self._largest_mb = max(self._largest_mb, usage.largest_mb)
        return WorkerRegistration(
            hostname=self._identity.hostname,
            queues=tuple(self._identity.queues),
            concurrency=self._identity.concurrency,
            busy_slots=usage.busy,
            free_slots=max(0, self._identity.concurrency - usage.busy),
            device=self._identity.device,
            pid=self._process.pid,
            ram_total_mb=memory.total // MIB,
            ram_available_mb=memory.available // MIB,
            pipelines_ram_mb=usage.ram_mb,
            largest_pipeline_ram_mb=self._largest_mb or None,  # None: no pipeline ran here yet
            inference_service_ram_mb=usage.shared_mb,
            max_ram_mb=self._identity.max_ram_mb,
            format_version=str(formats.REGISTRATION),
            draining=self._draining,
            consuming=self._switch.consuming() if self._switch is not None else None,
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._beat()
            self._stop.wait(PERIOD)

    def _beat(self) -> None:
        try:
            payload = self.payload().model_dump_json()
        except Exception:  # a measuring bug must not end the thread: the worker would look dead
            log.exception("worker registration %s: cannot measure the worker", self._key)
            return
        try:
            drained = registry.publish(self._client, self._identity.hostname, payload, TTL)
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("worker registration %s not refreshed: %s", self._key, exc)
            self._failing = True
            return
        if self._failing:
            log.info("worker registration %s refreshed again", self._key)
        self._failing = False
        self._draining = drained
        if self._switch is not None:
            try:
                self._switch.apply(drained)
            except Exception:  # the beat must go on: the worker would look dead
                log.exception("worker %s: cannot switch its queue consumer (drained: %s)",
                              self._identity.hostname, drained)
