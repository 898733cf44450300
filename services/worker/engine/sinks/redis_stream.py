"""Appends each round to the pipeline's Redis Stream, trimmed to ``maxlen`` (approximately).

One pipelined round trip per batch: ``XADD key MAXLEN ~ N * fields`` for each round, plus an
``INCRBY`` of the dropped counter when rounds were lost since the last write.
"""

from collections.abc import Sequence

import redis

from services.core import keys
from services.core.results import encode_entry
from services.worker.engine.results import RoundResult


class RedisStreamSink:
    name = "redis_stream"

    def __init__(self, client: redis.Redis, pipeline_id: str, maxlen: int):
        if maxlen < 1:
            raise ValueError("results buffer size must be at least 1")
        self._client = client
        self._stream = keys.results_stream(pipeline_id)
        self._dropped_key = keys.results_dropped(pipeline_id)
        self._maxlen = maxlen

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        pipe = self._client.pipeline(transaction=False)
        for result in results:
            entry = encode_entry(result.outputs(), result.frames_metadata())
            pipe.xadd(self._stream, entry, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        if dropped:
            pipe.incrby(self._dropped_key, dropped)
        pipe.execute()

    def close(self) -> None:
        """The client belongs to the caller, who closes it."""
