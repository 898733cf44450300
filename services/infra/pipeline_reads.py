"""Reading pipelines from Redis as the manager answers about them: one home for LIST_PIPELINES and STATUS.

The manager's store (:class:`services.manager.store.PipelineStore`) is these reads plus its writes.
The HTTP API uses the reads alone (:class:`StoredReads`), so that list and status cost it one Redis
round trip instead of a manager round trip (and the manager's CPU) each.

STATUS is answered from the copy of the task's report that the task stores every second, while that
copy is fresh enough (``MANAGER_STATUS_MAX_AGE``), or when the pipeline is over; only otherwise is the
running task asked over pub/sub (:mod:`services.manager.handlers`). Both paths build the same reply
(:func:`status_response`). :class:`StoredReads` answers only what the manager would answer from the
same reads; every other case (an unknown id, a record of a newer format, a report too old, Redis
unreachable) is left to the manager (``None``), which answers it with its usual reply or error.
"""

import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from services.core import keys
from services.core.errors import NotFoundError, OperationError, StreamManagerError
from services.core.formats import FormatError
from services.core.messages import success_envelope
from services.core.records import PipelineRecord
from services.core.redaction import redact_text
from services.infra.pipelined_redis import PipelinedConnection
from services.infra.tracked_keys import TrackedKeys, TrackedValue

logger = logging.getLogger(__name__)

# KEYS: index. ARGV: the record keys' prefix (a record's key is the prefix and the id). Returns the
# indexed ids, oldest pipeline first (by created_at, then id; a record without one counts as 0).
_LIVE_IDS = """
local rows = {}
for i, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    rows[i] = {tonumber(redis.call('HGET', ARGV[1] .. id, 'created_at')) or 0, id}
end
table.sort(rows, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
local ids = {}
for i, row in ipairs(rows) do ids[i] = row[2] end
return ids
"""

# KEYS: record, report, dropped counter. Returns {record (flat HGETALL), report or '', dropped or ''}.
_SNAPSHOT = """
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or '', redis.call('GET', KEYS[3]) or ''}
"""


