"""The engine's cumulative metrics: latency histograms per source and the report's ``metrics`` section.

The watchdog feeds :class:`SourceHistograms` once per processed frame (the same three durations as
its latency report, but every frame in buckets instead of a 64-frame average); :func:`metrics_section`
adds the counters the sources and sinks keep anyway. The schema is ``services.core.metrics``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.core.metrics import (
    LATENCY_BUCKETS,
    SINK_ERROR,
    SINK_QUEUE_FULL,
    SINK_SERVER_LOST,
    HistogramCounts,
    LatencyHistogram,
    PipelineMetrics,
    SinkMetrics,
    SourceMetrics,
)
from services.worker.engine.sinks.buffered import SinkStats
from services.worker.engine.source import SourceStats


class SourceHistograms:
    """One source's latency histograms and processed-frame count. Not thread-safe: the watchdog locks."""

    def __init__(self) -> None:
        self.decode = LatencyHistogram(LATENCY_BUCKETS)
        self.inference = LatencyHistogram(LATENCY_BUCKETS)
        self.frame_age = LatencyHistogram(LATENCY_BUCKETS)
        self.frames_processed = 0

    def observe(self, decoding: float, inference: float, e2e: float) -> None:
        self.decode.observe(decoding)
        self.inference.observe(inference)
        self.frame_age.observe(e2e)
        self.frames_processed += 1

    def snapshot(self) -> "HistogramSnapshot":
        return HistogramSnapshot(self.decode.snapshot(), self.inference.snapshot(), self.frame_age.snapshot(),
                                 self.frames_processed)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    decode: HistogramCounts
    inference: HistogramCounts
    frame_age: HistogramCounts
    frames_processed: int


def metrics_section(
    histograms: Sequence[HistogramSnapshot],
    sources: Sequence[SourceStats],
    sinks: Sequence[SinkStats],
    inference_errors: int,
    step_errors: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The report's ``metrics`` section (JSON-ready); ``histograms`` and ``sources`` are by source id."""
    return PipelineMetrics(
        buckets=list(LATENCY_BUCKETS),
        sources=[_source(source_id, snapshot, stats)
                 for source_id, (snapshot, stats) in enumerate(zip(histograms, sources, strict=True))],
        sinks=[SinkMetrics(name=sink.name, delivered=sink.delivered, replayed=sink.replayed,
                           dropped={SINK_QUEUE_FULL: sink.dropped_queue_full, SINK_ERROR: sink.dropped_sink_error,
                                    **({SINK_SERVER_LOST: sink.lost} if sink.lost else {})})
               for sink in sinks],
        inference_errors=inference_errors,
        workflow_step_errors=dict(step_errors or {}),
    ).model_dump(mode="json")


def _source(source_id: int, snapshot: HistogramSnapshot, stats: SourceStats) -> SourceMetrics:
    return SourceMetrics(
        source_id=source_id,
        frames_decoded=stats.frames_decoded,
        frames_processed=snapshot.frames_processed,
        reconnects=stats.reconnects,
        frames_dropped=dict(stats.frames_dropped),
        decode=snapshot.decode,
        inference=snapshot.inference,
        frame_age=snapshot.frame_age,
    )
