"""Stopping running pipelines when the worker shuts down (SIGTERM), instead of waiting for them forever.

Celery's warm shutdown waits for running tasks, and a pipeline task runs for days. So:

- in the worker's main process, ``on_worker_shutting_down`` (Celery's ``worker_shutting_down``
  signal) sets ``SHUTDOWN`` (enough for the solo and threads pools, whose tasks run in this
  process) and sends SIGTERM to every pool child that is running a task (prefork);
- in a prefork child, the task installs ``install_task_handler`` for the duration of the
  pipeline: SIGTERM sets ``SHUTDOWN``, the supervisor sees it within a tick, terminates the engine
  and leaves the record non-final with ``last_error`` "worker shutting down" and no heartbeat, so
  the manager re-dispatches the pipeline to another worker.

Signal handlers only set an Event that nothing else ever locks (readers use ``is_set``), so a
handler can never deadlock the thread it interrupts.
"""

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from billiard.process import current_process

SHUTDOWN = threading.Event()  # this process's pipelines must stop: the worker is going away


def install_task_handler() -> Callable[[], None]:
    """In a pool child, SIGTERM sets ``SHUTDOWN`` until the returned function restores the old handler.

    Does nothing in the worker's main process (solo/threads pools: Celery owns SIGTERM there and
    ``on_worker_shutting_down`` sets ``SHUTDOWN``) or off the main thread.
    """
    if current_process().name == "MainProcess" or threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        SHUTDOWN.set()

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def on_worker_shutting_down(**kwargs: Any) -> None:
    """Celery ``worker_shutting_down`` receiver (runs inside the main process's signal handler)."""
    SHUTDOWN.set()
    for pid in _busy_children():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue


def _busy_children() -> set[int]:
    """Pids of the pool processes running a task (never this process: solo/threads pools)."""
    from celery.worker import state

    pids = {request.worker_pid for request in list(state.active_requests)}
    return {pid for pid in pids if isinstance(pid, int) and pid != os.getpid()}
