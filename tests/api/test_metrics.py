"""``/metrics`` from stored state: the scrape reads real Redis keys as the tasks, the manager and the
workers write them, and the collector renders Prometheus families with the promised labels, cumulative
buckets, and no credential anywhere (a video reference, the spec's API key)."""

import asyncio
import json
import time
from typing import Any

import redis
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from redis.asyncio import Redis as AsyncRedis

from services.api.collector import ClusterCollector
from services.api.metrics import ClusterMetrics
from services.api.scrape import ClusterReader, ClusterSnapshot
from services.api.settings import ApiSettings
from services.core import keys
from services.core.metrics import LatencyHistogram, PipelineMetrics, SinkMetrics, SourceMetrics
from services.core.records import PipelineRecord, PipelineState
from services.infra import registry as workers_registry
from tests.support.redis_server import RedisServer, free_port

CAMERA = "rtsp://admin:hunter2@10.0.0.5/stream"
API_KEY = "secret-api-key"


def _histogram(*seconds: float) -> Any:
    histogram = LatencyHistogram()
    for value in seconds:
        histogram.observe(value)
    return histogram.snapshot()


def _store_pipeline(client: redis.Redis, pipeline_id: str, state: PipelineState, restarts: int,
                    report: dict[str, Any] | None, results: int = 0, consumed: int = 0) -> None:
    record = PipelineRecord(pipeline_id, state=state, device="gpu", restarts=restarts)
    client.hset(keys.pipeline_record(pipeline_id), mapping=record.to_hash())  # type: ignore[arg-type]
    client.sadd(keys.pipelines_index(), pipeline_id)
    client.set(keys.pipeline_spec(pipeline_id), json.dumps({"video_references": [CAMERA], "api_key": API_KEY,
                                                            "results_buffer_size": 10}))
    if report is not None:
        client.set(keys.pipeline_report(pipeline_id), json.dumps(report))
    for _ in range(results):
        client.xadd(keys.results_stream(pipeline_id), {"outputs": "[]", "frames_metadata": "[]"})
    if consumed:
        client.hset(keys.pipeline_consumed(pipeline_id), "position", consumed)


def _report() -> dict[str, Any]:
    metrics = PipelineMetrics(
        sources=[
            SourceMetrics(source_id=0, frames_decoded=40, frames_processed=3, reconnects=2,
                          frames_dropped={"max_fps": 30, "eager_skip": 7}, decode=_histogram(0.004, 0.02, 0.02),
                          inference=_histogram(0.05, 0.06, 0.07), frame_age=_histogram(0.06, 0.09, 3.0)),
            SourceMetrics(source_id=1, frames_decoded=3, frames_processed=3, decode=_histogram(0.001, 0.001, 0.001),
                          inference=_histogram(0.05, 0.06, 0.07), frame_age=_histogram(0.1, 0.1, 0.1)),
        ],
        sinks=[SinkMetrics(name="redis_stream", delivered=3, dropped={"queue_full": 0, "sink_error": 1})],
        inference_errors=1,
    )
    return {
        "inference_throughput": 12.5,
        "reported_at": time.time() - 1.0,
        "sources_metadata": [{"source_id": 0, "source_reference": CAMERA}, {"source_id": 1, "source_reference": 0}],
        "metrics": metrics.model_dump(mode="json"),
    }


def _read(url: str) -> ClusterSnapshot:
    async def read() -> ClusterSnapshot:
        client = AsyncRedis.from_url(url)
        try:
            return await ClusterReader(client).read()
        finally:
            await client.aclose()

    return asyncio.run(read())


def _render(snapshot: ClusterSnapshot) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(snapshot))
    return generate_latest(registry).decode()


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    (value,) = [value for found, value in samples[name] if all(found.get(k) == v for k, v in labels.items())]
    return value


