"""What ``/metrics`` reads from Redis at scrape time: every live pipeline and every worker registration.

Pipelines are processes Prometheus cannot reach; their tasks store a report with cumulative numbers
each second (``services.core.metrics``), the manager keeps their record (state, device, restarts),
and the worker processes announce themselves. One round trip reads them all: a Lua script per live
pipeline, pipelined. The script takes only ``results_buffer_size`` out of the pipeline's spec inside
Redis, so the spec's API key never reaches this process; and nothing read here that could hold a
credential (the reports' ``source_reference``) is kept.
"""

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from services.core import keys
from services.core.metrics import PipelineMetrics
from services.core.registration import WorkerRegistration
from services.infra import registry

logger = logging.getLogger(__name__)

# KEYS: record, report, results stream, consume cursor, spec. Returns {state, device, restarts,
# report JSON ('' if none), stream length, entries ever added (-1: unknown), cursor position,
# results_buffer_size ('' if unknown)}, or nil when the record is gone. Nil-free: Lua tables stop at nil.
_PIPELINE = """
local record = redis.call('HMGET', KEYS[1], 'state', 'device', 'restarts')
if not record[1] then return nil end
local report = redis.call('GET', KEYS[2]) or ''
local length, added = 0, 0
if redis.call('EXISTS', KEYS[3]) == 1 then
    added = -1  -- stays -1 before Redis 7, which does not count entries-added
    local info = redis.call('XINFO', 'STREAM', KEYS[3])
    for i = 1, #info, 2 do
        if info[i] == 'length' then length = info[i + 1]
        elseif info[i] == 'entries-added' then added = info[i + 1] end
    end
end
local position = redis.call('HGET', KEYS[4], 'position') or '0'
local size = ''
local spec = redis.call('GET', KEYS[5])
if spec then
    local ok, decoded = pcall(cjson.decode, spec)
    if ok and type(decoded) == 'table' and type(decoded['results_buffer_size']) == 'number' then
        size = tostring(decoded['results_buffer_size'])
    end
end
return {record[1], record[2] or '', record[3] or '0', report, length, added, position, size}
"""


@dataclass(frozen=True, slots=True)
class PipelineSample:
    pipeline_id: str
    state: str
    device: str
    restarts: int
    fps: float | None = None  # the report's inference_throughput; None before the first report
    reported_at: float | None = None  # unix time on the worker's clock
    metrics: PipelineMetrics | None = None
    unread_results: int | None = None  # results CONSUME_RESULT has not read yet, still in the stream
    results_buffer_size: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerSample:
    hostname: str
    queues: tuple[str, ...]
    slots: int
    free_slots: int
    ram_available_mb: int | None = None
    pipelines_ram_mb: int | None = None
    inference_service_ram_mb: int | None = None


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    taken_at: float
    redis_up: bool
    pipelines: list[PipelineSample] = field(default_factory=list)
    workers: list[WorkerSample] = field(default_factory=list)


class ClusterReader:
    """Reads a :class:`ClusterSnapshot` through ``redis`` (its script registered once)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_PIPELINE)

    async def read(self) -> ClusterSnapshot:
        """Every live pipeline (``keys.pipelines_index``) and worker registration, as of now."""
        members = await self._redis.smembers(keys.pipelines_index())
        ids = sorted(raw.decode() if isinstance(raw, bytes) else str(raw) for raw in members)
        rows: list[Any] = []
        if ids:
            pipe = self._redis.pipeline(transaction=False)
            for pipeline_id in ids:
                await self._script(keys=[keys.pipeline_record(pipeline_id), keys.pipeline_report(pipeline_id),
                                         keys.results_stream(pipeline_id), keys.pipeline_consumed(pipeline_id),
                                         keys.pipeline_spec(pipeline_id)], client=pipe)
            rows = await pipe.execute()
        pipelines = [_pipeline(pipeline_id, row) for pipeline_id, row in zip(ids, rows, strict=True)
                     if row is not None]  # None: retired between SMEMBERS and the script
        return ClusterSnapshot(time.time(), True, pipelines, await _workers(self._redis))


def _pipeline(pipeline_id: str, row: list[Any]) -> PipelineSample:
    state, device, restarts, report_raw, length, added, position, size = (
        value.decode() if isinstance(value, bytes) else value for value in row)
    report = _report(pipeline_id, report_raw)
    unread = None
    if int(added) >= 0:
        unread = max(0, min(int(length), int(added) - int(position)))
    return PipelineSample(
        pipeline_id=pipeline_id, state=str(state), device=str(device), restarts=int(restarts),
        fps=_number(report.get("inference_throughput")), reported_at=_number(report.get("reported_at")),
        metrics=_metrics(pipeline_id, report.get("metrics")), unread_results=unread,
        results_buffer_size=int(size) if size else None,
    )


def _report(pipeline_id: str, raw: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        report = json.loads(raw)
    except ValueError:
        logger.warning("pipeline %s: unreadable stored report", pipeline_id)
        return {}
    return report if isinstance(report, dict) else {}


def _metrics(pipeline_id: str, section: Any) -> PipelineMetrics | None:
    if section is None:  # a task that has not reported yet, or a worker older than the metrics
        return None
    try:
        return PipelineMetrics.model_validate(section)
    except ValidationError as exc:
        logger.warning("pipeline %s: unreadable metrics section: %s", pipeline_id, exc.error_count())
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def _workers(redis: Redis) -> list[WorkerSample]:
    workers = []
    for _, raw in await registry.live_registrations(redis):  # the registry of live workers, no SCAN
        try:
            workers.append(_worker(WorkerRegistration.model_validate_json(raw)))
        except ValidationError:
            logger.warning("ignoring an unreadable worker registration")
    return workers


def _worker(registration: WorkerRegistration) -> WorkerSample:
    return WorkerSample(
        hostname=registration.hostname,
        queues=registration.queues,
        slots=registration.concurrency or 0,
        free_slots=registration.free_slots or 0,
        ram_available_mb=registration.ram_available_mb,
        pipelines_ram_mb=registration.pipelines_ram_mb,
        inference_service_ram_mb=registration.inference_service_ram_mb,
    )


def _optional_int(value: Any) -> int | None:
    return int(value) if value is not None else None
