"""Text detection's pre- and post-processing: the image resized for the DB detector, its probability map turned
into text boxes (Differentiable Binarization's post-processing, as PaddleOCR describes it), the boxes put in
reading order.

A box is a quadrilateral (the minimum-area rectangle of a region of the binarised map, grown by the DB "unclip"
distance) with a score (the mean probability inside the ungrown rectangle). The growth is computed here in closed
form: the region offset by ``d`` with round joins, whose minimum-area rectangle is the rectangle with each side
moved out by ``d`` (PaddleOCR offsets the polygon with pyclipper, then takes that rectangle).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

ALIGN = 32  # the detector's input sides are multiples of this


@dataclass(frozen=True, slots=True)
class DbParams:
    """The detector's resizing and DB post-processing settings. Resizing as PaddleOCR's text detection predictor
    does by default: ``limit_type`` "max", a long side over ``limit_side_len`` scaled down to it, a smaller image
    (a crop) kept at its size (RapidOCR's "min" 736 scales a 100 px high crop up sevenfold: measured here, ten times
    the time and stray characters read at its edges). The DB settings are RapidOCR's for PP-OCRv4 (PaddleOCR's
    but for ``box_thresh`` 0.5 and ``unclip_ratio`` 1.6).

    ``limit_type`` "min": the short side is scaled up to ``limit_side_len`` when shorter. ``max_side_len``: the
    long side never exceeds it after that (a thin crop scaled up would otherwise be tens of thousands of pixels wide).
    """

    limit_side_len: int = 960
    limit_type: str = "max"
    max_side_len: int = 2000
    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    use_dilation: bool = True
    min_size: int = 3


@dataclass(frozen=True, slots=True)
class TextBox:
    """A text region in the source image: its corners (top-left, top-right, bottom-right, bottom-left; whole
    pixels) and the detector's confidence in it."""

    quad: np.ndarray  # (4, 2) float32
    score: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        x1, y1 = self.quad.min(axis=0).tolist()
        x2, y2 = self.quad.max(axis=0).tolist()
        return float(x1), float(y1), float(x2), float(y2)


def detection_size(height: int, width: int, params: DbParams) -> tuple[int, int]:
    """The detector's input (height, width) for a ``height`` x ``width`` image: both multiples of 32."""
    if height <= 0 or width <= 0:
        raise ValueError(f"cannot detect text in an empty image ({width}x{height})")
    if params.limit_type == "min":
        ratio = params.limit_side_len / min(height, width) if min(height, width) < params.limit_side_len else 1.0
    elif params.limit_type == "max":
        ratio = params.limit_side_len / max(height, width) if max(height, width) > params.limit_side_len else 1.0
    else:
        raise ValueError(f"limit_type must be 'min' or 'max', got {params.limit_type!r}")
    if max(height, width) * ratio > params.max_side_len:
        ratio = params.max_side_len / max(height, width)
    return max(ALIGN, round(height * ratio / ALIGN) * ALIGN), max(ALIGN, round(width * ratio / ALIGN) * ALIGN)


def resize_for_detection(image: np.ndarray, params: DbParams) -> np.ndarray:
    """``image`` stretched to :func:`detection_size` (a few percent of stretch at most, from the rounding)."""
    height, width = detection_size(image.shape[0], image.shape[1], params)
    if (height, width) == image.shape[:2]:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def order_corners(points: np.ndarray) -> np.ndarray:
    """A rectangle's 4 corners as top-left, top-right, bottom-right, bottom-left (PaddleOCR's order: of the two
    leftmost points the upper one starts, of the two rightmost the upper one comes second)."""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    top_left, bottom_left = (left[0], left[1]) if left[0][1] <= left[1][1] else (left[1], left[0])
    top_right, bottom_right = (right[0], right[1]) if right[0][1] <= right[1][1] else (right[1], right[0])
    return np.array([top_left, top_right, bottom_right, bottom_left], dtype=np.float32)


def unclip_distance(width: float, height: float, ratio: float) -> float:
    """DB's growth of a ``width`` x ``height`` region: its area x ``ratio`` / its perimeter."""
    perimeter = 2.0 * (width + height)
    return width * height * ratio / perimeter if perimeter > 0 else 0.0


