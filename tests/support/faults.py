"""Fault injection on the real stack, and what the results stream says about it afterwards.

Shared by the supervision tests (tests/e2e/test_supervision.py), which assert on the outcome, and
the fault benchmark (tests/benchmarks/faults.py), which repeats the scenarios and reports times.

The ground truth is the pipeline's results stream: every entry carries the ``epoch`` of the task
that wrote it (fenced writes), and its id is Redis's clock at the moment of the write. From it:
whether two producers ever interleaved (an entry of an older epoch after one of a newer epoch),
whether a frame was written twice by one producer, and when the new producer's first result
landed (the recovery time).
"""

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis

from services.core import keys
from services.core.records import PipelineRecord
from services.core.results import decode_entry, entry_epoch


@dataclass(frozen=True, slots=True)
class Entry:
    at: float  # Redis server time of the write (from the entry id), seconds
    epoch: int | None
    frames: tuple[tuple[int, int], ...]  # (source_id, frame_id) of each source's frame


@dataclass
class StreamAudit:
    entries: list[Entry] = field(default_factory=list)

    @property
    def epochs(self) -> list[int | None]:
        """Epochs in stream order, consecutive repeats collapsed (e.g. [1, 2])."""
        runs: list[int | None] = []
        for entry in self.entries:
            if not runs or runs[-1] != entry.epoch:
                runs.append(entry.epoch)
        return runs

    @property
    def interleaved(self) -> int:
        """Entries written by an older epoch after a newer epoch had written (two live producers)."""
        newest, count = 0, 0
        for entry in self.entries:
            epoch = entry.epoch or 0
            if epoch < newest:
                count += 1
            newest = max(newest, epoch)
        return count

    @property
    def duplicated(self) -> int:
        """Frames written more than once by the same producer (epoch)."""
        seen: set[tuple[int | None, int, int]] = set()
        duplicates = 0
        for entry in self.entries:
            for frame in entry.frames:
                key = (entry.epoch, *frame)
                duplicates += key in seen
                seen.add(key)
        return duplicates

    def first_at(self, epoch: int) -> float | None:
        return next((entry.at for entry in self.entries if entry.epoch == epoch), None)

    def last_at(self, epoch: int) -> float | None:
        return next((entry.at for entry in reversed(self.entries) if entry.epoch == epoch), None)

    def count(self, epoch: int) -> int:
        return sum(1 for entry in self.entries if entry.epoch == epoch)


def audit(client: redis.Redis, pipeline_id: str) -> StreamAudit:
    result = StreamAudit()
    for entry_id, fields in client.xrange(keys.results_stream(pipeline_id)):  # type: ignore[union-attr]
        _, metadata = decode_entry(fields)
        frames = tuple((int(m["source_id"]), int(m["frame_id"])) for m in metadata if m is not None)
        millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
        result.entries.append(Entry(millis / 1000, entry_epoch(fields), frames))
    return result


def record(client: redis.Redis, pipeline_id: str) -> PipelineRecord:
    return PipelineRecord.from_hash(client.hgetall(keys.pipeline_record(pipeline_id)))  # type: ignore[arg-type]


def task_pid(client: redis.Redis, pipeline_id: str) -> int:
    """The pid of the pool process running the pipeline (the record's owner is ``hostname:pid``)."""
    owner = record(client, pipeline_id).owner
    if not owner:
        raise AssertionError(f"pipeline {pipeline_id} has no owner")
    return int(owner.rsplit(":", 1)[1])


def redis_time(client: redis.Redis) -> float:
    seconds, micros = client.time()  # type: ignore[misc]
    return float(seconds) + micros / 1e6


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> float:
    """Polls ``predicate`` until true; the monotonic time it became true. AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """``sig`` to a process and all its descendants (children first listed, all signalled at once)."""
    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)


@dataclass
class Recovery:
    """One fault's outcome, measured from the fault (t0, Redis clock) to the new producer's first result."""

    scenario: str
    detected_s: float | None  # fault -> the manager bumped the epoch (restart scheduled)
    recovered_s: float | None  # fault -> first result of the new epoch in the stream
    gap_s: float | None  # last result of the old epoch -> first result of the new one
    old_epoch_results: int
    new_epoch_results: int
    interleaved: int
    duplicated: int
    epochs: list[int | None]
    extra: dict[str, Any] = field(default_factory=dict)


def measure_restart(client: redis.Redis, pipeline_id: str, scenario: str, inject: Any,
                    timeout: float = 60.0, settle: float = 3.0) -> Recovery:
    """Injects a fault that loses the pipeline's task and measures its re-dispatch.

    ``inject()`` performs the fault; afterwards this waits for the next epoch to write results,
    lets it run ``settle`` seconds more (so a zombie of the old epoch would have had time to write),
    and audits the stream.
    """
    before = record(client, pipeline_id)
    old, new = before.epoch, before.epoch + 1
    t0 = redis_time(client)
    inject()
    detected = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if detected is None and record(client, pipeline_id).epoch >= new:
            detected = redis_time(client) - t0
        if audit(client, pipeline_id).first_at(new) is not None:
            break
        time.sleep(0.05)
    time.sleep(settle)
    stream = audit(client, pipeline_id)
    first_new, last_old = stream.first_at(new), stream.last_at(old)
    return Recovery(
        scenario=scenario,
        detected_s=detected,
        recovered_s=None if first_new is None else first_new - t0,
        gap_s=None if first_new is None or last_old is None else first_new - last_old,
        old_epoch_results=stream.count(old),
        new_epoch_results=stream.count(new),
        interleaved=stream.interleaved,
        duplicated=stream.duplicated,
        epochs=stream.epochs,
    )
