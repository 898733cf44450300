"""``batch_scheduling``: the calling thread and the threads it starts run under SCHED_BATCH for the block,
the policy comes back after it (also when the block raises), and a policy chosen on purpose is kept.

Each case runs in a thread of its own, so the test process's main thread never changes policy."""

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from services.worker.scheduling import batch_scheduling


def in_thread(body: Callable[[], Any]) -> Any:
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(body())
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    if errors:
        raise errors[0]
    return result[0]


def policy_of_a_thread_started_now() -> int:
    return int(in_thread(lambda: os.sched_getscheduler(0)))


def test_the_block_and_the_threads_it_starts_run_under_sched_batch_and_the_policy_comes_back() -> None:
    def body() -> tuple[bool, int, int, int]:
        with batch_scheduling() as applied:
            inside, started = os.sched_getscheduler(0), policy_of_a_thread_started_now()
        return applied, inside, started, os.sched_getscheduler(0)

    assert in_thread(body) == (True, os.SCHED_BATCH, os.SCHED_BATCH, os.SCHED_OTHER)


def test_the_policy_comes_back_when_the_block_raises() -> None:
    def body() -> int:
        with pytest.raises(RuntimeError), batch_scheduling():
            raise RuntimeError("the pipeline failed")
        return os.sched_getscheduler(0)

    assert in_thread(body) == os.SCHED_OTHER


def test_disabled_it_changes_nothing() -> None:
    def body() -> tuple[bool, int, int]:
        with batch_scheduling(enabled=False) as applied:
            return applied, os.sched_getscheduler(0), policy_of_a_thread_started_now()

    assert in_thread(body) == (False, os.SCHED_OTHER, os.SCHED_OTHER)


def test_a_policy_chosen_on_purpose_is_kept() -> None:
    def body() -> tuple[bool, int, int]:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread ends with the test
        with batch_scheduling() as applied:
            inside = os.sched_getscheduler(0)
        return applied, inside, os.sched_getscheduler(0)

    assert in_thread(body) == (False, os.SCHED_IDLE, os.SCHED_IDLE)
