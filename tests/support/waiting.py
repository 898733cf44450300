"""Polling until a condition holds, with a deadline (for state that other processes change)."""

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.02,
               message: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message() if message else f"condition not met within {timeout} s")
        time.sleep(interval)
