import random

import pytest

from services.worker.engine.reconnect import Backoff, BackoffPolicy, Jitter


class MaxRandom(random.Random):
    """Always the upper bound, so the ceilings themselves are visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


def delays(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_no_jitter_is_plain_capped_exponential() -> None:
    backoff = Backoff(BackoffPolicy(initial=0.5, factor=2, cap=4, jitter=Jitter.NONE))
    assert delays(backoff, 6) == [0.5, 1, 2, 4, 4, 4]
    assert backoff.attempt == 6


def test_full_jitter_stays_under_the_exponential_ceiling() -> None:
    policy = BackoffPolicy(initial=1, factor=2, cap=10, jitter=Jitter.FULL)
    assert delays(Backoff(policy, MaxRandom()), 5) == [1, 2, 4, 8, 10]
    samples = delays(Backoff(policy, random.Random(7)), 50)
    assert all(0 <= d <= 10 for d in samples)
    assert len(set(samples)) > 40, "jitter spreads reconnects of many sources"


def test_decorrelated_jitter_grows_from_the_previous_delay_and_is_capped() -> None:
    policy = BackoffPolicy(initial=1, factor=3, cap=20, jitter=Jitter.DECORRELATED)
    assert delays(Backoff(policy, MaxRandom()), 5) == [3, 9, 20, 20, 20]
    assert all(1 <= d <= 20 for d in delays(Backoff(policy, random.Random(1)), 100))


def test_resets_only_after_a_healthy_period() -> None:
    backoff = Backoff(BackoffPolicy(initial=1, factor=2, cap=60, jitter=Jitter.NONE, reset_after=10))
    delays(backoff, 3)
    backoff.connected(now=100)
    backoff.healthy(now=105)
    assert backoff.next_delay() == 8, "a connection that flaps does not reset the backoff"
    backoff.connected(now=200)
    backoff.healthy(now=210)
    assert backoff.attempt == 0
    assert backoff.next_delay() == 1


def test_healthy_without_connection_does_nothing() -> None:
    backoff = Backoff(BackoffPolicy(jitter=Jitter.NONE, reset_after=0))
    backoff.next_delay()
    backoff.healthy(now=1e9)
    assert backoff.attempt == 1


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 2, "cap": 1}, {"factor": 0.5}, {"reset_after": -1}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]
