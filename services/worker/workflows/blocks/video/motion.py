"""Motion detection v1: what moves in a source's frames, by background subtraction (OpenCV's MOG2).

As the reference: the background model (``history`` frames, ``threshold`` on the squared Mahalanobis
distance, shadows detected) is made on the source's first frame and learns from every frame; with
``suppress_first_detections`` nothing is reported until it has seen ``history`` frames. The foreground
is opened with an elliptical kernel (noise removed), its external contours larger than
``minimum_contour_area`` are the motion, each simplified to 1 % of its perimeter and boxed as a ``motion``
detection (class id 0, confidence 1.0). ``alarm`` is true only on a frame with motion after one without.

``detection_zone`` (a polygon, a JSON string of one, or a selector's value) keeps the motion inside it.
Unlike the reference, which clips each contour to the zone with shapely after the area filter, the
foreground is masked by the filled zone before the contours are found, so the area filter counts only
the part of a region inside the zone.
"""

import uuid
from typing import Any

import cv2
import numpy as np

from services.core.workflows.catalogue.geometry import decoded_zone
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.tracked import points
from services.worker.workflows.values import WorkflowImage, detections_on

MOTION = "motion"  # the class of every detection
_SIMPLIFICATION = 0.01  # of a contour's perimeter: how far its simplified polygon may stray


class MotionDetectionV1:
    """``roboflow_core/motion_detection@v1``: state (background model, frames seen, last motion) per source."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._block = step.type
        self._subtractor: cv2.BackgroundSubtractorMOG2 | None = None
        self._frames_seen = 0  # while suppressing the first detections
        self._last_motion = False
        self._kernels: dict[int, np.ndarray] = {}
        self._zone_mask: tuple[np.ndarray, tuple[int, int], np.ndarray] | None = None  # (zone, frame size, mask)

    def run(self, image: WorkflowImage, minimum_contour_area: int, morphological_kernel_size: int,
            threshold: int, history: int, detection_zone: Any = None,
            suppress_first_detections: bool = True) -> dict[str, Any]:
        zone = self._zone(detection_zone)
        if self._subtractor is None:
            self._subtractor = cv2.createBackgroundSubtractorMOG2(history=int(history), varThreshold=float(threshold),
                                                                  detectShadows=True)
        foreground = self._subtractor.apply(image.image)
        if suppress_first_detections and self._frames_seen < history:
            self._frames_seen += 1
            return _outputs(image, [], motion=False, alarm=False)
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, self._kernel(int(morphological_kernel_size)))
        if zone is not None:
            foreground = cv2.bitwise_and(foreground, self._mask_of(zone, foreground.shape[:2]))
        contours, _ = cv2.findContours(foreground, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        moving = [c for c in contours if len(c) > 2 and cv2.contourArea(c) > minimum_contour_area]
        motion = bool(moving)
        alarm = motion and not self._last_motion
        self._last_motion = motion
        return _outputs(image, [_simplified(c) for c in moving], motion=motion, alarm=alarm)

    def _zone(self, value: Any) -> np.ndarray | None:
        """The detection zone as (N, 2) whole pixels, None for none; a clear error for a bad one."""
        try:
            zone = decoded_zone(value)
        except ValueError as error:
            raise ValueError(f"{self._block}: {error}") from None
        if zone is None or (isinstance(zone, list | tuple | np.ndarray) and len(zone) == 0):
            return None
        polygon: np.ndarray = np.rint(points(zone, 3, "detection_zone", self._block)).astype(np.int32)
        return polygon

    def _kernel(self, size: int) -> np.ndarray:
        if size not in self._kernels:
            self._kernels[size] = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        return self._kernels[size]

    def _mask_of(self, zone: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The filled zone (255 inside) for frames of ``size``, kept while the zone and the size stay."""
        if self._zone_mask is not None:
            kept_zone, kept_size, mask = self._zone_mask
            if kept_size == size and np.array_equal(kept_zone, zone):
                return mask
        mask = np.zeros(size, dtype=np.uint8)
        cv2.fillPoly(mask, [zone], 255)
        self._zone_mask = (zone, size, mask)
        return mask


def _simplified(contour: np.ndarray) -> np.ndarray:
    """The contour as a polygon within 1 % of its perimeter (keeps the outputs small), (N, 2) points."""
    epsilon = _SIMPLIFICATION * cv2.arcLength(contour, True)
    return np.asarray(cv2.approxPolyDP(contour, epsilon, True)).reshape(-1, 2)


def _outputs(image: WorkflowImage, polygons: list[np.ndarray], motion: bool, alarm: bool) -> dict[str, Any]:
    """The block's outputs for the motion ``polygons`` found on ``image`` (polygons of < 3 points are dropped)."""
    kept = [polygon for polygon in polygons if len(polygon) >= 3]
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in map(cv2.boundingRect, kept)],
                     dtype=np.float32).reshape(-1, 4)
    count = len(kept)
    detections = detections_on(image, boxes, np.ones(count, dtype=np.float32), np.zeros(count, dtype=np.int64),
                               [MOTION], str(uuid.uuid4()))
    return {"motion": motion, "alarm": alarm, "detections": detections,
            "motion_zones": [polygon.tolist() for polygon in kept]}
