"""Reconnect delays: exponential backoff with jitter, reset once a connection has proved healthy.

Pure: no sleeping and no clock of its own. The caller passes ``time.monotonic()`` values and may
inject a seeded ``random.Random`` so tests see exact delays.
"""

import random
from dataclasses import dataclass
from enum import StrEnum


class Jitter(StrEnum):
    """How a delay is randomised (see the AWS architecture blog, "Exponential Backoff And Jitter")."""

    NONE = "none"  # initial * factor**attempt, capped
    FULL = "full"  # uniform(0, that)
    DECORRELATED = "decorrelated"  # uniform(initial, previous * factor), capped


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: Jitter = Jitter.FULL
    # A connection that has delivered frames for this long counts as healthy: attempts restart at 0.
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.cap < self.initial:
            raise ValueError("backoff needs 0 < initial <= cap")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if self.reset_after < 0:
            raise ValueError("backoff reset_after must be >= 0")


class Backoff:
    """The delay before each reconnect attempt of one source. Not thread-safe: one owner thread."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self._policy = policy
        self._rng = rng or random.Random()
        self._attempt = 0
        self._previous = policy.initial
        self._connected_at: float | None = None

    @property
    def attempt(self) -> int:
        """Attempts made since the last reset."""
        return self._attempt

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; counts the attempt."""
        policy = self._policy
        if policy.jitter is Jitter.DECORRELATED:
            delay = min(policy.cap, self._rng.uniform(policy.initial, self._previous * policy.factor))
        else:
            ceiling = min(policy.cap, policy.initial * policy.factor ** min(self._attempt, 64))
            delay = self._rng.uniform(0.0, ceiling) if policy.jitter is Jitter.FULL else ceiling
        self._attempt += 1
        self._previous = max(delay, policy.initial)
        self._connected_at = None
        return delay

    def connected(self, now: float) -> None:
        """A connection came up at ``now``; it resets the backoff once it has lasted ``reset_after``."""
        self._connected_at = now

    def healthy(self, now: float) -> None:
        """A frame was read at ``now``."""
        if self._connected_at is not None and now - self._connected_at >= self._policy.reset_after:
            self.reset()

    def reset(self) -> None:
        self._attempt = 0
        self._previous = self._policy.initial
        self._connected_at = None
