"""Appends each round to the pipeline's Redis Stream, trimmed to ``maxlen`` (approximately).

One round trip per batch. Unfenced (the engine on its own): a pipeline of ``XADD key MAXLEN ~ N``
per round plus an ``INCRBY`` of the dropped counter. Fenced (a pipeline task): one Lua script
that first checks that the pipeline's record still carries this task's epoch and owner, then
appends every round with its ``epoch`` field. A superseded task (the manager re-dispatched the
pipeline after losing its heartbeat) therefore cannot append a single result after the new epoch
was written: two producers never write the same stream at once. A refused write raises
:class:`FencedOut` and calls ``on_fenced`` once, so the task stops at once.

A write that finds the record *missing* is not refused yet: Redis may have restarted without its
data while the task kept running. The sink asks ``on_missing`` (the task's
``Ownership.restore``), which puts the record back when that is what happened, and writes again;
only when the restore is refused (the record was removed on purpose) is the task fenced out.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis
from redis.commands.core import Script

from services.core import keys
from services.core.fencing import fence_lua
from services.core.results import EPOCH, FRAMES_METADATA, OUTPUTS, encode_entry
from services.worker.engine.results import RoundResult

# KEYS: record, stream, dropped counter. ARGV: epoch, owner, maxlen, dropped, then per round its
# outputs and frames_metadata JSON. Returns the number of entries added, -1 when fenced out (the
# record is at another epoch or owner), -2 when the record is missing (nothing written either way).
_FENCED_APPEND = fence_lua("-2", "-1") + f"""
local added = 0
for i = 5, #ARGV, 2 do
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
               '{OUTPUTS}', ARGV[i], '{FRAMES_METADATA}', ARGV[i + 1], '{EPOCH}', ARGV[1])
    added = added + 1
end
if tonumber(ARGV[4]) > 0 then redis.call('INCRBY', KEYS[3], ARGV[4]) end
return added
"""


_MISSING = -2


@dataclass(frozen=True, slots=True)
class Fence:
    """The ownership a fenced sink checks on every write."""

    epoch: int
    owner: str
    on_fenced: Callable[[], None] = lambda: None
    # The record is missing: restore it if Redis lost it; True when it exists again (then the write
    # is retried), False when it was removed on purpose (then the write counts as fenced out).
    on_missing: Callable[[], bool] = lambda: False


class FencedOut(RuntimeError):
    """The pipeline's record no longer carries this task's epoch: nothing was written."""


class RedisStreamSink:
    name = "redis_stream"

    def __init__(self, client: redis.Redis, pipeline_id: str, maxlen: int, fence: Fence | None = None):
        if maxlen < 1:
            raise ValueError("results buffer size must be at least 1")
        self._client = client
        self._record = keys.pipeline_record(pipeline_id)
        self._stream = keys.results_stream(pipeline_id)
        self._dropped_key = keys.results_dropped(pipeline_id)
        self._maxlen = maxlen
        self._fence = fence
        self._append = client.register_script(_FENCED_APPEND) if fence is not None else None
        self._fenced = False

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        if self._fence is not None and self._append is not None:
            self._write_fenced(self._fence, self._append, results, dropped)
            return
        pipe = self._client.pipeline(transaction=False)
        for result in results:
            entry = encode_entry(result.outputs(), result.frames_metadata())
            pipe.xadd(self._stream, entry, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        if dropped:
            pipe.incrby(self._dropped_key, dropped)
        pipe.execute()

    def _write_fenced(self, fence: Fence, append: Script, results: Sequence[RoundResult], dropped: int) -> None:
        args: list[str | int] = [fence.epoch, fence.owner, self._maxlen, dropped]
        for result in results:
            entry = encode_entry(result.outputs(), result.frames_metadata())
            args += [entry[OUTPUTS], entry[FRAMES_METADATA]]
        script_keys = [self._record, self._stream, self._dropped_key]
        added = int(append(keys=script_keys, args=args))
        if added == _MISSING and fence.on_missing():
            added = int(append(keys=script_keys, args=args))
        if added < 0:
            if not self._fenced:
                self._fenced = True
                fence.on_fenced()
            why = "the record was removed" if added == _MISSING else f"epoch {fence.epoch} was superseded"
            raise FencedOut(f"{why}: {len(results)} results not written")

    def close(self) -> None:
        """The client belongs to the caller, who closes it."""
