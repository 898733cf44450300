"""Runs a sink on its own thread behind a bounded drop-oldest queue.

``submit`` never blocks. The thread takes everything queued (up to ``batch_size``) and hands it to
the sink in one ``write``; when the sink raises, those rounds count as dropped, the failure is
reported once per outage, and the next successful write carries the dropped count.

An outage the sink declares passing (:class:`~services.worker.engine.sinks.SinkUnavailable`: Redis
unreachable, restarting or failing over) does not drop the batch: the thread keeps it and writes it
again, after 0.1 s, then twice as long each time up to 1 s, until it succeeds (the sink makes that
safe: see ``redis_stream``). Meanwhile ``submit`` keeps filling the queue, still bounded by
``capacity`` and still dropping its oldest round (``dropped_queue_full``) when full, so at most
``capacity + batch_size`` rounds wait. Closing during an outage gives up: the batch and whatever is
still queued count as ``dropped_sink_error``. The failure is reported once per outage either way.
"""

import logging
import threading
from collections import deque
from dataclasses import dataclass

from services.infra.os_threads import name_os_thread
from services.worker.engine import events
from services.worker.engine.events import StatusHandler, StatusUpdate
from services.worker.engine.results import RoundResult
from services.worker.engine.sinks import Recovery, ResultSink, SinkUnavailable

log = logging.getLogger(__name__)

RETRY_INITIAL = 0.1  # seconds before the first retry of a batch during an outage
RETRY_MAX = 1.0


@dataclass(frozen=True, slots=True)
class SinkStats:
    name: str
    delivered: int
    dropped_queue_full: int
    dropped_sink_error: int
    queued: int
    healthy: bool
    retrying: int = 0  # rounds of the batch being retried (not in ``queued``)
    retries: int = 0  # failed writes retried
    replayed: int = 0  # rounds the sink's server had lost and the sink wrote again (original ids)
    lost: int = 0  # rounds the server acknowledged, then lost for good (see ``redis_stream``)


class BufferedSink:
    def __init__(self, sink: ResultSink, on_update: StatusHandler, capacity: int = 256, batch_size: int = 64):
        self._sink = sink
        self._on_update = on_update
        self._queue: deque[RoundResult] = deque()
        self._capacity = capacity
        self._batch_size = batch_size
        self._cond = threading.Condition()
        self._closing = False
        self._delivered = 0
        self._dropped_full = 0
        self._dropped_error = 0
        self._unreported_drops = 0
        self._healthy = True
        self._retrying = 0
        self._retries = 0
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self._sink.name

    def submit(self, result: RoundResult) -> None:
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self._dropped_full += 1
                self._unreported_drops += 1
            self._queue.append(result)
            self._cond.notify()

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting, deliver what is queued within ``timeout``, then close the sink."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("sink %s did not drain within %.1fs; %d results lost", self.name, timeout, len(self._queue))
        self._sink.close()

    def stats(self) -> SinkStats:
        recovery = getattr(self._sink, "recovery", None)
        recovered: Recovery = recovery() if callable(recovery) else Recovery()
        with self._cond:
            return SinkStats(self.name, self._delivered, self._dropped_full, self._dropped_error,
                             len(self._queue), self._healthy, self._retrying, self._retries,
                             recovered.replayed, recovered.lost)

    def _next_batch(self) -> tuple[list[RoundResult], int] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            dropped, self._unreported_drops = self._unreported_drops, 0
            return batch, dropped

    def _run(self) -> None:
        name_os_thread()
        while (item := self._next_batch()) is not None:
            batch, dropped = item
            delay = RETRY_INITIAL
            while True:
                try:
                    self._sink.write(batch, dropped)
                except SinkUnavailable as exc:  # a passing outage: keep the batch, write it again
                    if self._wait_to_retry(batch, exc, delay):
                        delay = min(2 * delay, RETRY_MAX)
                        continue
                    self._record_failure(batch, dropped, exc)
                except Exception as exc:  # any other sink failure: count, report once per outage, go on
                    self._record_failure(batch, dropped, exc)
                else:
                    self._record_success(len(batch))
                break

    def _wait_to_retry(self, batch: list[RoundResult], exc: Exception, delay: float) -> bool:
        """Waits ``delay`` before the batch's next attempt; False when the sink is closing (give up)."""
        with self._cond:
            if self._closing:
                self._retrying = 0
                return False
            self._retrying = len(batch)
            self._retries += 1
            first_failure = self._healthy
            self._healthy = False
        if first_failure:
            log.warning("sink %s unavailable, retrying (up to %d results wait): %s", self.name,
                        self._capacity + self._batch_size, exc)
            self._report(exc)
        with self._cond:
            if self._cond.wait_for(lambda: self._closing, timeout=delay):
                self._retrying = 0
                return False
        return True

    def _record_success(self, count: int) -> None:
        with self._cond:
            self._retrying = 0
            self._delivered += count
            recovered = not self._healthy
            self._healthy = True
        if recovered:
            log.info("sink %s delivers again", self.name)

    def _record_failure(self, batch: list[RoundResult], dropped: int, exc: Exception) -> None:
        with self._cond:
            self._dropped_error += len(batch)
            self._unreported_drops += dropped + len(batch)
            first_failure = self._healthy
            self._healthy = False
        if first_failure:
            log.warning("sink %s failed, results are being dropped: %s", self.name, exc)
            self._report(exc)

    def _report(self, exc: Exception) -> None:
        self._on_update(StatusUpdate(
            event_type=events.INFERENCE_RESULTS_DISPATCHING_ERROR,
            context=events.CONTEXT_PIPELINE,
            severity=logging.ERROR,
            payload={"sink": self.name, "error_type": type(exc).__name__, "error_message": str(exc)},
        ))
