"""What the analytics blocks ask of their detections: tracker ids, anchors, and copies with extra fields."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import supervision as sv


def require_tracked(detections: sv.Detections, block: str) -> np.ndarray:
    """The detections' tracker ids as ints; a clear error when non-empty detections carry none.

    Empty detections need no ids (a tracker's output on a frame with nothing in it).
    """
    if detections.tracker_id is None:
        if len(detections) == 0:
            return np.zeros(0, dtype=np.int64)
        raise ValueError(
            f"{block} needs tracked detections (with tracker_id); feed it the output of a tracker "
            "such as roboflow_core/byte_tracker@v3"
        )
    return np.asarray(detections.tracker_id, dtype=np.int64)


def anchor(name: Any, block: str) -> sv.Position:
    """The supervision anchor named ``name`` (e.g. "CENTER"); a clear error for an unknown one."""
    try:
        return sv.Position(name)
    except ValueError:
        raise ValueError(
            f"{block}: triggering_anchor {name!r} is not one of {', '.join(sv.Position.list())}"
        ) from None


def points(value: Any, minimum: int, what: str, block: str) -> np.ndarray:
    """``value`` as an (N, 2) float array of at least ``minimum`` points (lines, polygons, paths)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.zeros((0, 0))
    if array.ndim != 2 or array.shape[1] != 2 or len(array) < minimum:
        raise ValueError(f"{block}: {what} must be a list of at least {minimum} points [[x, y], ...], got {value!r}")
    return array


def subset(detections: sv.Detections, rows: Sequence[int] | np.ndarray) -> sv.Detections:
    """A copy of the detections at ``rows`` (every field, in that order; empty rows keep the fields)."""
    selected = detections[np.asarray(rows, dtype=np.int64)]
    assert isinstance(selected, sv.Detections)
    return selected


def with_fields(detections: sv.Detections, **fields: np.ndarray) -> sv.Detections:
    """A copy of the detections with extra per-detection ``data`` fields (the input is left alone)."""
    copy = subset(detections, np.arange(len(detections)))
    for key, values in fields.items():
        copy.data[key] = values
    return copy
