"""Literal checks for the geometry the video blocks take: line segments, zone polygons, paths, anchors,
motion detection's detection zone.

Registered in :data:`~services.core.workflows.blocks.LITERALS` when the catalogue is imported, so a
definition with ``line_segment: [[1, 2]]`` or an unknown ``triggering_anchor`` is refused at INIT
with its JSON path instead of failing on every frame in the worker.
"""

import json
from collections.abc import Callable
from typing import Any

from services.core.workflows.blocks import is_points, register_literals

# supervision's Position values (sv.Position.list()), kept here so the manager needs no supervision.
ANCHORS = (
    "CENTER", "CENTER_LEFT", "CENTER_RIGHT", "TOP_CENTER", "TOP_LEFT", "TOP_RIGHT",
    "BOTTOM_LEFT", "BOTTOM_CENTER", "BOTTOM_RIGHT", "CENTER_OF_MASS",
)


def is_line_segment(value: Any) -> bool:
    """Two distinct points ``[[x1, y1], [x2, y2]]`` (supervision refuses a zero-length line)."""
    return is_points(value) and len(value) == 2 and list(value[0]) != list(value[1])


def is_polygon(value: Any) -> bool:
    """At least three points."""
    return is_points(value) and len(value) >= 3


def is_polygons(value: Any) -> bool:
    """One polygon, or a list of polygons (time_in_zone@v3)."""
    return is_polygon(value) or (
        isinstance(value, list | tuple) and len(value) > 0 and all(is_polygon(p) for p in value)
    )


def is_path(value: Any) -> bool:
    """At least one point."""
    return is_points(value) and len(value) >= 1


def decoded_zone(value: Any) -> Any:
    """A zone given as a JSON string (motion_detection's ``detection_zone`` may be one), decoded; any other
    value as it is. ValueError when the string is not JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ValueError(f"a detection zone given as a string must be JSON [[x, y], ...], got {value!r}") from None


def is_detection_zone(value: Any) -> bool:
    """No zone (an empty list), or a polygon of at least 3 points, as a list or as its JSON string."""
    try:
        zone = decoded_zone(value)
    except ValueError:
        return False
    return zone == [] or is_polygon(zone)


def is_smoothing_alpha(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "line_segment": (is_line_segment, "a line segment of two distinct points [[x1, y1], [x2, y2]]"),
    "zone_polygon": (is_polygon, "a polygon of at least 3 points [[x, y], ...]"),
    "zone_polygons": (is_polygons, "a polygon of at least 3 points [[x, y], ...] or a list of such polygons"),
    "reference_path": (is_path, "a path of at least one point [[x, y], ...]"),
    "detection_zone": (is_detection_zone, "a polygon of at least 3 points [[x, y], ...], as a list or a JSON string"),
    "smoothing_alpha": (is_smoothing_alpha, "a number in (0, 1]"),
}

register_literals(_CHECKS)

__all__ = ["ANCHORS", "decoded_zone", "is_detection_zone", "is_line_segment", "is_path", "is_polygon", "is_polygons"]
