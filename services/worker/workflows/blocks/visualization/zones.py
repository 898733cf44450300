"""Zone visualizations: a counting line with its in/out counts, filled polygon zones, and the reference path
of path deviation analytics.

The zone is drawn once per configuration into a mask the size of its bounding rectangle, then added
to each frame with weight ``opacity`` (the image keeps weight 1, as the reference's
``cv2.addWeighted(mask, opacity, image, 1, 0)``; only the rectangle is touched, which changes
nothing else since the mask is zero elsewhere).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.visualization.base import OUTPUT, AnnotatorCache, canvas
from services.worker.workflows.blocks.visualization.colours import parse_color
from services.worker.workflows.values import WorkflowImage

Point = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Overlay:
    """A drawing (``mask``) that belongs at rows ``top:top+h``, columns ``left:left+w`` of the frame."""

    top: int
    left: int
    mask: np.ndarray

    def add(self, scene: np.ndarray, opacity: float) -> None:
        height, width = self.mask.shape[:2]
        region = scene[self.top:self.top + height, self.left:self.left + width]
        region[...] = cv2.addWeighted(self.mask, opacity, region, 1.0, 0.0)


def overlay(shape: tuple[int, ...], draw: Any, points: np.ndarray, margin: int) -> Overlay | None:
    """``draw(mask, offset_points)`` on a mask covering ``points`` plus ``margin`` (clipped to ``shape``)."""
    height, width = shape[:2]
    left, top = np.floor(points.min(axis=0)).astype(int) - margin
    right, bottom = np.ceil(points.max(axis=0)).astype(int) + margin + 1
    left, top, right, bottom = max(0, left), max(0, top), min(width, right), min(height, bottom)
    if right <= left or bottom <= top:
        return None
    mask = np.zeros((bottom - top, right - left, *shape[2:]), dtype=np.uint8)
    draw(mask, np.round(points).astype(np.int32) - np.array([left, top], dtype=np.int32))
    return Overlay(int(top), int(left), mask)


class LineCounterZone:
    """The line of a line counter, blended at ``opacity``, and ``in: N, out: M`` at its first point."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._overlays = AnnotatorCache(self._line)

    def run(self, image: WorkflowImage, zone: Any, copy_image: bool = True, color: str = "#5bb573",
            thickness: int = 2, text_thickness: int = 1, text_scale: float = 1.0, count_in: int = 0,
            count_out: int = 0, opacity: float = 0.3) -> dict[str, Any]:
        start, end = line_points(zone)
        scene = canvas(image, copy_image)
        drawn = self._overlays.get({"shape": scene.shape, "start": start, "end": end, "color": color,
                                    "thickness": thickness})
        if drawn is not None:
            drawn.add(scene, opacity)
        sv.draw_text(scene=scene, text=f"in: {count_in}, out: {count_out}", text_anchor=sv.Point(*start),
                     text_thickness=text_thickness, text_scale=text_scale, background_color=sv.Color.WHITE,
                     text_padding=0)
        return {OUTPUT: image.with_image(scene)}

    @staticmethod
    def _line(shape: tuple[int, ...], start: Point, end: Point, color: str, thickness: int) -> Overlay | None:
        bgr = parse_color(color).as_bgr()

        def draw(mask: np.ndarray, points: np.ndarray) -> None:
            cv2.line(mask, tuple(points[0].tolist()), tuple(points[1].tolist()), bgr, thickness)

        return overlay(shape, draw, np.array([start, end], dtype=np.float64), thickness)


class PolygonZone:
    """One polygon, or several, filled with ``color`` at ``opacity``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._overlays = AnnotatorCache(self._polygons)

    def run(self, image: WorkflowImage, zone: Any, copy_image: bool = True, color: str = "#5bb573",
            opacity: float = 0.3) -> dict[str, Any]:
        polygons = zone_polygons(zone)
        scene = canvas(image, copy_image)
        if polygons:
            drawn = self._overlays.get({"shape": scene.shape, "polygons": polygons, "color": color})
            if drawn is not None:
                drawn.add(scene, opacity)
        return {OUTPUT: image.with_image(scene)}

    @staticmethod
    def _polygons(shape: tuple[int, ...], polygons: Sequence[Sequence[Point]], color: str) -> Overlay | None:
        bgr = parse_color(color).as_bgr()
        sizes = [len(polygon) for polygon in polygons]
        corners = np.array([point for polygon in polygons for point in polygon], dtype=np.float64)

        def draw(mask: np.ndarray, points: np.ndarray) -> None:
            cv2.fillPoly(mask, np.split(points, np.cumsum(sizes)[:-1]), bgr)

        return overlay(shape, draw, corners, 0)


class ReferencePath:
    """The reference path ``[[x, y], ...]`` as an open polyline (opaque, as the reference draws it)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, reference_path: Any, copy_image: bool = True, color: str = "#5bb573",
            thickness: int = 2) -> dict[str, Any]:
        try:
            points = np.asarray(reference_path, dtype=np.float64)[:, :2].astype(np.int32)
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"a reference path is [[x, y], ...], got {reference_path!r}") from None
        scene = canvas(image, copy_image)
        cv2.polylines(scene, [points], False, parse_color(color).as_bgr(), int(thickness))
        return {OUTPUT: image.with_image(scene)}


def line_points(zone: Any) -> tuple[Point, Point]:
    """The two ends of a line zone ``[[x1, y1], [x2, y2]]``, in whole pixels (truncated, as the reference)."""
    try:
        (x1, y1), (x2, y2) = zone
        return (int(float(x1)), int(float(y1))), (int(float(x2)), int(float(y2)))
    except (TypeError, ValueError):
        raise ValueError(f"a line zone is two points [[x1, y1], [x2, y2]], got {zone!r}") from None


def zone_polygons(zone: Any) -> list[list[Point]]:
    """A polygon ``[[x, y], ...]`` or a list of them, as lists of whole-pixel points (truncated, as the
    reference; empty: no zone)."""
    if not zone:
        return []
    polygons = [zone] if _is_point(zone[0]) else zone
    try:
        return [[(int(float(x)), int(float(y))) for x, y in polygon] for polygon in polygons]
    except (TypeError, ValueError):
        raise ValueError(f"a polygon zone is [[x, y], ...] or a list of those, got {zone!r}") from None


def _is_point(value: Any) -> bool:
    return isinstance(value, Sequence | np.ndarray) and len(value) == 2 and all(
        isinstance(v, int | float | np.number) for v in value)
