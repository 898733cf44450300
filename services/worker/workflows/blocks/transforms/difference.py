"""``detections_difference@v1``: which detections of a "before" set (``reference_predictions``) were removed,
which persisted into an "after" set (``candidate_predictions``), and which are new.

As the reference: each pair costs ``spatial_weight`` times a spatial term (``1 - IoU`` when the boxes overlap,
``1 +`` the distance of their centres over the diagonal of the box enclosing both when they do not, so any
overlap is cheaper than none), plus ``class_mismatch_penalty`` when the classes differ (class names when both
sides have them, else class ids; nothing when neither), or never matched with ``class_strict``. Pairs are
taken cheapest first, each detection at most once, up to ``reject_cost``. ``verified``: the reference set was
not empty and at least ``min_removed_to_verify`` of it was removed.

On a stream the "before" set is typically a frame_delay of the same detections (what was there N frames ago).
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.tracked import subset
from services.worker.workflows.values import CLASS_NAME


def _centres(boxes: np.ndarray) -> np.ndarray:
    centres: np.ndarray = (boxes[:, :2] + boxes[:, 2:]) / 2
    return centres


def spatial_costs(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """(len(reference), len(candidate)) spatial terms of the boxes: in [0, 1) overlapping, [1, 2) apart."""
    iou = sv.box_iou_batch(reference, candidate)
    distance = np.linalg.norm(_centres(reference)[:, None, :] - _centres(candidate)[None, :, :], axis=2)
    low = np.minimum(reference[:, None, :2], candidate[None, :, :2])
    high = np.maximum(reference[:, None, 2:], candidate[None, :, 2:])
    diagonal = np.linalg.norm(high - low, axis=2)
    apart = 1.0 + np.divide(distance, diagonal, out=np.zeros_like(distance), where=diagonal > 0)
    result: np.ndarray = np.where(iou > 0, 1.0 - iou, apart)
    return result


def _labels(detections: sv.Detections, key: str | None) -> Any:
    """The detections' class names (``key``), or their class ids (None)."""
    return detections.data.get(key) if key is not None else detections.class_id


def class_mismatches(reference: sv.Detections, candidate: sv.Detections) -> np.ndarray | None:
    """Whether each pair's classes differ: by class name when both sides have names, else by class id; None
    when the classes cannot be compared."""
    for key in (CLASS_NAME, None):
        ours, theirs = _labels(reference, key), _labels(candidate, key)
        if ours is not None and theirs is not None:
            mismatch: np.ndarray = np.asarray(ours)[:, None] != np.asarray(theirs)[None, :]
            return mismatch
    return None


def greedy_pairs(costs: np.ndarray, reject_cost: float) -> list[tuple[int, int]]:
    """One-to-one (reference, candidate) pairs, cheapest first (ties in row order), none costing more than
    ``reject_cost``: the reference's greedy assignment."""
    order = np.argsort(costs, axis=None, kind="stable")
    taken_rows: set[int] = set()
    taken_columns: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for flat in order:
        row, column = divmod(int(flat), costs.shape[1])
        cost = costs[row, column]
        if not np.isfinite(cost) or cost > reject_cost:
            break
        if row not in taken_rows and column not in taken_columns:
            pairs.append((row, column))
            taken_rows.add(row)
            taken_columns.add(column)
    return pairs


class DetectionsDifference:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, reference_predictions: sv.Detections, candidate_predictions: sv.Detections,
            spatial_weight: float = 0.4, class_mismatch_penalty: float = 0.15, reject_cost: float = 0.75,
            class_strict: bool = False, min_removed_to_verify: int = 1) -> dict[str, Any]:
        reference, candidate = reference_predictions, candidate_predictions
        pairs: list[tuple[int, int]] = []
        if len(reference) and len(candidate):
            costs = spatial_weight * spatial_costs(np.asarray(reference.xyxy, dtype=np.float64),
                                                   np.asarray(candidate.xyxy, dtype=np.float64))
            mismatch = class_mismatches(reference, candidate)
            if mismatch is not None:
                costs = np.where(mismatch, np.inf, costs) if class_strict else costs + class_mismatch_penalty * mismatch
            pairs = greedy_pairs(costs, float(reject_cost))
        matched_reference = {row for row, _ in pairs}
        matched_candidate = {column for _, column in pairs}
        removed = [row for row in range(len(reference)) if row not in matched_reference]
        persisted = sorted(matched_candidate)
        new = [column for column in range(len(candidate)) if column not in matched_candidate]
        return {
            "removed_detections": subset(reference, removed),
            "persisted_detections": subset(candidate, persisted),
            "new_detections": subset(candidate, new),
            "removed_count": len(removed),
            "new_count": len(new),
            "verified": len(reference) > 0 and len(removed) >= min_removed_to_verify,
        }
