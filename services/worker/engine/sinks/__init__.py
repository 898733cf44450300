"""Where results go: a Redis Stream per pipeline and the reference's UDP datagrams.

Each sink runs behind a ``BufferedSink`` (own thread, bounded queue), so a slow or broken sink
never stalls decoding or inference: it loses results, counts them and says so.

A sink that can tell a passing outage from a failure raises :class:`SinkUnavailable` for the former
(its server is unreachable, restarting or failing over, and the same write may succeed again): the
``BufferedSink`` then keeps the batch and retries it, while new results wait in its bounded queue.
Any other exception drops the batch (counted). A sink that can restore what its server lost (the
results stream after a Sentinel failover) reports it with ``recovery()`` (:class:`Recovery`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.worker.engine.results import RoundResult


class ResultSink(Protocol):
    name: str

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        """Deliver ``results``; ``dropped`` = rounds lost since the last successful write.

        Raises on failure; the caller then counts ``results`` as dropped too.
        """

    def close(self) -> None: ...


class SinkUnavailable(RuntimeError):
    """The sink's server cannot take the write now (connection refused or lost, a failover, loading):
    nothing or all of the batch was written, and writing the same batch again is safe."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a sink found missing on its server after an outage and what it did about it (rounds)."""

    replayed: int = 0  # written again, with their original ids, from the sink's memory
    lost: int = 0  # acknowledged by the server, then lost (e.g. not replicated before a failover)
