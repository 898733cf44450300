"""Perspective correction: detections (and, with ``warp_image``, the image) moved from a quadrilateral of the image
onto a width x height rectangle, e.g. a road's four corners onto 25 x 250 metres so that velocity@v1 speaks metres.

As the reference:

- the polygon is ``perspective_polygons`` itself when it has 4 points, else the largest (by area, its vertices
  rounded to whole pixels) of the 4-point polygons it lists; other polygons are ignored, and none of 4 points fails;
- its corners are ordered clockwise on screen by their angle about their bounding box's centre, starting so that
  they lie nearest (summed distances) to the box's bottom-left, top-left, top-right and bottom-right corners, and
  are mapped to (0, h - 1), (0, 0), (w - 1, 0) and (w - 1, h - 1): the rectangle spans 0..w-1 by 0..h-1, as the
  pixel centres of a w x h image do;
- with ``extend_perspective_polygon_by_detections_anchor``, each detection's anchor (``ALL``: its box's corners)
  outside the polygon moves the side it lies beyond outward, parallel to itself, until it lies on it (the moved
  corners rounded to whole pixels), and the rectangle grows by the corners' moves, in pixels, scaled by w (or h)
  over the polygon's longer top/bottom (or left/right) side; that transform is computed anew on every frame;
- a box becomes the box around its four corners' images; a mask, its outline's image filled in a w x h mask (and
  the box, the box around that outline); tracker ids, detection ids, classes, lineage and every data field are kept;
- the warped image is the image warped to w x h, with the image's lineage; without ``warp_image``, the image as given.

Unlike the reference, the corrected boxes are not rounded to whole units (in metres the reference's rounding moves a
walker in half-metre jumps, which velocity@v1 reads as bursts of speed) and the input boxes are not rounded to whole
pixels first; the transform is kept for the polygon and size it was computed for, and computed again when they
change (the reference keeps its first frame's for good, whatever a selector gives later).
"""

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.workflows.catalogue.transformations import PERSPECTIVE_ANCHORS, is_convex_quadrilateral
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.lineage import copy_of
from services.worker.workflows.values import WorkflowImage

ALL_CORNERS = "ALL"


@dataclass(frozen=True, slots=True)
class Plane:
    """The homography from the image onto the rectangle, and the rectangle's size (its extension included)."""

    matrix: np.ndarray
    width: int
    height: int


