"""Runs a pipeline's fire-and-forget work (webhook and e-mail deliveries) off the frame path.

A few worker threads take jobs from a queue; at most ``max_pending`` jobs may be waiting or running at
once, so a slow or dead endpoint costs memory bounded by that count: ``submit`` answers False beyond it
and never blocks. A job that raises is logged (redacted) and counted; it never stops a worker thread.
Threads are daemons started when jobs wait and ending after ``idle_s`` without work, so an idle (or
never closed) runner holds no thread, and a job stuck past ``close``'s timeout never holds the process
open. Jobs are queued under the runner's lock, so a thread that finds the queue empty under that lock
may end: a later submission starts another.
"""

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.core.redaction import redact_text
from services.infra.os_threads import name_os_thread

log = logging.getLogger(__name__)

Job = Callable[[], None]


@dataclass(frozen=True, slots=True)
class BackgroundCounts:
    """What a runner has done so far (for metrics and tests)."""

    submitted: int
    refused: int
    completed: int
    failed: int
    dropped: int  # still queued when ``close`` gave up waiting
    pending: int


class BackgroundRunner:
    """A small thread pool with a bounded number of pending jobs (implements the blocks' ``Background``).

    ``secrets``: a live sequence of strings (the workflow's ``BlockEnvironment.secrets``) removed from
    anything this runner logs.
    """

    def __init__(self, max_pending: int, workers: int = 2, secrets: Sequence[str] = (),
                 name: str = "workflow-background", idle_s: float = 30.0) -> None:
        if max_pending < 1 or workers < 1:
            raise ValueError(f"max_pending and workers must be >= 1, got {max_pending} and {workers}")
        self._max_pending = max_pending
        self._workers = workers
        self._secrets = secrets
        self._name = name
        self._idle_s = idle_s
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._threads: set[threading.Thread] = set()
        self._started = 0
        self._closed = False
        self._pending = self._submitted = self._refused = self._completed = self._failed = self._dropped = 0

    def submit(self, work: Job) -> bool:
        """Queue ``work``; False (and nothing queued) when closed or ``max_pending`` jobs are pending."""
        with self._lock:
            if self._closed or self._pending >= self._max_pending:
                self._refused += 1
                return False
            self._pending += 1
            self._submitted += 1
            self._queue.put(work)
            if len(self._threads) < min(self._workers, self._pending):  # every live thread is busy
                self._start_thread()
        return True

    def close(self, timeout: float) -> bool:
        """Refuse new jobs, wait up to ``timeout`` s for pending ones; True when all of them finished.

        Jobs still queued at the deadline are dropped (counted); a job already running is left to end
        on its own (its own timeout bounds it) in its daemon thread.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            while self._pending and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            drained = self._pending == 0
            threads = list(self._threads)
        self._drop_queued()
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return drained

    def counts(self) -> BackgroundCounts:
        with self._lock:
            return BackgroundCounts(self._submitted, self._refused, self._completed, self._failed,
                                    self._dropped, self._pending)

    def __enter__(self) -> "BackgroundRunner":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(timeout=5.0)

    def _start_thread(self) -> None:
        self._started += 1
        thread = threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        name_os_thread()
        while (job := self._next_job()) is not None:
            failed = not self._run(job)
            with self._lock:
                self._pending -= 1
                self._completed += 1
                self._failed += failed
                self._changed.notify_all()

    def _next_job(self) -> Job | None:
        """The next job; None to end this thread (closing, or idle for ``idle_s``)."""
        while True:
            try:
                job = self._queue.get(timeout=self._idle_s)
            except queue.Empty:
                if self._retire(only_if_idle=True):
                    return None
                continue
            if job is None:
                self._retire(only_if_idle=False)
            return job

    def _retire(self, only_if_idle: bool) -> bool:
        """Takes this thread off the live ones (under the lock submissions queue under)."""
        with self._lock:
            if only_if_idle and not self._queue.empty():
                return False
            self._threads.discard(threading.current_thread())
            return True

    def _run(self, job: Job) -> bool:
        try:
            job()
        except Exception as error:
            text = "".join(traceback.format_exception(error))
            log.warning("background job failed: %s", redact_text(text, tuple(self._secrets)))
            return False
        return True

    def _drop_queued(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is None:  # cannot happen before close queues its own sentinels; keep it for them
                self._queue.put(None)
                return
            with self._lock:
                self._pending -= 1
                self._dropped += 1
