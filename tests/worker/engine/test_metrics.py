"""The engine's cumulative metrics: every frame's latencies land in its source's histograms, and the
report's section carries them with the sources' and sinks' counters in the shared schema."""

from services.core.metrics import LATENCY_BUCKETS, PipelineMetrics
from services.worker.engine.metrics import metrics_section
from services.worker.engine.sinks.buffered import SinkStats
from services.worker.engine.source import SourceStats
from services.worker.engine.watchdog import FrameLatency, Watchdog


def test_every_frame_counts_in_its_sources_histograms_cumulatively() -> None:
    watchdog = Watchdog(source_count=2)
    for _ in range(100):  # more than the 64-frame latency window: histograms keep everything
        watchdog.on_frame(0, FrameLatency(decoding=0.002, inference=0.04, e2e=0.05))
    watchdog.on_frame(1, FrameLatency(decoding=0.3, inference=0.04, e2e=2.0))
    first, second = watchdog.histograms()
    assert first.frames_processed == 100 and second.frames_processed == 1
    assert first.decode.count == first.inference.count == first.frame_age.count == 100
    bounds = list(LATENCY_BUCKETS)
    assert first.decode.counts[bounds.index(0.0025)] == 100  # 0.002 is in (0.001, 0.0025]
    assert second.frame_age.counts[bounds.index(2.5)] == 1
    watchdog.on_frame(0, FrameLatency(decoding=0.002, inference=0.04, e2e=0.05))
    assert watchdog.histograms()[0].decode.count == 101


def test_the_section_has_the_sources_and_sinks_counters_in_the_shared_schema() -> None:
    watchdog = Watchdog(source_count=1)
    watchdog.on_frame(0, FrameLatency(decoding=0.01, inference=0.05, e2e=0.07))
    section = metrics_section(
        watchdog.histograms(),
        [SourceStats(frames_decoded=12, frames_dropped={"max_fps": 10, "buffer_full": 1}, reconnects=3)],
        [SinkStats("redis_stream", delivered=1, dropped_queue_full=2, dropped_sink_error=4, queued=0, healthy=False)],
        inference_errors=5,
    )
    parsed = PipelineMetrics.model_validate(section)
    assert parsed.buckets == list(LATENCY_BUCKETS)
    (source,) = parsed.sources
    assert (source.source_id, source.frames_decoded, source.frames_processed, source.reconnects) == (0, 12, 1, 3)
    assert source.frames_dropped == {"max_fps": 10, "buffer_full": 1}
    assert source.frame_age is not None and source.frame_age.sum == 0.07
    assert parsed.sinks[0].dropped == {"queue_full": 2, "sink_error": 4}
    assert parsed.inference_errors == 5
