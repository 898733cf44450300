"""mask_area_measurement@v1: each detection's area, in px² and in real-world units².

A detection with a mask measures its mask's set pixels (a hole in it is not counted); one without a mask, or whose
mask is empty, measures its box (width x height). ``area_converted`` is ``area_px / pixels_per_unit²`` (pixels per
unit of length, e.g. per cm, squared); a ``pixels_per_unit`` of 0 or less leaves the area in px², as the reference.
The detections come back with both as fields (``area_px``, ``area_converted``); unlike the reference, which writes
them into its input, the input detections are left as they are.
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.blocks import is_number
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.tracked import with_fields
from services.worker.workflows.values import AREA_CONVERTED, AREA_PX


def detection_areas(detections: sv.Detections) -> np.ndarray:
    """Each detection's area in px²: its mask's set pixels, or its box's area where it has no (or an empty) mask."""
    boxes = np.asarray(detections.xyxy, dtype=np.float64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    if detections.mask is not None and len(detections):
        masks = np.asarray(detections.mask)
        pixels = np.count_nonzero(masks.reshape(len(masks), -1), axis=1).astype(np.float64)
        areas = np.where(pixels > 0, pixels, areas)
    return areas


class MaskAreaMeasurement:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, predictions: sv.Detections, pixels_per_unit: Any = 1.0) -> dict[str, Any]:
        if not is_number(pixels_per_unit):
            raise ValueError(f"mask_area_measurement: pixels_per_unit must be a number, got {pixels_per_unit!r}")
        areas = detection_areas(predictions)
        scale = float(pixels_per_unit) ** 2 if pixels_per_unit > 0 else 1.0
        return {"predictions": with_fields(predictions, **{AREA_PX: areas, AREA_CONVERTED: areas / scale})}
