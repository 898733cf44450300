"""The worker's registration: a key with a short TTL that tells the manager a queue has a live worker, and its room.

A daemon thread in the worker's main process refreshes ``keys.worker_registration(hostname)``
every second (TTL 5 s), together with the worker's member in the registry of live workers
(``services.infra.registry``: one script writes both); both are removed on a clean shutdown, and
after a crash the key expires and the readers prune the member. Redis errors are logged once per
outage and retried on the next beat.

Besides the queues, the key carries what the manager's admission control needs
(``services.manager.admission``): the slots and how many are busy, the host's RAM, the RAM the
running pipelines use (PSS of the pool processes running one, their own children included; each
process tree read again every ``MEMORY_MAX_AGE`` seconds, its busy slots on every beat), the
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
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import psutil
import redis

from services.core import formats, keys
from services.core.registration import WorkerRegistration
from services.infra import registry
from services.infra.os_threads import name_os_thread
from services.worker.drain import ConsumerSwitch

log = logging.getLogger(__name__)

PERIOD = 1.0  # seconds
MEMORY_MAX_AGE = 5.0  # seconds a process tree's measured memory is published before it is read again
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


def measure(pipeline_pids: Collection[int], worker: psutil.Process, shared_pids: Collection[int] = (),
            sizes: "SizeCache | None" = None) -> PipelineUsage:
    """The usage of the pipelines running in ``pipeline_pids`` that are still ``worker``'s processes.

    A pid counts only while it is a live child of the worker (or the worker itself: the solo pool
    runs its one task in the main process), so a pool process that died is never a busy slot.
    ``shared_pids`` (the inference service) are measured apart, as ``shared_mb``. The worker's process
    tree is read once per call, and only it (``_children_by_parent``): psutil's ``children()`` reads
    the host's whole process table on every call, and asking it for each pipeline's descendants, plus
    reading every PSS on every beat, cost the registration thread 9.3 % of a core with 16 live
    pipelines on 2 cores (2.2 % with both fixed), growing with pipelines times the host's processes.
    ``sizes`` keeps each process tree's memory for a few seconds (reading PSS walks a process's page
    tables: 10 ms for a pipeline process on that busy host); which pids are busy is read afresh on
    every call.
    """
    children = _children_by_parent(worker.pid)
    direct = {worker.pid, *children.get(worker.pid, ())}
    cache = sizes if sizes is not None else SizeCache(0.0)
    cache.forget_all_but(direct)

    def size(pid: int) -> int | None:
        return cache.get(pid, lambda pid: _tree_memory(pid, children)) if pid in direct else None

    busy = [bytes_ for pid in set(pipeline_pids) if (bytes_ := size(pid)) is not None]
    shared = sum(bytes_ for pid in set(shared_pids) if (bytes_ := size(pid)) is not None)
    return PipelineUsage(busy=len(busy), ram_mb=sum(busy) // MIB, largest_mb=max(busy, default=0) // MIB,
                         shared_mb=shared // MIB)


class SizeCache:
    """The memory of each measured process tree, read again once it is ``max_age`` seconds old."""

    def __init__(self, max_age: float) -> None:
        self._max_age = max_age
        self._sizes: dict[int, tuple[float, int]] = {}  # pid -> (time.monotonic() of the reading, bytes)

    def get(self, pid: int, read: Callable[[int], int | None]) -> int | None:
        now = time.monotonic()
        cached = self._sizes.get(pid)
        if cached is not None and now - cached[0] < self._max_age:
            return cached[1]
        size = read(pid)
        if size is None:
            self._sizes.pop(pid, None)
        else:
            self._sizes[pid] = (now, size)
        return size

    def forget_all_but(self, pids: Collection[int]) -> None:
        """Drops the pids that are gone (so a reused pid is measured afresh)."""
        for pid in [pid for pid in self._sizes if pid not in pids]:
            del self._sizes[pid]


def _children_by_parent(root: int) -> dict[int, list[int]]:
    """The live children (zombies left out) of ``root`` and of each of its descendants.

    Read along the tree from ``/proc/<pid>/task/<tid>/children``: a few small files per process of
    the worker, where a pass over the whole process table grows with everything the host runs (2 ms
    a beat with 87 processes on the 2-core test host). A kernel without those files gets that pass.
    """
    if not os.path.exists(f"/proc/{root}/task/{root}/children"):
        return _scan_process_table()
    children: dict[int, list[int]] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        live = [child for child in _proc_children(pid) if child not in children and not _is_zombie(child)]
        if live:
            children[pid] = live
            pending.extend(live)
    return children


def _proc_children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` ([] once it has exited)."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as listing:
                found.extend(int(child) for child in listing.read().split())
        except (OSError, ValueError):  # the thread (or the process) ended meanwhile
            continue
    return found


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` exited and waits to be reaped (or is gone already)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _scan_process_table() -> dict[int, list[int]]:
    """Every live process's children (zombies left out), from one pass over the process table."""
    children: dict[int, list[int]] = {}
    for process in psutil.process_iter(["ppid", "status"]):
        ppid = process.info["ppid"]
        if ppid is not None and process.info["status"] != psutil.STATUS_ZOMBIE:
            children.setdefault(int(ppid), []).append(process.pid)
    return children


def _descendants(pid: int, children: dict[int, list[int]]) -> set[int]:
    found: set[int] = set()
    pending = list(children.get(pid, ()))
    while pending:
        child = pending.pop()
        if child not in found and child != pid:
            found.add(child)
            pending.extend(children.get(child, ()))
    return found


def _tree_memory(pid: int, children: dict[int, list[int]]) -> int | None:
    """Memory in bytes of ``pid`` and its descendants (PSS, else RSS); None when it has exited."""
    try:
        total = _memory(psutil.Process(pid))
    except psutil.Error:
        return None
    for child in _descendants(pid, children):
        try:
            total += _memory(psutil.Process(child))
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
        self._sizes = SizeCache(MEMORY_MAX_AGE)
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
        usage = measure(self._pipeline_pids(), self._process, self._shared_pids(), self._sizes)
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
        name_os_thread()
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
