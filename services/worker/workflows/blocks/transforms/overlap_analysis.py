"""``overlap_analysis@v1``: one record per (reference, candidate) pair of detections whose intersection covers at
least ``min_overlap`` of the reference's area (not symmetric: swap the inputs for the other side's share).

Records are the reference's: ``reference_class``, ``reference_confidence``, ``candidate_class``,
``candidate_confidence``, ``overlap_ratio``, and the two ``detection_id``\\ s when the detections have them, in
reference order then candidate order. The reference measures a detection with a mask by its mask's outline; this
project's models make boxes only, so boxes are measured, and detections that carry masks fail the step rather
than being measured differently.
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import CLASS_NAME, DETECTION_ID


def intersections(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """(len(reference), len(candidate)) areas where each pair of boxes intersects (0 when they do not)."""
    low = np.maximum(reference[:, None, :2], candidate[None, :, :2])
    high = np.minimum(reference[:, None, 2:], candidate[None, :, 2:])
    sides = np.clip(high - low, 0, None)
    result: np.ndarray = sides[..., 0] * sides[..., 1]
    return result


def _item(values: Any, index: int) -> Any:
    """One detection's value (a plain Python value), None when the field is absent."""
    if values is None:
        return None
    value = values[index]
    return value.item() if isinstance(value, np.generic) else value


def _boxes(detections: sv.Detections, field: str) -> np.ndarray:
    if detections.mask is not None:
        raise ValueError(f"{field}: detections with masks are not supported (this worker measures boxes only)")
    return np.asarray(detections.xyxy, dtype=np.float64).reshape(-1, 4)


class OverlapAnalysis:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, reference_predictions: sv.Detections, candidate_predictions: sv.Detections,
            min_overlap: float = 0.1) -> dict[str, Any]:
        reference, candidate = reference_predictions, candidate_predictions
        ours, theirs = _boxes(reference, "reference_predictions"), _boxes(candidate, "candidate_predictions")
        if not len(ours) or not len(theirs):
            return {"overlaps": []}
        shared = intersections(ours, theirs)
        areas = (ours[:, 2] - ours[:, 0]) * (ours[:, 3] - ours[:, 1])
        records = []
        for row, column in zip(*np.nonzero((shared > 0) & (areas[:, None] > 0)), strict=True):
            ratio = float(shared[row, column] / areas[row])
            if ratio < min_overlap:
                continue
            record = {"reference_class": _item(reference.data.get(CLASS_NAME), row),
                      "reference_confidence": _item(reference.confidence, row),
                      "candidate_class": _item(candidate.data.get(CLASS_NAME), column),
                      "candidate_confidence": _item(candidate.confidence, column),
                      "overlap_ratio": ratio}
            for side, detections, index in (("reference", reference, row), ("candidate", candidate, column)):
                if DETECTION_ID in detections.data:
                    record[f"{side}_detection_id"] = _item(detections.data[DETECTION_ID], index)
            records.append(record)
        return {"overlaps": records}
