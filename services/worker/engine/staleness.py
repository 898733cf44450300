"""A round's inference deadline, visible to whatever runs the model (the inference service's client).

With ``max_staleness`` the pipeline checks its frames right before ``processor.infer``; with the
shared inference service a request can still wait in the service's queue behind other pipelines'
batches. So the pipeline states the round's deadline (its oldest frame's ``decoded_at`` plus
``max_staleness``, on the host's monotonic clock, which every process shares) for the duration of
the call; the client sends it with the request, and the service answers :class:`StaleFrameError`
instead of running a request whose deadline passed while it waited. The pipeline then counts the
frames as ``stale`` drops and takes fresher ones, exactly as for a frame found stale before.

A live pipeline also takes its turn before it picks a round's frames (``RoundProcessor``'s optional
``take_turn``), so the frame is chosen when the service has room for it; the turn travels with the
round to its inference call the same way (``round_scope``).
"""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Round:
    deadline: float | None = None
    turn: object | None = None


_ROUND: ContextVar[_Round | None] = ContextVar("inference_round", default=None)


class StaleFrameError(Exception):
    """The round's deadline passed before its inference started."""


@contextlib.contextmanager
def round_scope(deadline: float | None = None, turn: object | None = None) -> Iterator[None]:
    """For the duration of a round's ``processor.infer`` on this thread: its deadline and its turn."""
    token = _ROUND.set(_Round(deadline, turn))
    try:
        yield
    finally:
        _ROUND.reset(token)


def current_deadline() -> float | None:
    """The deadline (``time.monotonic()`` seconds) of the round being inferred on this thread, if any."""
    scope = _ROUND.get()
    return scope.deadline if scope is not None else None


def current_turn() -> object | None:
    """The turn (from the processor's ``take_turn``) of the round being inferred on this thread, if any."""
    scope = _ROUND.get()
    return scope.turn if scope is not None else None