def grow_rectangle(rectangle: tuple[tuple[float, float], tuple[float, float], float],
                   distance: float) -> tuple[tuple[float, float], tuple[float, float], float]:
    """An OpenCV rotated rectangle with each side moved out by ``distance`` (same centre and angle)."""
    centre, (width, height), angle = rectangle
    return centre, (width + 2 * distance, height + 2 * distance), angle


def box_score(probability: np.ndarray, quad: np.ndarray) -> float:
    """The mean probability over the pixels inside ``quad`` (map coordinates): DB's "fast" score."""
    height, width = probability.shape
    x1 = int(np.clip(math.floor(float(quad[:, 0].min())), 0, width - 1))
    x2 = int(np.clip(math.ceil(float(quad[:, 0].max())), 0, width - 1))
    y1 = int(np.clip(math.floor(float(quad[:, 1].min())), 0, height - 1))
    y2 = int(np.clip(math.ceil(float(quad[:, 1].max())), 0, height - 1))
    mask = np.zeros((y2 - y1 + 1, x2 - x1 + 1), dtype=np.uint8)
    shifted = (quad - np.array([x1, y1], dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(mask, [shifted.reshape(-1, 1, 2)], 1)
    return float(cv2.mean(probability[y1:y2 + 1, x1:x2 + 1], mask)[0])


def boxes_from_probability_map(probability: np.ndarray, source_height: int, source_width: int,
                               params: DbParams | None = None) -> list[TextBox]:
    """The text boxes of a DB probability map ([H, W] in 0..1) in the pixels of the ``source_width`` x
    ``source_height`` image it was computed on (in the order OpenCV finds the regions: see :func:`reading_order`)."""
    params = params or DbParams()
    map_height, map_width = probability.shape
    bitmap = np.asarray(probability > params.thresh, dtype=np.uint8)
    if params.use_dilation:
        bitmap = np.asarray(cv2.dilate(bitmap, np.ones((2, 2), dtype=np.uint8)), dtype=np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    scale = np.array([source_width / map_width, source_height / map_height], dtype=np.float32)
    limit = np.array([source_width, source_height], dtype=np.float32)
    boxes: list[TextBox] = []
    for contour in contours[:params.max_candidates]:
        (centre_x, centre_y), (width, height), angle = cv2.minAreaRect(contour)
        rectangle = (float(centre_x), float(centre_y)), (float(width), float(height)), float(angle)
        if min(width, height) < params.min_size:
            continue
        score = box_score(probability, order_corners(cv2.boxPoints(rectangle)))
        if score < params.box_thresh:
            continue
        grown = grow_rectangle(rectangle, unclip_distance(width, height, params.unclip_ratio))
        if min(grown[1]) < params.min_size + 2:
            continue
        quad = np.clip(np.round(order_corners(cv2.boxPoints(grown)) * scale), 0, limit).astype(np.float32)
        # PaddleOCR drops a box 3 px or less wide or high once in the source's pixels.
        if int(np.linalg.norm(quad[0] - quad[1])) <= params.min_size or \
                int(np.linalg.norm(quad[0] - quad[3])) <= params.min_size:
            continue
        boxes.append(TextBox(quad, score))
    return boxes


def reading_order(boxes: Sequence[tuple[float, float, float, float]]) -> list[list[int]]:
    """The indices of ``boxes`` (x1, y1, x2, y2) grouped into lines, top to bottom, each left to right.

    As the reference: taken by their tops, a box starts a new line when its top is below the current line's bottom
    less half its own height; otherwise it joins that line (which then reaches down to the lower of the bottoms).
    """
    lines: list[list[int]] = []
    bottom = -math.inf
    for index in sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0])):
        _, top, _, box_bottom = boxes[index]
        if not lines or top >= bottom - 0.5 * (box_bottom - top):
            lines.append([index])
            bottom = box_bottom
        else:
            lines[-1].append(index)
            bottom = max(bottom, box_bottom)
    return [sorted(line, key=lambda i: boxes[i][0]) for line in lines]
