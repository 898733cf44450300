"""Overlap v1: the detections that overlap an instance of a given class (that class itself left out).

"Center Overlap": the detection's box centre lies strictly inside an instance's box. "Any Overlap":
the boxes intersect or touch. Output in input order (the reference's comes in set order).
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.tracked import subset
from services.worker.workflows.values import CLASS_NAME


def _centre_inside(boxes: np.ndarray, containers: np.ndarray) -> np.ndarray:
    """(len(boxes), len(containers)): whether each box's centre lies strictly inside each container."""
    cx = ((boxes[:, 0] + boxes[:, 2]) / 2)[:, None]
    cy = ((boxes[:, 1] + boxes[:, 3]) / 2)[:, None]
    x1, y1, x2, y2 = (containers[None, :, k] for k in range(4))
    result: np.ndarray = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
    return result


def _intersecting(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(len(boxes), len(others)): whether the boxes intersect or touch."""
    a = boxes[:, None, :]
    b = others[None, :, :]
    result: np.ndarray = ~((a[..., 2] < b[..., 0]) | (a[..., 0] > b[..., 2])
                           | (a[..., 3] < b[..., 1]) | (a[..., 1] > b[..., 3]))
    return result


class OverlapV1:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, predictions: sv.Detections, overlap_class_name: str,
            overlap_type: str = "Center Overlap") -> dict[str, Any]:
        names = np.asarray(predictions.data.get(CLASS_NAME, [None] * len(predictions)), dtype=object)
        is_instance = names == overlap_class_name
        boxes = np.asarray(predictions.xyxy, dtype=np.float64).reshape(-1, 4)
        others = np.flatnonzero(~is_instance)
        containers = boxes[is_instance]
        if len(others) == 0 or len(containers) == 0:
            return {"overlaps": subset(predictions, [])}
        test = _centre_inside if overlap_type == "Center Overlap" else _intersecting
        hits = test(boxes[others], containers).any(axis=1)
        return {"overlaps": subset(predictions, others[hits])}
