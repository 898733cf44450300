"""The metrics section's histogram: Prometheus ``le`` buckets, cumulative rendering, a schema that
refuses counts that do not match its bounds."""

import pytest
from pydantic import ValidationError

from services.core.metrics import LATENCY_BUCKETS, HistogramCounts, LatencyHistogram, PipelineMetrics, SourceMetrics


def test_an_observation_on_a_bound_counts_in_that_bucket() -> None:
    histogram = LatencyHistogram((0.1, 1.0))
    for seconds in (0.0, 0.1, 0.5, 1.0, 1.5, 100.0):
        histogram.observe(seconds)
    snapshot = histogram.snapshot()
    assert snapshot.counts == [2, 2, 2]  # (<= 0.1), (0.1, 1.0], (1.0, +Inf)
    assert snapshot.count == 6
    assert snapshot.sum == pytest.approx(103.1)


def test_counts_accumulate_and_snapshots_do_not_move() -> None:
    histogram = LatencyHistogram()
    histogram.observe(0.02)
    first = histogram.snapshot()
    histogram.observe(0.02)
    histogram.observe(3.0)
    assert first.count == 1
    assert histogram.snapshot().count == 3
    assert len(histogram.snapshot().counts) == len(LATENCY_BUCKETS) + 1


def test_cumulative_buckets_are_prometheus_le_counts_ending_with_inf() -> None:
    counts = HistogramCounts(counts=[1, 0, 3, 2], sum=9.0)
    assert counts.cumulative((0.1, 0.5, 2.0)) == [("0.1", 1.0), ("0.5", 1.0), ("2.0", 4.0), ("+Inf", 6.0)]
    with pytest.raises(ValueError, match="4 counts for 2 bucket bounds"):
        counts.cumulative((0.1, 0.5))


def test_bounds_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        LatencyHistogram((1.0, 0.5))


def test_the_schema_refuses_counts_that_do_not_match_the_bounds() -> None:
    wrong = HistogramCounts(counts=[1, 2], sum=0.1)
    with pytest.raises(ValidationError, match="do not match"):
        PipelineMetrics(buckets=[0.1, 1.0], sources=[SourceMetrics(source_id=0, decode=wrong)])


def test_the_section_round_trips_through_json_and_ignores_unknown_fields() -> None:
    histogram = LatencyHistogram()
    histogram.observe(0.3)
    section = PipelineMetrics(sources=[SourceMetrics(source_id=0, frames_decoded=5, frame_age=histogram.snapshot(),
                                                     frames_dropped={"max_fps": 4})]).model_dump(mode="json")
    section["added_by_a_newer_worker"] = 1
    parsed = PipelineMetrics.model_validate(section)
    assert parsed.sources[0].frame_age is not None and parsed.sources[0].frame_age.count == 1
    assert parsed.sources[0].frames_dropped == {"max_fps": 4}
