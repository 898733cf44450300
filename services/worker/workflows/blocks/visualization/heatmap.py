"""heatmap_visualization: heat accumulated over a video's frames where its detections were, drawn as
a blurred hue overlay (``low_hue`` where little heat, ``top_hue`` where the most) at ``opacity``.

supervision's ``HeatMapAnnotator`` keeps the heat, so the heat is per annotator configuration of
this block instance, hence per video source (the reference keys it by ``metadata.video_identifier``;
here ``metadata`` is accepted and not needed). With ``ignore_stationary``, tracked detections add
heat only when they move (:class:`MotionFilter`); untracked detections always add heat.
"""

from typing import Any, NamedTuple

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.timing import video_seconds
from services.worker.workflows.blocks.video.tracked import subset
from services.worker.workflows.blocks.visualization.annotators import anchor
from services.worker.workflows.blocks.visualization.base import PredictionsVisualization
from services.worker.workflows.values import VideoMetadata, WorkflowImage

STALE_SECONDS = 60.0  # a track's position not recorded anew for this long (video time) is forgotten
CLEANUP_EVERY_SECONDS = 10.0


class _Recorded(NamedTuple):
    x: float
    y: float
    seconds: float


class MotionFilter:
    """Which tracked detections moved at least ``threshold`` pixels since their last recorded position.

    A tracker id seen for the first time is recorded and left out; one that moved that far is kept
    and recorded at its new position; one that did not is left out and keeps its record (so slow
    motion adds up). Memory is bounded by video time (``video_seconds``: frame_number / fps for a
    file, capture timestamps for a stream), not by the reference's wall clock, so a file decoded
    faster than real time forgets the same tracks: every ``CLEANUP_EVERY_SECONDS`` the records older
    than ``STALE_SECONDS`` are dropped, and a long stream keeps only its recent tracks.
    """

    def __init__(self) -> None:
        self._recorded: dict[int, _Recorded] = {}
        self._last_cleanup: float | None = None

    def moving(self, detections: sv.Detections, position: sv.Position, threshold: float,
               seconds: float) -> sv.Detections:
        """The detections that moved (all of them when they have no tracker ids)."""
        if detections.tracker_id is None:
            return detections
        self._forget_stale(seconds)
        anchors = detections.get_anchors_coordinates(position).tolist()
        rows = []
        for row, (tracker_id, (x, y)) in enumerate(zip(detections.tracker_id.tolist(), anchors, strict=True)):
            last = self._recorded.get(tracker_id)
            if last is None or np.hypot(x - last.x, y - last.y) >= threshold:
                self._recorded[tracker_id] = _Recorded(x, y, seconds)
                if last is not None:
                    rows.append(row)
        return subset(detections, rows)

    def _forget_stale(self, seconds: float) -> None:
        if self._last_cleanup is None:
            self._last_cleanup = seconds
        if seconds - self._last_cleanup < CLEANUP_EVERY_SECONDS:
            return
        self._recorded = {tracker_id: recorded for tracker_id, recorded in self._recorded.items()
                          if seconds - recorded.seconds <= STALE_SECONDS}
        self._last_cleanup = seconds


class Heatmap(PredictionsVisualization):
    """The heat of the (moving) detections' ``position`` anchors: a disc of ``radius`` each per frame."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        super().__init__(step, env)
        self._motion = MotionFilter()

    def build(self, position: str, opacity: float, radius: int, kernel_size: int, top_hue: int,
              low_hue: int) -> sv.HeatMapAnnotator:
        return sv.HeatMapAnnotator(position=anchor(position), opacity=opacity, radius=radius,
                                   kernel_size=kernel_size, top_hue=top_hue, low_hue=low_hue)

    def run(self, image: WorkflowImage, predictions: sv.Detections, copy_image: bool = True,
            metadata: VideoMetadata | None = None, ignore_stationary: bool = True, motion_threshold: int = 25,
            **style: Any) -> dict[str, Any]:
        del metadata  # this instance serves one video source: its heat and tracks are that source's
        if ignore_stationary:
            predictions = self._motion.moving(predictions, anchor(style["position"]), motion_threshold,
                                              video_seconds(image.video))
        return super().run(image, predictions, copy_image, **style)
