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


def settled(value: Callable[[], object], quiet: float, timeout: float, interval: float = 0.1) -> object:
    """``value()`` once it has not changed for ``quiet`` seconds; fails after ``timeout``.

    For "nothing more arrives" checks: what was already in flight when a mute landed still drains,
    and how long that takes depends on the host, so a fixed sleep before counting is a race.
    """
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"still changing after {timeout} s (last value {last!r})")
