"""The worker's side of a drain: it stops consuming its Celery queues while it is drained.

Theory of operation
-------------------
The registration beat (``services.worker.registration``, once a second) learns from the same
script that publishes the registration whether the worker's field exists in ``keys.worker_drains``
(``services.infra.registry.publish``) and hands the answer to :meth:`ConsumerSwitch.apply`:

- drained and still consuming: each of the worker's queues is cancelled on Celery's consumer
  (``Consumer.cancel_task_queue``, what Celery's ``cancel_consumer`` remote control runs), so no
  task reaches the worker any more, neither an INIT nor a re-dispatch; the running pipelines go on;
- not drained and not consuming: each queue is added back (``Consumer.add_task_queue``).

Both run on the consumer's own event loop: :meth:`Consumer.call_soon` hands them over from the
registration thread (kombu's hub takes callbacks from other threads under a lock), as Celery's
remote control does. A request is repeated only when the consumer has not acted on it after
``RETRY_AFTER`` seconds. :meth:`ConsumerSwitch.consuming` reads what the consumer does now (any of
the queues consumed); the registration publishes it as ``consuming`` with ``draining``, and the
manager moves the pipelines only once the worker says it stopped consuming. The drain flag lives in
Redis, so a worker restarted while drained starts without consuming (at its first beat). Without a
consumer (not started, or reconnecting) nothing is done and ``consuming`` is False.
"""

import logging
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

RETRY_AFTER = 5.0  # seconds before an unanswered cancel or add is requested again


class ConsumerSwitch:
    """Stops and restarts the consumption of ``queues`` on a running Celery consumer (its ``worker_ready`` sender)."""

    def __init__(self, consumer: Any, queues: Sequence[str]) -> None:
        self._consumer = consumer
        self._queues = tuple(queues)
        self._requested: tuple[bool, float] | None = None  # (consume wanted, monotonic time asked)

    def consuming(self) -> bool:
        """Whether the consumer takes tasks from any of the queues right now."""
        task_consumer = getattr(self._consumer, "task_consumer", None)
        if task_consumer is None:
            return False
        try:
            return any(task_consumer.consuming_from(queue) for queue in self._queues)
        except Exception:  # the consumer is being rebuilt (a broker reconnection)
            return False

    def apply(self, drained: bool) -> None:
        """Makes the consumer consume the queues exactly when the worker is not ``drained``."""
        if getattr(self._consumer, "task_consumer", None) is None:
            return  # not started yet, or reconnecting: the next beat looks again
        want = not drained
        if self.consuming() == want:
            self._requested = None
            return
        if self._requested is not None and self._requested[0] == want \
                and time.monotonic() - self._requested[1] < RETRY_AFTER:
            return  # asked already: the consumer's loop has not run it yet
        self._requested = (want, time.monotonic())
        for queue in self._queues:
            if want:
                self._consumer.call_soon(self._consumer.add_task_queue, queue)
            else:
                self._consumer.call_soon(self._consumer.cancel_task_queue, queue)
        log.warning("worker %s: %s", getattr(self._consumer, "hostname", "?"),
                    "drained: no longer consuming " + ", ".join(self._queues) if drained
                    else "no longer drained: consuming " + ", ".join(self._queues) + " again")
