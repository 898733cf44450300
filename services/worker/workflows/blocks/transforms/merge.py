"""Detections merge: all of an image's detections as one box around them.

As the reference: the box is the union of the boxes, its confidence the lowest of theirs, its class
``class_name`` with class id 0, and it gets a new detection id; no detections give none. Unlike the
reference, which builds the merged detection without lineage (no parent id, no image size), it keeps the
image it lies on, so outputs, crops and drawing place it as any other.
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.detection.detections import detection_ids
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.lineage import LINEAGE, copy_of


class DetectionsMerge:
    """``roboflow_core/detections_merge@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, predictions: sv.Detections, class_name: str = "merged_detection") -> dict[str, Any]:
        if len(predictions) == 0:
            return {"predictions": copy_of(predictions, [])}
        weakest = 0 if predictions.confidence is None else int(np.argmin(predictions.confidence))
        merged = copy_of(predictions, [weakest])  # the lowest confidence, and the lineage all of them share
        boxes = predictions.xyxy
        merged.xyxy = np.array([[boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()]],
                               dtype=boxes.dtype)
        merged.class_id = np.zeros(1, dtype=np.int64)
        merged.mask = None
        merged.tracker_id = None
        kept = (*LINEAGE, values.INFERENCE_ID, values.PREDICTION_TYPE)  # where it lies, which model's
        merged.data = {key: value for key, value in merged.data.items() if key in kept}
        merged.data[values.CLASS_NAME] = np.array([class_name], dtype=object)
        merged.data[values.DETECTION_ID] = np.array(detection_ids(1), dtype=object)
        return {"predictions": merged}

