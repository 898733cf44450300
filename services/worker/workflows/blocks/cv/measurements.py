"""Measurements on images and detections: colours, distances, sizes and nearest neighbours.

dominant_color@v1: the image thinned to every n-th pixel (n = its short side // ``target_size``, at least 1), its
colours clustered by k-means (``color_clusters`` centres, at most ``max_iterations`` rounds); the centre of the
largest cluster is the colour, as (r, g, b). Unlike the reference, whose starting centres are unseeded random
draws, the draws are seeded: one image always gives one colour.

pixel_color_count@v1: the pixels whose every BGR channel is within ``tolerance`` of ``target_color``.

distance_measurement@v1: the gap along ``reference_axis`` between the boxes of two classes (0 when they overlap
or do not lie apart along that axis), in pixels and in centimetres: by ``pixel_ratio`` (pixels per centimetre),
or by the box of a reference object of known size found among the same predictions (the mean of its pixels per
centimetre across and down). Boxes are rounded to whole pixels first; boxes touching along the axis are 0 apart
(the reference then gives the far sides' distance). Each class's most confident box is used;
unlike the reference (which fails then), the two classes may be the same: its two most confident boxes.

size_measurement@v1: each object's width and height in the reference object's units (``reference_dimensions``
over the reference's size in pixels, across and down): from the object's box, or, for a detection with a mask,
from the minimum-area rectangle of its largest contour (its more horizontal side is the width). The reference
object is the most confident reference prediction, or a polygon. This project's detectors give boxes only.

detections_nearest_neighbor@v1: for each query detection, the nearest target by the distance between their
anchor points (a box anchor or a named keypoint), a detection never being its own neighbour (same detection id)
and targets beyond ``max_distance`` left out; targets within 1 px of the nearest are all matches. The query
detections come back with ``nearest_target_distance`` (null without a match), and the matched pairs as two
aligned detection lists. Unlike the reference, the input detections are left as they are (it writes the field
into them).
"""

from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.crops import colour_bgr
from services.worker.workflows.blocks.video.tracked import anchor, subset, with_fields
from services.worker.workflows.values import CLASS_NAME, DETECTION_ID, NEAREST_TARGET_DISTANCE, WorkflowImage

Box = tuple[int, int, int, int]

KEYPOINT = "KEYPOINT"  # nearest neighbour's anchor option: a named keypoint instead of a box anchor
KEYPOINTS_XY = "keypoints_xy"
KEYPOINTS_CLASS_NAME = "keypoints_class_name"
TIE_PIXELS = 1.0  # targets this close to the nearest one match too
_SEED = 0


# ----------------------------------------------------------------------------------------------- colours


def dominant_colour(pixels: np.ndarray, clusters: int, max_iterations: int) -> tuple[int, int, int]:
    """The (r, g, b) centre of the largest of ``clusters`` k-means clusters of ``pixels``' BGR colours."""
    colours = pixels.reshape(-1, 3).astype(np.float32)
    if not len(colours):
        raise ValueError("dominant_color: the image has no pixels")
    random = np.random.default_rng(_SEED)
    centres = colours[random.choice(len(colours), min(clusters, len(colours)), replace=False)]
    for _ in range(max_iterations):
        labels = _nearest_centre(colours, centres)
        moved = np.array([colours[labels == i].mean(axis=0) if np.any(labels == i)
                          else colours[random.integers(len(colours))] for i in range(len(centres))])
        if np.allclose(centres, moved):
            break
        centres = moved
    largest = np.bincount(_nearest_centre(colours, centres), minlength=len(centres)).argmax()
    blue, green, red = (int(np.clip(round(float(c)), 0, 255)) for c in centres[largest])
    return red, green, blue


