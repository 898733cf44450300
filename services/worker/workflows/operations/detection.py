"""One detection (what a DetectionsFilter binds to ``_``) and ExtractDetectionProperty on it.

A single detection is the tuple iterating ``sv.Detections`` yields, ``(xyxy, mask, confidence,
class_id, tracker_id, data)``, as in the reference; a one-element ``sv.Detections`` (what
DetectionsSelection gives) is accepted too.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import supervision as sv

from services.worker.workflows import values
from services.worker.workflows.operations.base import Context, describe, plain

Operation = Mapping[str, Any]
Detection = tuple[Any, ...]


def single(value: Any, context: Context) -> Detection:
    """``value`` as a detection tuple, or a clear error."""
    if isinstance(value, sv.Detections):
        if len(value) != 1:
            raise context.fail(f"expected a single detection, got detections with {len(value)} elements")
        return next(iter(value))
    if isinstance(value, tuple) and len(value) == 6:
        return value
    raise context.fail(f"expected a single detection, got {describe(value)}")


def _box(detection: Detection) -> list[float]:
    return [float(v) for v in np.asarray(detection[0]).tolist()]


def _optional(value: Any, cast: Callable[[Any], Any]) -> Any:
    return None if value is None else cast(value)


def _data(key: str) -> Callable[[Detection], Any]:
    return lambda detection: plain(detection[5].get(key))


def _center(detection: Detection) -> tuple[float, float]:
    x1, y1, x2, y2 = _box(detection)
    return x1 + (x2 - x1) / 2, y1 + (y2 - y1) / 2


_EXTRACTORS: dict[str, Callable[[Detection], Any]] = {
    "x_min": lambda d: _box(d)[0],
    "y_min": lambda d: _box(d)[1],
    "x_max": lambda d: _box(d)[2],
    "y_max": lambda d: _box(d)[3],
    "confidence": lambda d: _optional(d[2], float),
    "class_id": lambda d: _optional(d[3], int),
    "tracker_id": lambda d: _optional(d[4], int),
    "class_name": lambda d: _optional(d[5].get(values.CLASS_NAME), str),
    "size": lambda d: (_box(d)[3] - _box(d)[1]) * (_box(d)[2] - _box(d)[0]),
    "center": _center,
    "top_left": lambda d: (_box(d)[0], _box(d)[1]),
    "top_right": lambda d: (_box(d)[2], _box(d)[1]),
    "bottom_left": lambda d: (_box(d)[0], _box(d)[3]),
    "bottom_right": lambda d: (_box(d)[2], _box(d)[3]),
}


def extract_property(value: Any, operation: Operation, context: Context) -> Any:
    """One property of one detection; a per-detection data field it lacks reads as None (as the reference)."""
    detection = single(value, context)
    name = operation["property_name"]
    extractor = _EXTRACTORS.get(name, _data(name))
    return extractor(detection)


def center(detection: Detection) -> tuple[float, float]:
    return _center(detection)