class PipelineReads:
    """The ids of the live pipelines, and one pipeline's record, report and dropped count.

    With ``hot`` (:mod:`services.infra.pipelined_redis`) these two reads go on that one pipelined
    connection instead of through the client's pool (what a request costs the manager's CPU). With
    ``index`` (the index's :class:`TrackedKeys`), the ids are read again only once the index has changed
    (:mod:`services.infra.tracked_keys`): their order is by each record's ``created_at``, written with
    the record's index entry and never changed."""

    def __init__(self, redis: Redis, hot: PipelinedConnection | None = None, index: TrackedKeys | None = None) -> None:
        self._redis = redis
        self._hot = hot
        self._index = index
        self._ids = None if index is None else TrackedValue(index)
        self._live_ids = redis.register_script(_LIVE_IDS)
        self._snapshot = redis.register_script(_SNAPSHOT)

    def _index_changed(self) -> None:
        """This process wrote the index (Redis acknowledged it): the ids are read again."""
        if self._index is not None:
            self._index.changed()

    async def _evaluate(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        if self._hot is None:
            return await script(keys=keys, args=args)
        return await self._hot.evalsha(script.sha, script.script, keys, args)

    async def live_ids(self) -> tuple[str, ...]:
        """The ids in the index, oldest pipeline first."""
        known = self.known_live_ids()
        if known is not None:
            return known
        version = None if self._ids is None else self._ids.before_read()
        # One script: its reads of every record's created_at cost Redis microseconds each, where the same
        # reads pipelined from here cost the manager's event loop tens of milliseconds at 3,200 pipelines.
        raw = await self._evaluate(self._live_ids, [keys.pipelines_index()], [keys.pipeline_record("")])
        ids = tuple(text(pipeline_id) for pipeline_id in raw)
        if self._ids is not None:
            self._ids.keep(ids, version)
        return ids

    def known_live_ids(self) -> tuple[str, ...] | None:
        """:meth:`live_ids` without reading Redis: the ids last read while the index has not changed since;
        None when they must be read (no tracking, or the index changed, or its messages are not trusted)."""
        if self._ids is None:
            return None
        current, ids = self._ids.get()
        return ids if current else None

    async def snapshot(self, pipeline_id: str) -> "Snapshot":
        """The record, the last stored report and the dropped-results count, in one script (STATUS's usual
        path: three reads that were four round trips, and one command where a pipeline of three cost the
        manager's event loop about twice as much); NotFoundError without a record."""
        return parse_snapshot(pipeline_id, await self.raw_snapshot(pipeline_id))

    async def raw_snapshot(self, pipeline_id: str) -> "RawSnapshot":
        """:meth:`snapshot` as Redis sent it (hashable: a memo's key)."""
        names = [keys.pipeline_record(pipeline_id), keys.pipeline_report(pipeline_id),
                 keys.results_dropped(pipeline_id)]
        flat, raw_report, raw_dropped = await self._evaluate(self._snapshot, names, [])
        return tuple(flat), raw_report, raw_dropped


# The record's hash flattened (field, value, ...), the stored report ('' when none), the dropped count ('').
RawSnapshot = tuple[tuple[bytes | str, ...], bytes | str, bytes | str]


def parse_snapshot(pipeline_id: str, raw: RawSnapshot) -> "Snapshot":
    """The snapshot read as ``raw``; NotFoundError without a record."""
    flat, raw_report, raw_dropped = raw
    if not flat:
        raise not_found(pipeline_id)
    raw_record = dict(zip(flat[::2], flat[1::2], strict=True))
    return Snapshot(record_of(pipeline_id, raw_record), stored_object(pipeline_id, raw_report or None, "report"),
                    int(raw_dropped) if raw_dropped else 0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    record: PipelineRecord
    report: dict[str, Any] | None  # the task's last stored report, None when there is none (or it is unreadable)
    results_dropped: int


def stored_object(pipeline_id: str, raw: bytes | str | None, what: str) -> dict[str, Any] | None:
    """A stored JSON object of the pipeline (its ``what``: report, spec); None when it is missing, not an
    object, or unreadable (logged)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        logger.warning("pipeline %s has an unreadable stored %s", pipeline_id, what)
        return None
    return value if isinstance(value, dict) else None


def record_of(pipeline_id: str, raw: dict[Any, Any]) -> PipelineRecord:
    """The record of a request; one of a newer format major is refused with ``operation_error``."""
    try:
        return PipelineRecord.from_hash(texts(raw))
    except FormatError as exc:
        raise OperationError(f"pipeline {pipeline_id}: {exc}",
                             "The pipeline was created by a newer release of the manager.") from None


def not_found(pipeline_id: str) -> NotFoundError:
    return NotFoundError(f"pipeline {pipeline_id} not found", f"Pipeline {pipeline_id} does not exist.")


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def texts(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def empty_report() -> dict[str, Any]:
    """The report of a pipeline whose task never wrote one."""
    return {"video_source_status_updates": [], "latency_reports": [], "inference_throughput": 0.0,
            "sources_metadata": []}


def status_response(snapshot: Snapshot, report: dict[str, Any] | None) -> dict[str, Any]:
    """STATUS's success response: ``report`` (the task's, stored or asked) with the record's fields."""
    record = snapshot.record
    return {"status": "success", "report": {
        **(report or empty_report()),
        "pipeline_state": record.state.value,
        "restarts": record.restarts,
        "last_error": record.last_error or None,
        "results_dropped": snapshot.results_dropped,
    }}


def answerable_until(snapshot: Snapshot, max_age: float) -> float:
    """Until when (``time.time()``, the worker's clock) ``snapshot`` answers a STATUS on its own: forever
    once the pipeline is over, while its stored report is fresh (``max_age`` 0: never); ``-inf`` when the
    running task must be asked."""
    if snapshot.record.state.is_final:
        return math.inf
    if max_age > 0 and snapshot.report is not None:
        return float(snapshot.report.get("reported_at", 0.0)) + max_age
    return -math.inf


def stored_status(snapshot: Snapshot, max_age: float) -> dict[str, Any] | None:
    """STATUS's response from ``snapshot`` alone when that is how it is answered (the pipeline is over,
    or its stored report is fresh); None when the running task must be asked."""
    if time.time() <= answerable_until(snapshot, max_age):
        return status_response(snapshot, snapshot.report)
    return None


# A reading of Redis for one command: ("list_pipelines", ids) or ("status", pipeline id, raw snapshot).
Reading = tuple[Any, ...]
MEMO_SIZE = 512  # rendered replies a StoredReads keeps (a few KiB each)
_MARK = str(uuid.uuid4())  # the request id a memoised rendering is made with, replaced in each reply
_MARK_BYTES = _MARK.encode()


@dataclass(frozen=True, slots=True)
class _Rendered:
    head: bytes  # the rendering up to the request id (all of it when it shows none)
    tail: bytes | None  # the rest after the request id; None when the rendering shows none
    until: float  # time.time() after which the reading no longer answers (see answerable_until)


class StoredReads:
    """LIST_PIPELINES and STATUS answered from Redis as the manager answers them (see the module)."""

    COMMANDS = frozenset({"list_pipelines", "status"})

    def __init__(self, redis: Redis, status_max_age: float, hot: PipelinedConnection | None = None,
                 index: TrackedKeys | None = None) -> None:
        self._store = PipelineReads(redis, hot, index)
        self._status_max_age = status_max_age
        self._failing = False  # Redis failed on the last read (logged once per outage)
        self._memo: dict[tuple[Any, ...], _Rendered] = {}

    async def reply(self, command: dict[str, Any]) -> dict[str, Any] | None:
        """The manager's reply envelope to ``command``, or None: ask the manager."""
        reading = await self._read(command)
        if reading is None:
            return None
        response, until = self._response(reading)
        if response is None or time.time() > until:
            return None
        return success_envelope(str(uuid.uuid4()), response, _pipeline_id(reading))

    async def rendered(self, command: dict[str, Any], render: Callable[[dict[str, Any]], bytes]) -> bytes | None:
        """``render(envelope)`` of the envelope :meth:`reply` would give, or None: ask the manager.

        Memoised on what was read from Redis: a dashboard polls the same pipelines, whose record and report
        change once a second at most, and parsing them and rendering the reply cost more than the read.
        A memoised rendering is made with a marker as its request id, replaced by a fresh id in each reply,
        and is used only while the reading answers (a stored report stays fresh for ``status_max_age``).
        """
        reading = await self._read(command)
        if reading is None:
            return None
        key = (render, reading)
        entry = self._memo.get(key)
        if entry is None:
            response, until = self._response(reading)
            if response is None:
                return None
            body = render(success_envelope(_MARK, response, _pipeline_id(reading)))
            head, marked, tail = body.partition(_MARK_BYTES)
            if _MARK_BYTES in tail:  # shown twice: not memoised (it never is, in the API's models)
                return None if time.time() > until else render(
                    success_envelope(str(uuid.uuid4()), response, _pipeline_id(reading)))
            entry = _Rendered(head, tail if marked else None, until)
            if len(self._memo) >= MEMO_SIZE:
                del self._memo[next(iter(self._memo))]  # the oldest entry
            self._memo[key] = entry
        if time.time() > entry.until:
            return None
        return entry.head if entry.tail is None else entry.head + str(uuid.uuid4()).encode() + entry.tail

    async def _read(self, command: dict[str, Any]) -> Reading | None:
        """What Redis holds for ``command``; None for a command read elsewhere, or when Redis fails."""
        kind, pipeline_id = command.get("type"), command.get("pipeline_id")
        try:
            if kind == "list_pipelines":
                reading: Reading = (kind, await self._store.live_ids())
            elif kind == "status" and isinstance(pipeline_id, str):
                reading = (kind, pipeline_id, await self._store.raw_snapshot(pipeline_id))
            else:
                return None
        except (RedisError, OSError) as exc:
            if not self._failing:
                logger.warning("reads from Redis failed (%s: %s); the manager answers them until Redis does",
                               type(exc).__name__, redact_text(str(exc)))
            self._failing = True
            return None
        if self._failing:
            logger.warning("reads from Redis work again")
            self._failing = False
        return reading

    def _response(self, reading: Reading) -> tuple[dict[str, Any] | None, float]:
        """The success response for ``reading`` and until when it answers; (None, -inf) when the manager
        answers it (an unknown id, a newer format, an unreadable record: its error reply says which)."""
        if reading[0] == "list_pipelines":
            return {"pipelines": list(reading[1])}, math.inf
        _, pipeline_id, raw = reading
        try:
            snapshot = parse_snapshot(pipeline_id, raw)
        except (StreamManagerError, FormatError, ValueError):
            return None, -math.inf
        return status_response(snapshot, snapshot.report), answerable_until(snapshot, self._status_max_age)


def _pipeline_id(reading: Reading) -> str | None:
    return reading[1] if reading[0] == "status" else None
