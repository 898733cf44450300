"""Where results go: a Redis Stream per pipeline and the reference's UDP datagrams.

Each sink runs behind a ``BufferedSink`` (own thread, bounded queue), so a slow or broken sink
never stalls decoding or inference: it loses results, counts them and says so.
"""

from collections.abc import Sequence
from typing import Protocol

from services.worker.engine.results import RoundResult


class ResultSink(Protocol):
    name: str

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        """Deliver ``results``; ``dropped`` = rounds lost since the last successful write.

        Raises on failure; the caller then counts ``results`` as dropped too.
        """

    def close(self) -> None: ...
