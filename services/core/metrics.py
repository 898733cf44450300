"""The ``metrics`` section of a pipeline's status report: latency buckets, its schema, and the histogram that fills it.

Pipeline tasks are short-lived processes behind a queue, so Prometheus cannot scrape them. Each task
therefore keeps cumulative numbers since it started (bucket counts, frames, drops, reconnects) and
stores them in the status report it already writes to Redis every second; the API renders every
live pipeline's section at scrape time. A restarted pipeline is a new process whose numbers start at
zero again, which Prometheus reads as an ordinary counter reset. The report carries its own bucket
bounds, so an API and a worker of different versions still agree on what the counts mean.

Written by the worker (``services.worker.engine``), read by the API. Plain data and arithmetic.
"""

from bisect import bisect_left
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Seconds. From a millisecond (a decode on a GPU host) up to a minute (a file read WAIT/LAZY runs
# seconds behind on purpose: its frames wait in the 64-frame buffer).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

# Why results (whole rounds) were lost on their way to a sink; frames have their own reasons
# (``services.worker.engine.frame_buffer`` and ``source``).
SINK_QUEUE_FULL = "queue_full"
SINK_ERROR = "sink_error"
# Written and acknowledged, then lost by the server: a Sentinel failover to a replica that had not
# received them yet (or a Redis restarted without its data), beyond what the sink could replay.
SINK_SERVER_LOST = "server_lost"


class HistogramCounts(BaseModel):
    """Observations per bucket (NOT cumulative, the last one is +Inf) and their sum."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    counts: list[int]
    sum: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self, bounds: Sequence[float]) -> list[tuple[str, float]]:
        """Prometheus buckets: ``(le, observations <= le)`` for each bound, then ``("+Inf", count)``."""
        if len(self.counts) != len(bounds) + 1:
            raise ValueError(f"{len(self.counts)} counts for {len(bounds)} bucket bounds")
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(bounds, self.counts, strict=False):
            running += count
            buckets.append((_le(bound), float(running)))
        buckets.append(("+Inf", float(running + self.counts[-1])))
        return buckets


class LatencyHistogram:
    """Counts durations into fixed buckets (Prometheus ``le`` semantics). Not thread-safe: the owner locks."""

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("bucket bounds must be strictly increasing")
        self._bounds = tuple(bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self._bounds, seconds)] += 1  # the first bound >= seconds
        self._sum += seconds

    def snapshot(self) -> HistogramCounts:
        return HistogramCounts(counts=list(self._counts), sum=round(self._sum, 6))


class SourceMetrics(BaseModel):
    """One video source, cumulative since the task started."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    source_id: int
    frames_decoded: int = 0
    frames_processed: int = 0  # handed to the sinks
    reconnects: int = 0  # reconnect attempts of a live source
    frames_dropped: dict[str, int] = Field(default_factory=dict)  # by reason
    # decode -> inference start (the reference's frame_decoding_latency: buffer wait + pre-processing)
    decode: HistogramCounts | None = None
    inference: HistogramCounts | None = None  # inference start -> post-processed
    frame_age: HistogramCounts | None = None  # decode -> handed to the sinks (end to end)


class SinkMetrics(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    delivered: int = 0  # rounds
    dropped: dict[str, int] = Field(default_factory=dict)  # rounds, by reason (SINK_QUEUE_FULL, SINK_ERROR, ...)
    replayed: int = 0  # rounds the server had lost and the sink wrote again with their original ids


class PipelineMetrics(BaseModel):
    """The report's ``metrics`` section."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    buckets: list[float] = Field(default_factory=lambda: list(LATENCY_BUCKETS))
    sources: list[SourceMetrics] = Field(default_factory=list)
    sinks: list[SinkMetrics] = Field(default_factory=list)
    inference_errors: int = 0
    # Workflow step name -> frames on which that step failed (the frames were still processed).
    workflow_step_errors: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _counts_match_buckets(self) -> "PipelineMetrics":
        for source in self.sources:
            for histogram in (source.decode, source.inference, source.frame_age):
                if histogram is not None and len(histogram.counts) != len(self.buckets) + 1:
                    raise ValueError(f"source {source.source_id}: counts do not match the {len(self.buckets)} buckets")
        return self


def _le(bound: float) -> str:
    """A bound as Prometheus clients write ``le``: ``0.001``, ``1.0``, ``60.0``."""
    return repr(float(bound))
