"""Collects what the pipeline reports about itself and builds the reference's status report.

Keeps the last 512 status updates above DEBUG, per-source latencies over the last 64 frames and
the timestamps of the last 64 inference rounds (for throughput), plus every frame's latencies in
cumulative histograms for the metrics (``metrics``). Thread-safe: sources, the pipeline's stages
and the control thread all call in.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from services.worker.engine.events import StatusUpdate
from services.worker.engine.metrics import HistogramSnapshot, SourceHistograms

UPDATES_KEPT = 512
LATENCY_WINDOW = 64


@dataclass(frozen=True, slots=True)
class FrameLatency:
    decoding: float  # decode -> inference start (waiting in buffers + pre-processing)
    inference: float  # inference start -> post-processed
    e2e: float  # decode -> handed to the sinks


class Watchdog:
    def __init__(self, source_count: int) -> None:
        self._lock = threading.Lock()
        self._updates: deque[StatusUpdate] = deque(maxlen=UPDATES_KEPT)
        self._latencies = [deque[FrameLatency](maxlen=LATENCY_WINDOW) for _ in range(source_count)]
        self._histograms = [SourceHistograms() for _ in range(source_count)]
        self._frames: deque[tuple[float, int]] = deque(maxlen=LATENCY_WINDOW)
        self.frames_processed = 0
        self.inference_errors = 0
        self._step_errors: dict[str, int] = {}

    def on_update(self, update: StatusUpdate) -> None:
        if update.severity <= logging.DEBUG:
            return
        with self._lock:
            self._updates.append(update)

    def on_frame(self, source_id: int, latency: FrameLatency) -> None:
        with self._lock:
            self._latencies[source_id].append(latency)
            self._histograms[source_id].observe(latency.decoding, latency.inference, latency.e2e)

    def on_round(self, frames: int, at: float | None = None) -> None:
        with self._lock:
            self._frames.append((time.monotonic() if at is None else at, frames))
            self.frames_processed += frames

    def on_inference_error(self) -> None:
        with self._lock:
            self.inference_errors += 1

    def on_step_errors(self, steps: Sequence[str]) -> None:
        """Workflow steps that failed on one frame (the frame itself was still processed)."""
        with self._lock:
            for step in steps:
                self._step_errors[step] = self._step_errors.get(step, 0) + 1

    def step_errors(self) -> dict[str, int]:
        with self._lock:
            return dict(self._step_errors)

    def throughput(self) -> float:
        """Frames per second over the last rounds; 0 with fewer than two rounds."""
        with self._lock:
            if len(self._frames) < 2:
                return 0.0
            span = self._frames[-1][0] - self._frames[0][0]
            frames = sum(count for _, count in list(self._frames)[1:])
        return frames / span if span > 0 else 0.0

    def latency_reports(self) -> list[dict[str, Any]]:
        with self._lock:
            windows = [list(window) for window in self._latencies]
        return [_latency_report(source_id, window) for source_id, window in enumerate(windows)]

    def histograms(self) -> list[HistogramSnapshot]:
        """Every frame's latencies since the start, per source (cumulative: for Prometheus)."""
        with self._lock:
            return [histograms.snapshot() for histograms in self._histograms]

    def status_updates(self) -> list[dict[str, Any]]:
        with self._lock:
            return [update.to_dict() for update in self._updates]


def _latency_report(source_id: int, window: list[FrameLatency]) -> dict[str, Any]:
    if not window:
        return {"source_id": source_id, "frame_decoding_latency": None, "inference_latency": None,
                "e2e_latency": None}
    return {
        "source_id": source_id,
        "frame_decoding_latency": fmean(item.decoding for item in window),
        "inference_latency": fmean(item.inference for item in window),
        "e2e_latency": fmean(item.e2e for item in window),
    }