class PerspectiveCorrection:
    """``roboflow_core/perspective_correction@v1`` (``PerspectiveCorrection``)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del env
        self._block = step.type
        self._plane: Plane | None = None
        self._plane_key: tuple[bytes, int, int] | None = None  # the polygon and size ``_plane`` is for

    def run(self, images: WorkflowImage, perspective_polygons: Any, predictions: sv.Detections | None = None,
            transformed_rect_width: int = 1000, transformed_rect_height: int = 1000,
            extend_perspective_polygon_by_detections_anchor: str = "", warp_image: bool = False) -> dict[str, Any]:
        width = self._size(transformed_rect_width, "transformed_rect_width")
        height = self._size(transformed_rect_height, "transformed_rect_height")
        anchor = extend_perspective_polygon_by_detections_anchor
        if anchor not in PERSPECTIVE_ANCHORS:
            raise ValueError(f"{self._block}: extend_perspective_polygon_by_detections_anchor must be one of "
                             f"{', '.join(map(repr, PERSPECTIVE_ANCHORS))}, got {anchor!r}")
        polygon = self._polygon(perspective_polygons)
        if anchor and predictions is not None and len(predictions):
            plane = extended_plane(ordered_corners(polygon), width, height, predictions, anchor)
        else:
            plane = self._cached_plane(polygon, width, height)
        if warp_image:
            images = images.with_image(cv2.warpPerspective(images.image, plane.matrix, (plane.width, plane.height)))
        return {
            "corrected_coordinates": None if predictions is None else corrected_detections(predictions, plane),
            "warped_image": images,
            "extended_transformed_rect_width": plane.width,
            "extended_transformed_rect_height": plane.height,
        }

    def _cached_plane(self, polygon: np.ndarray, width: int, height: int) -> Plane:
        """The transform for this polygon and size, computed once for as long as they stay the same."""
        key = (polygon.tobytes(), width, height)
        if self._plane is None or self._plane_key != key:
            self._plane, self._plane_key = plane_of(ordered_corners(polygon), width, height), key
        return self._plane

    def _polygon(self, value: Any) -> np.ndarray:
        polygon = largest_quadrilateral(value)
        if polygon is None:
            raise ValueError(f"{self._block}: perspective_polygons must be a polygon of 4 points [[x, y], ...] or a "
                             f"list of polygons with at least one of 4 points, got {value!r}")
        if not is_convex_quadrilateral(polygon.tolist()):
            raise ValueError(f"{self._block}: the perspective polygon {polygon.tolist()} is not a convex quadrilateral "
                             "(three of its corners on a line, or one inside the others' triangle)")
        return polygon

    def _size(self, value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise ValueError(f"{self._block}: {name} must be a positive integer, got {value!r}")
        return int(value)


def _quadrilateral(value: Any) -> np.ndarray | None:
    """``value`` as a (4, 2) float array when it is 4 finite points, else None."""
    try:
        points = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return points if points.shape == (4, 2) and bool(np.isfinite(points).all()) else None


def largest_quadrilateral(value: Any) -> np.ndarray | None:
    """The polygon the reference corrects by: ``value`` when it is 4 points, else the largest of its 4-point
    polygons, vertices rounded; None when there is none."""
    polygon = _quadrilateral(value)
    if polygon is not None or not isinstance(value, list | tuple | np.ndarray):
        return polygon
    candidates = [np.around(q) for q in map(_quadrilateral, value) if q is not None]
    return max(candidates, key=lambda q: cv2.contourArea(q.astype(np.float32)), default=None)


def ordered_corners(polygon: np.ndarray) -> np.ndarray:
    """The corners in the reference's order: bottom-left, top-left, top-right, bottom-right (see the module)."""
    low, high = polygon.min(axis=0), polygon.max(axis=0)
    centre = low / 2 + high / 2
    angles = np.arctan2(centre[0] - polygon[:, 0], centre[1] - polygon[:, 1])
    clockwise = polygon[np.argsort(-angles, kind="stable")]
    box = np.array([[low[0], high[1]], [low[0], low[1]], [high[0], low[1]], [high[0], high[1]]])
    best, best_distance = clockwise, _summed_distance(clockwise, box)
    for shift in range(1, 4):
        rolled = np.roll(clockwise, shift, axis=0)
        distance = _summed_distance(rolled, box)
        if distance < best_distance or (distance == best_distance and rolled[0, 0] < best[0, 0]):
            best, best_distance = rolled, distance
    return best


def _summed_distance(points: np.ndarray, others: np.ndarray) -> float:
    return sum(float(np.sqrt(((a - b) ** 2).sum())) for a, b in zip(points, others, strict=True))


def plane_of(corners: np.ndarray, width: int, height: int, grown_width: float = 0.0,
             grown_height: float = 0.0) -> Plane:
    """The transform of ``corners`` (bottom-left, top-left, top-right, bottom-right) onto the rectangle grown
    by the given amounts (rounded), corner pixels' centres on corners."""
    width, height = width + round(grown_width), height + round(grown_height)
    target = np.array([[0, height - 1], [0, 0], [width - 1, 0], [width - 1, height - 1]], dtype=np.float32)
    return Plane(cv2.getPerspectiveTransform(corners.astype(np.float32), target), width, height)


@dataclass(frozen=True, slots=True)
class _Side:
    """A side of the polygon (indices into bottom-left, top-left, top-right, bottom-right) as extension moves it."""

    ends: tuple[int, int]  # its corners, clockwise: walking from the first to the second on screen, outside is left
    along: tuple[int, int]  # the corner each end slides towards, along its other side
    measured: int  # the corner whose move the rectangle grows by
    axis: int  # what it grows: 0 the width, 1 the height
    box_corners: tuple[sv.Position, sv.Position]  # the points of a box "ALL" tests against this side


_SIDES = (
    _Side((0, 1), (3, 2), 0, 0, (sv.Position.BOTTOM_LEFT, sv.Position.TOP_LEFT)),  # left
    _Side((2, 3), (1, 0), 3, 0, (sv.Position.BOTTOM_RIGHT, sv.Position.TOP_RIGHT)),  # right
    _Side((3, 0), (2, 1), 0, 1, (sv.Position.BOTTOM_RIGHT, sv.Position.BOTTOM_LEFT)),  # bottom
    _Side((1, 2), (0, 3), 1, 1, (sv.Position.TOP_RIGHT, sv.Position.TOP_LEFT)),  # top
)


