"""Path deviation v1/v2: the discrete Fréchet distance between each track's path and a reference path.

A track's path is its anchor point on every frame it was seen. The Fréchet distance is the usual
dynamic programme over (track point i, reference point j); a track keeps only the programme's last
row, so each frame costs O(len(reference_path)) per track instead of recomputing the whole matrix
(the reference recomputes it recursively, which also hits Python's recursion limit on long tracks).
A reference path that changes restarts every track's distance. Each output detection carries a
``path_deviation`` data field.

The reference's v1 fails on every frame (it hands supervision a string where it wants a Position);
ours works, for v1 as for v2.
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.tracked import anchor, points, require_tracked, with_fields
from services.worker.workflows.values import PATH_DEVIATION, VideoMetadata, WorkflowImage


def frechet_row(previous: np.ndarray | None, point: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The Fréchet programme's row for a path extended by ``point`` (``previous``: the row before it).

    Entry j is the discrete Fréchet distance between the path so far and ``reference[: j + 1]``.
    """
    distances = np.linalg.norm(reference - point, axis=1)
    row: np.ndarray = np.empty_like(distances)
    for j, distance in enumerate(distances.tolist()):
        if previous is None:
            reach = row[j - 1] if j else 0.0
        elif j == 0:
            reach = previous[0]
        else:
            reach = min(previous[j], previous[j - 1], row[j - 1])
        row[j] = max(distance, reach)
    return row


class _PathDeviation:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._block = step.type
        self._reference: np.ndarray | None = None
        self._rows: dict[int, np.ndarray] = {}  # tracker id -> last row of its Fréchet programme

    def _deviations(self, detections: sv.Detections, triggering_anchor: str, reference_path: Any
                    ) -> dict[str, Any]:
        tracker_ids = require_tracked(detections, self._block)
        reference = points(reference_path, 1, "reference_path", self._block)
        if self._reference is None or not np.array_equal(reference, self._reference):
            self._reference, self._rows = reference, {}
        position = anchor(triggering_anchor, self._block)
        anchors = detections.get_anchors_coordinates(position) if len(detections) else np.zeros((0, 2))
        deviations = np.zeros(len(detections), dtype=np.float64)
        for i, (tracker_id, point) in enumerate(zip(tracker_ids.tolist(), anchors, strict=True)):
            row = frechet_row(self._rows.get(tracker_id), np.asarray(point, dtype=np.float64), reference)
            self._rows[tracker_id] = row
            deviations[i] = row[-1]
        return {"path_deviation_detections": with_fields(detections, **{PATH_DEVIATION: deviations})}


class PathDeviationV1(_PathDeviation):
    """v1: the video metadata comes in its own ``metadata`` input (used by the reference only as a key)."""

    def run(self, metadata: VideoMetadata, detections: sv.Detections, triggering_anchor: str,
            reference_path: Any) -> dict[str, Any]:
        return self._deviations(detections, triggering_anchor, reference_path)


class PathDeviationV2(_PathDeviation):
    def run(self, image: WorkflowImage, detections: sv.Detections, triggering_anchor: str,
            reference_path: Any) -> dict[str, Any]:
        return self._deviations(detections, triggering_anchor, reference_path)
