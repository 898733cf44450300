"""Detection offset: each box grown by a margin (padding before a crop, say), clipped to its image.

As the reference: ``offset_width`` / ``offset_height`` are the total growth, half on each side
(``Pixels``: ``offset // 2`` pixels a side; ``Percent (%)``: ``int(image side * offset / 200)``), and each
grown detection gets a new detection id. Unlike the reference, which sets each grown detection's
``parent_id`` to the id of the detection it came from and so loses the image it lies on (its own TODO,
roboflow/inference issue 380), the detections keep their image lineage: crops, stitching and outputs in
parent coordinates still place them.
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.detection.detections import detection_ids
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.lineage import copy_of

PERCENT = "Percent (%)"


class DetectionOffset:
    """``roboflow_core/detection_offset@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, predictions: sv.Detections, offset_width: int, offset_height: int,
            units: str = "Pixels") -> dict[str, Any]:
        if len(predictions) == 0:
            return {"predictions": predictions}
        grown = copy_of(predictions)
        heights, widths = _image_sizes(predictions).T
        if units == PERCENT:
            pad_x = (widths * offset_width / 200).astype(np.int64)
            pad_y = (heights * offset_height / 200).astype(np.int64)
        else:
            pad_x = np.full(len(predictions), offset_width // 2)
            pad_y = np.full(len(predictions), offset_height // 2)
        x1, y1, x2, y2 = predictions.xyxy.T
        grown.xyxy = np.stack([np.maximum(0, x1 - pad_x), np.maximum(0, y1 - pad_y),
                               np.minimum(widths, x2 + pad_x), np.minimum(heights, y2 + pad_y)],
                              axis=1).astype(predictions.xyxy.dtype)
        grown.data[values.DETECTION_ID] = np.array(detection_ids(len(grown)), dtype=object)
        return {"predictions": grown}


def _image_sizes(detections: sv.Detections) -> np.ndarray:
    """(N, 2) height, width of the image each detection lies on."""
    if values.IMAGE_DIMENSIONS in detections.data:
        return np.asarray(detections.data[values.IMAGE_DIMENSIONS], dtype=np.int64).reshape(-1, 2)
    size = detections.metadata.get(values.IMAGE_SIZE)
    if size is None:
        raise ValueError("detection_offset needs detections that know their image's size (a model step's)")
    return np.tile(np.asarray(size, dtype=np.int64), (len(detections), 1))