def _cross(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] * b[1] - a[1] * b[0])


def extended_plane(corners: np.ndarray, width: int, height: int, detections: sv.Detections, anchor: str) -> Plane:
    """The transform of the polygon grown until it holds every detection's anchor (see the module)."""
    polygon = corners.astype(np.float64)
    bottom_left, top_left, top_right, bottom_right = corners
    side_width = float(max(np.linalg.norm(bottom_left - bottom_right), np.linalg.norm(top_left - top_right)))
    side_height = float(max(np.linalg.norm(bottom_left - top_left), np.linalg.norm(bottom_right - top_right)))
    anchors = {position: detections.get_anchors_coordinates(position)
               for side in _SIDES for position in _tested(side, anchor)}
    grown = [0.0, 0.0]  # width, height, in image pixels
    for index in range(len(detections)):
        for side in _SIDES:
            for point in (anchors[position][index].astype(np.float64) for position in _tested(side, anchor)):
                if _beyond(polygon, side, point):
                    before = polygon[side.measured].copy()
                    _move_to(polygon, side, point)
                    grown[side.axis] += float(np.linalg.norm(polygon[side.measured] - before))
    return plane_of(polygon, width, height, grown[0] * width / max(side_width, 1),
                    grown[1] * height / max(side_height, 1))


def _tested(side: _Side, anchor: str) -> tuple[sv.Position, ...]:
    """The points of each detection tested against ``side``: the anchor, or for "ALL" the box's corners there."""
    return side.box_corners if anchor == ALL_CORNERS else (sv.Position(anchor),)


def _beyond(polygon: np.ndarray, side: _Side, point: np.ndarray) -> bool:
    """Whether ``point`` is outside the polygon and not on the inner side of ``side``'s line."""
    inside = cv2.pointPolygonTest(polygon.astype(np.float32), (float(point[0]), float(point[1])), False) >= 0
    first, second = polygon[side.ends[0]], polygon[side.ends[1]]
    return not inside and _cross(second - first, point - first) <= 0


def _move_to(polygon: np.ndarray, side: _Side, point: np.ndarray) -> None:
    """``side`` moved parallel to itself through ``point``, its ends sliding along their other sides (rounded)."""
    direction = polygon[side.ends[1]] - polygon[side.ends[0]]
    moved = []
    for end, towards in zip(side.ends, side.along, strict=True):
        slide = polygon[towards] - polygon[end]
        share = _cross(point - polygon[end], direction) / _cross(slide, direction)
        moved.append(np.round(polygon[end] + slide * share))
    polygon[list(side.ends)] = moved


def corrected_detections(detections: sv.Detections, plane: Plane) -> sv.Detections:
    """A copy of the detections in the rectangle's coordinates: boxes (and masks) moved, everything else kept."""
    corrected = copy_of(detections)
    if len(detections) == 0:
        return corrected
    x1, y1, x2, y2 = np.asarray(detections.xyxy, dtype=np.float64).T
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x2, y2], 1), np.stack([x1, y2], 1)], 1)
    moved = _mapped(corners.reshape(-1, 2), plane).reshape(-1, 4, 2)
    boxes = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
    if detections.mask is not None:
        masks = np.zeros((len(detections), plane.height, plane.width), dtype=bool)
        for index, mask in enumerate(np.asarray(detections.mask, dtype=bool)):
            outlines = [_mapped(outline.astype(np.float64), plane) for outline in sv.mask_to_polygons(mask)]
            if outlines:
                points = np.concatenate(outlines)
                boxes[index] = [*points.min(axis=0), *points.max(axis=0)]
                filled = cv2.fillPoly(np.zeros((plane.height, plane.width), dtype=np.uint8),
                                      [np.around(outline).astype(np.int32) for outline in outlines], 1)
                masks[index] = filled.astype(bool)
        corrected.mask = masks
    corrected.xyxy = boxes.astype(np.float32)
    return corrected


def _mapped(points: np.ndarray, plane: Plane) -> np.ndarray:
    """(N, 2) image points in the rectangle's coordinates."""
    return np.asarray(cv2.perspectiveTransform(points.reshape(1, -1, 2), plane.matrix)).reshape(-1, 2)
