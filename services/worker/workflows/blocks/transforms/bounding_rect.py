"""bounding_rect@v1: each segmented detection replaced by the minimum-area rotated rectangle around its mask.

Per detection: the mask's outer outlines (supervision's ``mask_to_polygons``: OpenCV's external contours of at
least 3 points), the one with the most vertices (the reference's "largest"), OpenCV's ``minAreaRect`` of it and
that rectangle's 4 corners truncated to whole pixels (as the reference). The detection's mask becomes the filled
rectangle and its box the rectangle's corners' bounds; it gains ``rect`` (the corners), ``width``, ``height`` and
``angle`` (minAreaRect's sides and angle in degrees). Every other field is kept.

Detections without masks (an object detection model's) fail the step, as in the reference; so does a detection
whose mask has no outline of 3 points or more (an empty mask). Unlike the reference, which stores the rectangle's
numbers as float16 (whole-pixel steps past 2048), they are kept at full precision.
"""

from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.tracked import subset
from services.worker.workflows.values import RECT, RECT_ANGLE, RECT_HEIGHT, RECT_WIDTH


def minimum_rectangle(mask: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """The minimum-area rectangle of the mask's outline with the most vertices: its corners (4 x 2 ints), its
    width, height and angle as OpenCV gives them."""
    outlines = sv.mask_to_polygons(np.asarray(mask, dtype=bool))
    if not outlines:
        raise ValueError("bounding_rect: a detection's mask has no outline (it is empty or thinner than 3 points)")
    outline = max(outlines, key=len)
    rectangle = cv2.minAreaRect(outline.astype(np.int32))
    corners = cv2.boxPoints(rectangle).astype(np.int64)  # truncated toward zero, as the reference
    (width, height), angle = rectangle[1], rectangle[2]
    return corners, float(width), float(height), float(angle)


class BoundingRect:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, predictions: sv.Detections) -> dict[str, Any]:
        if predictions.mask is None:
            raise ValueError("bounding_rect: the detections have no masks; it takes an instance segmentation "
                             "model's predictions")
        masks = np.asarray(predictions.mask, dtype=bool)
        count = len(predictions)
        height, width = masks.shape[1:3]
        corners = np.zeros((count, 4, 2), dtype=np.float64)
        sides = np.zeros((count, 2), dtype=np.float64)
        angles = np.zeros(count, dtype=np.float64)
        rectangles = np.zeros((count, height, width), dtype=bool)
        boxes = np.zeros((count, 4), dtype=np.float32)
        for index in range(count):
            points, sides[index, 0], sides[index, 1], angles[index] = minimum_rectangle(masks[index])
            corners[index] = points
            rectangles[index] = sv.polygon_to_mask(points, (width, height)).astype(bool)
            boxes[index] = sv.polygon_to_xyxy(points)
        result = subset(predictions, np.arange(count))
        result.xyxy = boxes
        result.mask = rectangles
        result.data[RECT] = corners
        result.data[RECT_WIDTH] = sides[:, 0]
        result.data[RECT_HEIGHT] = sides[:, 1]
        result.data[RECT_ANGLE] = angles
        return {"detections_with_rect": result}