def test_stored_reports_render_as_labelled_families_without_credentials(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    _store_pipeline(redis_client, "p-run", PipelineState.RUNNING, restarts=2, report=_report(), results=8, consumed=4)
    _store_pipeline(redis_client, "p-new", PipelineState.PENDING, restarts=0, report=None)
    redis_client.sadd(keys.pipelines_index(), "p-gone")  # retired between the index read and the script
    workers_registry.publish(redis_client, "w@host", json.dumps({
        "hostname": "w@host", "queues": ["pipelines.gpu", "pipelines.cpu"], "concurrency": 2, "free_slots": 1,
        "ram_available_mb": 1024, "pipelines_ram_mb": 300, "inference_service_ram_mb": 150}), 60)

    text = _render(_read(redis_server.url))
    assert "hunter2" not in text and "admin" not in text and API_KEY not in text and "rtsp" not in text
    samples = _samples(text)

    assert _value(samples, "vsim_metrics_redis_up") == 1
    assert _value(samples, "vsim_worker_inference_service_ram_bytes", worker="w@host") == 150 * 2**20
    assert _value(samples, "vsim_pipelines", state="RUNNING") == 1
    assert _value(samples, "vsim_pipelines", state="PENDING") == 1
    assert _value(samples, "vsim_pipelines", state="FAILED") == 0
    assert _value(samples, "vsim_pipeline_restarts_total", pipeline_id="p-run", device="gpu") == 2
    assert _value(samples, "vsim_pipeline_restarts_total", pipeline_id="p-new") == 0
    assert [labels["pipeline_id"] for labels, _ in samples["vsim_pipeline_fps"]] == ["p-run"]
    assert _value(samples, "vsim_pipeline_fps", pipeline_id="p-run") == 12.5
    assert 0.5 < _value(samples, "vsim_pipeline_report_age_seconds", pipeline_id="p-run") < 60
    assert _value(samples, "vsim_results_buffer_fill_ratio", pipeline_id="p-run") == 0.4  # 4 unread of 10
    assert _value(samples, "vsim_results_buffer_fill_ratio", pipeline_id="p-new") == 0  # nothing written yet

    for name in ("vsim_frame_decode_seconds", "vsim_inference_seconds", "vsim_frame_age_seconds"):
        for source_id in ("0", "1"):
            buckets = [(float(labels["le"]), value) for labels, value in samples[f"{name}_bucket"]
                       if labels["source_id"] == source_id]
            assert all({"pipeline_id", "source_id", "device", "le"} == set(labels)
                       for labels, _ in samples[f"{name}_bucket"])
            counts = [value for _, value in buckets]
            assert counts == sorted(counts), "cumulative buckets never decrease"
            assert buckets[-1] == (float("inf"), 3.0)
            assert _value(samples, f"{name}_count", pipeline_id="p-run", source_id=source_id) == 3
    # 0.06 and 0.09 are <= 0.1, 3.0 is not; all three are <= 5
    assert _value(samples, "vsim_frame_age_seconds_bucket", source_id="0", le="0.1") == 2
    assert _value(samples, "vsim_frame_age_seconds_bucket", source_id="0", le="5.0") == 3
    assert _value(samples, "vsim_frame_age_seconds_sum", source_id="0") == 3.15

    assert _value(samples, "vsim_frames_dropped_total", source_id="0", reason="max_fps") == 30
    assert _value(samples, "vsim_frames_dropped_total", source_id="0", reason="eager_skip") == 7
    assert _value(samples, "vsim_source_reconnects_total", source_id="0") == 2
    assert _value(samples, "vsim_frames_decoded_total", source_id="1") == 3
    assert _value(samples, "vsim_results_dropped_total", sink="redis_stream", reason="sink_error") == 1
    assert _value(samples, "vsim_inference_errors_total", pipeline_id="p-run") == 1
    assert _value(samples, "vsim_worker_free_slots", worker="w@host", queue="pipelines.gpu") == 1
    assert _value(samples, "vsim_worker_slots", worker="w@host", queue="pipelines.cpu") == 2
    assert _value(samples, "vsim_worker_ram_available_bytes", worker="w@host") == 1024 * 2**20

    allowed = {"pipeline_id", "source_id", "device", "reason", "sink", "state", "worker", "queue", "le"}
    assert {label for series in samples.values() for labels, _ in series for label in labels} <= allowed


def test_unread_results_beyond_the_buffer_fill_it_and_a_bad_report_is_skipped(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    _store_pipeline(redis_client, "p-full", PipelineState.RUNNING, restarts=0, report=None, results=25)
    broken = {"inference_throughput": 3.0, "metrics": {"buckets": [0.1], "sources": [
        {"source_id": 0, "decode": {"counts": [1, 2, 3], "sum": 1.0}}]}}
    _store_pipeline(redis_client, "p-odd", PipelineState.MUTED, restarts=1, report=broken)

    samples = _samples(_render(_read(redis_server.url)))
    assert _value(samples, "vsim_results_buffer_fill_ratio", pipeline_id="p-full") == 1.0  # 25 unread, 10 kept
    assert _value(samples, "vsim_pipeline_fps", pipeline_id="p-odd") == 3.0  # the rest of its report still counts
    assert "vsim_frame_decode_seconds_bucket" not in samples


def test_workers_are_found_through_their_registry_without_scanning_the_keyspace(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    workers_registry.publish(redis_client, "w@host", json.dumps({"hostname": "w@host", "queues": ["pipelines.cpu"]}),
                             60)
    redis_client.config_resetstat()

    snapshot = _read(redis_server.url)

    assert [worker.hostname for worker in snapshot.workers] == ["w@host"]
    assert "cmdstat_scan" not in redis_client.info("commandstats")


def test_without_redis_the_scrape_answers_and_says_so() -> None:
    async def render(settings: ApiSettings) -> str:
        metrics = ClusterMetrics(settings)
        try:
            return (await metrics.render()).decode()
        finally:
            await metrics.aclose()

    unset = _samples(asyncio.run(render(ApiSettings(manager_port=7070))))
    assert _value(unset, "vsim_metrics_redis_up") == 0
    down = _samples(asyncio.run(render(ApiSettings(manager_port=7070,
                                                   redis_url=f"redis://:pw@127.0.0.1:{free_port()}/0"))))
    assert _value(down, "vsim_metrics_redis_up") == 0
    assert "vsim_pipeline_fps" not in down
