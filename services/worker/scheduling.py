"""A pipeline's threads yield the CPU to the inference service: Linux's ``SCHED_BATCH`` policy.

A worker's pipelines decode, letterbox, post-process and write results on many short-lived wake-ups
(16 live cameras: about 3,600 a second), while the inference service's runners are long CPU-bound
``session.run`` calls. Under the default policy every wake-up may preempt a runner at once, and each
preemption costs the run its caches. ``SCHED_BATCH`` keeps a thread's fair share (same weight as
nice 0) but drops that wake-up preemption: a pipeline thread that wakes waits for the running
thread's slice to end, a few milliseconds at most. ``make bench`` compares both policies with 16 live
streams and with file pipelines ("Pipelines under SCHED_BATCH" in docs/benchmarks.md).

The policy is per thread and inherited by the threads a thread starts, so the task's thread sets it
before it builds the pipeline, and every thread of the pipeline has it. The inference service is a
process of its own (started by the worker's main process) and keeps the default policy. A thread
that already has another policy (a worker started under ``chrt``) keeps it; platforms without the
call run unchanged.
"""

import contextlib
import logging
import os
from collections.abc import Iterator

log = logging.getLogger(__name__)

_BATCH = getattr(os, "SCHED_BATCH", None)
_OTHER = getattr(os, "SCHED_OTHER", None)


@contextlib.contextmanager
def batch_scheduling(enabled: bool = True) -> Iterator[bool]:
    """Runs the block with the calling thread (and every thread it starts) under ``SCHED_BATCH``, and
    restores the calling thread's policy after it; yields whether the policy was applied."""
    if not enabled or _BATCH is None or _OTHER is None or not hasattr(os, "sched_setscheduler"):
        yield False
        return
    try:
        if os.sched_getscheduler(0) != _OTHER:
            yield False  # a policy someone chose on purpose (real-time, idle, already batch): left alone
            return
        os.sched_setscheduler(0, _BATCH, os.sched_param(0))
    except OSError as exc:  # a seccomp profile or a kernel that refuses it: the default policy is fine
        log.debug("SCHED_BATCH not applied: %s", exc)
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, _OTHER, os.sched_param(0))