def _nearest_centre(colours: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.asarray(np.argmin(((colours[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2), axis=1))


class DominantColor:
    """``roboflow_core/dominant_color@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, color_clusters: int = 4, max_iterations: int = 100,
            target_size: int = 100) -> dict[str, Any]:
        if color_clusters < 1 or max_iterations < 1 or target_size < 1:
            raise ValueError("dominant_color: color_clusters, max_iterations and target_size must be at least 1, "
                             f"got {color_clusters}, {max_iterations}, {target_size}")
        step = max(1, min(image.width, image.height) // int(target_size))
        thinned = image.image[::step, ::step]
        return {"rgb_color": dominant_colour(thinned, int(color_clusters), int(max_iterations))}


def matching_pixels(pixels: np.ndarray, bgr: tuple[int, int, int], tolerance: int) -> int:
    """How many pixels have every channel within ``tolerance`` of ``bgr``."""
    target = np.array(bgr, dtype=np.int64)
    lower, upper = np.clip(target - tolerance, 0, 255), np.clip(target + tolerance, 0, 255)
    if np.any(lower > upper):  # a negative tolerance matches nothing
        return 0
    return int(cv2.countNonZero(cv2.inRange(pixels, lower.astype(np.float64), upper.astype(np.float64))))


class PixelColorCount:
    """``roboflow_core/pixel_color_count@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, target_color: Any, tolerance: int = 10) -> dict[str, Any]:
        return {"matching_pixels_count": matching_pixels(image.image, colour_bgr(target_color), int(tolerance))}


# --------------------------------------------------------------------------------------------- distances


def _boxes_of(detections: sv.Detections, class_name: str) -> list[Box]:
    """The rounded boxes of ``class_name``, most confident first (the detections' own order)."""
    names = detections.data.get(CLASS_NAME, np.array([], dtype=object))
    rounded = detections.xyxy.round().astype(int)
    return [(int(x1), int(y1), int(x2), int(y2)) for (x1, y1, x2, y2), name in zip(rounded, names, strict=True)
            if name == class_name]


def _pair(detections: sv.Detections, first: str, second: str) -> tuple[Box, Box]:
    """The boxes of the two objects: each class's most confident, or a class's two most confident."""
    firsts = _boxes_of(detections, first)
    seconds = firsts[1:] if first == second else _boxes_of(detections, second)
    if not firsts or not seconds:
        raise ValueError(f"distance_measurement: class '{first}' or '{second}' not found in predictions")
    return firsts[0], seconds[0]


def gap(first: Box, second: Box, axis: str) -> int:
    """The pixels between two boxes along ``axis`` ("horizontal" or "vertical"); 0 when they overlap (touching
    counts) or are not apart along that axis."""
    overlap = not (first[2] < second[0] or second[2] < first[0] or first[3] < second[1] or second[3] < first[1])
    low, high = (0, 2) if axis == "horizontal" else (1, 3)
    return 0 if overlap else max(second[low] - first[high], first[low] - second[high], 0)


class DistanceMeasurement:
    """``roboflow_core/distance_measurement@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, predictions: sv.Detections, object_1_class_name: str, object_2_class_name: str,
            reference_axis: str, calibration_method: str, reference_object_class_name: str = "reference-object",
            reference_width: float = 2.5, reference_height: float = 2.5, pixel_ratio: float = 100) -> dict[str, Any]:
        if reference_axis not in ("horizontal", "vertical"):
            raise ValueError(f"distance_measurement: reference_axis must be horizontal or vertical, "
                             f"got {reference_axis!r}")
        first, second = _pair(predictions, object_1_class_name, object_2_class_name)
        pixels = gap(first, second, reference_axis)
        if not pixels:
            return {"distance_cm": 0, "distance_pixel": 0}
        if calibration_method == "reference object":
            ratio = self._reference_ratio(predictions, reference_object_class_name, reference_width, reference_height)
        elif calibration_method == "pixel to centimeter":
            ratio = float(pixel_ratio)
        else:
            raise ValueError(f"distance_measurement: calibration_method must be 'reference object' or "
                             f"'pixel to centimeter', got {calibration_method!r}")
        if ratio <= 0:
            raise ValueError(f"distance_measurement: pixels per centimetre must be greater than 0, got {ratio}")
        return {"distance_cm": pixels / ratio, "distance_pixel": pixels}

    @staticmethod
    def _reference_ratio(predictions: sv.Detections, class_name: str, width: float, height: float) -> float:
        """Pixels per centimetre by the first box of the reference object: the mean across and down."""
        if width <= 0 or height <= 0:
            raise ValueError(f"distance_measurement: reference_width and reference_height must be greater than 0, "
                             f"got {width} x {height}")
        boxes = _boxes_of(predictions, class_name)
        if not boxes:
            raise ValueError(f"distance_measurement: reference class '{class_name}' not found in predictions")
        x1, y1, x2, y2 = boxes[0]
        return (abs(x2 - x1) / width + abs(y2 - y1) / height) / 2


# ------------------------------------------------------------------------------------------------- sizes


def aligned_size(outline: np.ndarray) -> tuple[float, float] | None:
    """(width, height) of the minimum-area rectangle around ``outline`` (points), its more horizontal side
    being the width; None for an outline with no area."""
    outline = np.asarray(outline, dtype=np.float32).reshape(-1, 2)
    if len(outline) < 3 or cv2.contourArea(outline) <= 0:
        return None
    corners = cv2.boxPoints(cv2.minAreaRect(outline))
    first, second = corners[1] - corners[0], corners[2] - corners[1]
    across, down = (first, second) if _tilt(first) < _tilt(second) else (second, first)
    return float(np.linalg.norm(across)), float(np.linalg.norm(down))


def _tilt(side: np.ndarray) -> float:
    """How far a side (dx, dy) is from horizontal, in degrees (0..90)."""
    angle = float(np.degrees(np.arctan2(side[1], side[0]))) % 180
    return min(angle, 180 - angle)


def detection_size(detections: sv.Detections, index: int) -> tuple[float, float] | None:
    """A detection's (width, height) in pixels: of its mask's largest contour when it has a mask, else its box."""
    if detections.mask is None:
        x1, y1, x2, y2 = detections.xyxy[index]
        return float(x2 - x1), float(y2 - y1)
    contours, _ = cv2.findContours(detections.mask[index].astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return aligned_size(max(contours, key=cv2.contourArea)) if contours else None


def reference_dimensions_of(value: Any) -> tuple[float, float]:
    """``reference_dimensions`` ('width,height' or [width, height]) as two numbers."""
    parts = value.split(",") if isinstance(value, str) else value
    try:
        width, height = (float(part) for part in parts)
    except (TypeError, ValueError):
        raise ValueError(f"size_measurement: reference_dimensions must be 'width,height' or [width, height], "
                         f"got {value!r}") from None
    return width, height


class SizeMeasurement:
    """``roboflow_core/size_measurement@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, object_predictions: sv.Detections, reference_predictions: Any,
            reference_dimensions: Any) -> dict[str, Any]:
        real_width, real_height = reference_dimensions_of(reference_dimensions)
        reference = self._reference_size(reference_predictions)
        if reference is None or not (reference[0] and reference[1]):
            return {"dimensions": None}
        across, down = real_width / reference[0], real_height / reference[1]
        dimensions: list[dict[str, float] | None] = []
        for index in range(len(object_predictions)):
            size = detection_size(object_predictions, index)
            if size is None or size[0] <= 0 or size[1] <= 0:
                dimensions.append(None)
                continue
            width, height = size[0] * across, size[1] * down
            dimensions.append({"width": width, "height": height, "longer": max(width, height),
                               "shorter": min(width, height)})
        return {"dimensions": dimensions}

    @staticmethod
    def _reference_size(reference: Any) -> tuple[float, float] | None:
        """The reference's size in pixels: its most confident detection's, or a polygon's; None without one."""
        if isinstance(reference, sv.Detections):
            if not len(reference):
                return None
            best = int(np.argmax(reference.confidence)) if reference.confidence is not None else 0
            return detection_size(reference, best)
        if isinstance(reference, list | tuple) and len(reference) >= 2:
            return aligned_size(np.asarray(reference, dtype=np.float32))
        return None


# -------------------------------------------------------------------------------------- nearest neighbour


def anchor_points(detections: sv.Detections, point: str, keypoint_name: str | None) -> np.ndarray:
    """(N, 2) points standing for the detections: a box anchor, or the named keypoint (NaN where a detection
    lacks it, so it matches nothing)."""
    if point != KEYPOINT:
        return np.asarray(detections.get_anchors_coordinates(anchor(point, "detections_nearest_neighbor")),
                          dtype=np.float64).reshape(-1, 2)
    xy, names = detections.data.get(KEYPOINTS_XY), detections.data.get(KEYPOINTS_CLASS_NAME)
    if xy is None or names is None:
        raise ValueError("detections_nearest_neighbor: KEYPOINT anchors need keypoint detection predictions")
    found = np.full((len(detections), 2), np.nan)
    for row, row_names in enumerate(names):
        where = np.flatnonzero(np.asarray(row_names) == keypoint_name)
        if len(where):
            found[row] = np.asarray(xy[row])[where[0]]
    return found


def nearest(query_points: np.ndarray, target_points: np.ndarray, query_ids: Any, target_ids: Any,
            max_distance: float | None) -> tuple[list[float | None], np.ndarray, np.ndarray]:
    """Each query's distance to its nearest eligible target (None without one) and the (query, target) rows of
    every match (each target within ``TIE_PIXELS`` of the nearest), query by query."""
    distances = np.sqrt(((query_points[:, None, :] - target_points[None, :, :]) ** 2).sum(axis=2))
    distances = distances.reshape(len(query_points), len(target_points))
    if query_ids is not None and target_ids is not None:
        distances[np.asarray(query_ids)[:, None] == np.asarray(target_ids)[None, :]] = np.nan  # itself
    if max_distance is not None:
        distances[distances > max_distance] = np.nan
    eligible = ~np.all(np.isnan(distances), axis=1)
    closest = np.full(len(query_points), np.nan)
    closest[eligible] = np.nanmin(distances[eligible], axis=1)
    query_rows, target_rows = np.nonzero(distances <= closest[:, None] + TIE_PIXELS)
    return [None if np.isnan(d) else float(d) for d in closest], query_rows, target_rows


class DetectionsNearestNeighbor:
    """``roboflow_core/detections_nearest_neighbor@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, query_predictions: sv.Detections, target_predictions: sv.Detections, query_point: str = "CENTER",
            target_point: str = "CENTER", query_keypoint_name: str | None = None,
            target_keypoint_name: str | None = None, max_distance: int | None = None) -> dict[str, Any]:
        for side, point, name in (("query", query_point, query_keypoint_name),
                                  ("target", target_point, target_keypoint_name)):
            if point == KEYPOINT and not name:
                raise ValueError(f"detections_nearest_neighbor: {side}_keypoint_name must be given when "
                                 f"{side}_point is KEYPOINT")
        distances, query_rows, target_rows = nearest(
            anchor_points(query_predictions, query_point, query_keypoint_name),
            anchor_points(target_predictions, target_point, target_keypoint_name),
            query_predictions.data.get(DETECTION_ID), target_predictions.data.get(DETECTION_ID), max_distance)
        measured = with_fields(query_predictions, **{NEAREST_TARGET_DISTANCE: np.array(distances, dtype=object)})
        return {"query_predictions": measured, "matched_query_detections": subset(measured, query_rows),
                "matched_target_detections": subset(target_predictions, target_rows)}
