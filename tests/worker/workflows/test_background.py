"""BackgroundRunner: jobs run on its own threads, the pending count is bounded, failures are logged
redacted and counted, and close waits at most its timeout."""

import logging
import threading
import time
from collections.abc import Callable

import pytest

from services.worker.workflows.background import BackgroundCounts, BackgroundRunner


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_jobs_run_on_the_runners_threads() -> None:
    seen: list[str] = []
    with BackgroundRunner(max_pending=4, name="sink-test") as runner:
        assert runner.submit(lambda: seen.append(threading.current_thread().name))
        wait_until(lambda: runner.counts().completed == 1)

    assert seen[0].startswith("sink-test-") and seen[0] != threading.current_thread().name


def test_no_thread_starts_before_the_first_job() -> None:
    runner = BackgroundRunner(max_pending=1, name="idle-runner")
    try:
        assert not any(thread.name.startswith("idle-runner") for thread in threading.enumerate())
    finally:
        assert runner.close(timeout=1.0)


def test_pending_jobs_are_bounded_and_submit_never_blocks() -> None:
    release = threading.Event()

    def hold() -> None:
        release.wait()

    with BackgroundRunner(max_pending=2, workers=1) as runner:
        started = time.monotonic()
        accepted = [runner.submit(hold) for _ in range(3)]
        assert time.monotonic() - started < 0.5
        assert accepted == [True, True, False]
        assert runner.counts().pending == 2 and runner.counts().refused == 1

        release.set()
        wait_until(lambda: runner.counts().pending == 0)
        assert runner.submit(lambda: None)


def test_a_failing_job_is_logged_redacted_counted_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    secrets = ["hunter2-secret"]
    ran = threading.Event()

    def fail() -> None:
        raise RuntimeError("cannot reach http://bob:pw@host/?api_key=k3y with hunter2-secret")

    caplog.set_level(logging.WARNING)
    with BackgroundRunner(max_pending=4, workers=1, secrets=secrets) as runner:
        runner.submit(fail)
        runner.submit(ran.set)
        assert ran.wait(5)
        wait_until(lambda: runner.counts().completed == 2)
        assert runner.counts().failed == 1

    (record,) = [r for r in caplog.records if "background job failed" in r.getMessage()]
    text = record.getMessage()
    assert "RuntimeError" in text and "Traceback" in text
    assert "hunter2-secret" not in text and "k3y" not in text and "bob:pw" not in text


def test_close_waits_for_pending_jobs_then_refuses_new_ones() -> None:
    done: list[int] = []

    def slow(index: int) -> Callable[[], None]:
        def job() -> None:
            time.sleep(0.05)
            done.append(index)
        return job

    runner = BackgroundRunner(max_pending=8, workers=2)
    for index in range(5):
        runner.submit(slow(index))

    assert runner.close(timeout=5.0) is True
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert runner.submit(lambda: None) is False
    assert runner.counts() == BackgroundCounts(submitted=5, refused=1, completed=5, failed=0, dropped=0, pending=0)


def test_close_gives_up_at_its_timeout_and_drops_what_is_still_queued() -> None:
    release = threading.Event()
    ran: list[str] = []

    def hold() -> None:
        release.wait()

    runner = BackgroundRunner(max_pending=4, workers=1)
    runner.submit(hold)
    runner.submit(lambda: ran.append("queued"))

    started = time.monotonic()
    drained = runner.close(timeout=0.3)

    assert drained is False and 0.25 < time.monotonic() - started < 2.0
    assert runner.counts().dropped == 1
    release.set()
    wait_until(lambda: runner.counts().pending == 0)
    assert ran == []


@pytest.mark.parametrize(("max_pending", "workers"), [(0, 1), (1, 0)])
def test_sizes_must_be_positive(max_pending: int, workers: int) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        BackgroundRunner(max_pending=max_pending, workers=workers)


def test_idle_threads_end_and_a_later_job_starts_another() -> None:
    def live() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name.startswith("short-lived")]

    done = threading.Event()
    with BackgroundRunner(max_pending=4, workers=2, name="short-lived", idle_s=0.05) as runner:
        runner.submit(lambda: None)
        wait_until(lambda: runner.counts().completed == 1)
        wait_until(lambda: not live())  # a runner nobody closes holds no thread for long
        assert runner.submit(done.set)
        assert done.wait(5)


def test_threads_grow_to_workers_only_while_jobs_wait() -> None:
    release = threading.Event()

    def hold() -> None:
        release.wait()

    with BackgroundRunner(max_pending=8, workers=2, name="growing") as runner:
        runner.submit(hold)
        assert len([t for t in threading.enumerate() if t.name.startswith("growing")]) == 1
        for _ in range(3):
            runner.submit(hold)
        assert len([t for t in threading.enumerate() if t.name.startswith("growing")]) == 2
        release.set()
        wait_until(lambda: runner.counts().pending == 0)


def test_no_job_is_stranded_while_threads_come_and_go() -> None:
    done: list[int] = []
    lock = threading.Lock()

    def job() -> None:
        with lock:
            done.append(1)

    with BackgroundRunner(max_pending=1000, workers=3, idle_s=0.0005) as runner:
        for index in range(400):
            assert runner.submit(job)
            if index % 7 == 0:
                time.sleep(0.002)  # let threads go idle and end now and then
        wait_until(lambda: runner.counts().completed == 400)
    assert len(done) == 400
