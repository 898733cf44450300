"""The text of each detection's label (label_visualization's ``text`` option) and its automatic size.

Strings are the reference's, e.g. ``person 0.87`` for "Class and Confidence", ``In zone: 1.5s`` for
"Time In Zone", ``384, 288 192x144`` (centre, size) for "Dimensions". Any other text names a
per-detection data field, whose values are written as they are (empty when falsy).
"""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import supervision as sv

from services.worker.workflows.values import CLASS_NAME, TIME_IN_ZONE

AREA_PX = "area_px"  # the reference's mask-area measurement fields
AREA_CONVERTED = "area_converted"

MANUAL, AUTOMATIC = "Manual", "Automatic"
# Automatic size: the manual scale applies at this image size; smaller images get smaller text.
_REFERENCE_MIN_DIMENSION = 1080
_REFERENCE_TEXT_SCALE = 0.7
_SCALE_LIMITS = (0.3, 5.0)


def label_texts(detections: sv.Detections, text: str) -> list[str]:
    """One label per detection for the ``text`` option; ValueError for an unknown option."""
    builder = _BUILDERS.get(text)
    if builder is not None:
        return builder(detections)
    if text not in detections.data:
        raise ValueError(f"invalid label text {text!r}: neither a text option nor a detection field")
    return [str(value) if _truthy(value) else "" for value in detections.data[text]]


def adaptive_text_scale(height: int, width: int, text_scale: float, mode: str) -> float:
    """label_visualization@v2's text scale: ``text_scale`` itself (Manual), or relative to 1080p (Automatic)."""
    if mode == MANUAL:
        return text_scale
    if mode != AUTOMATIC:
        raise ValueError(f"invalid text_size_mode {mode!r}: expected {MANUAL} or {AUTOMATIC}")
    # The manual scale is a multiplier of 0.7 at 1080p, so the two factors of 0.7 cancel.
    scale = text_scale * min(height, width) / _REFERENCE_MIN_DIMENSION
    return max(_SCALE_LIMITS[0], min(_SCALE_LIMITS[1], scale))


def _class_names(detections: sv.Detections) -> list[str]:
    names = detections.data.get(CLASS_NAME)
    if names is not None:
        return [str(name) for name in names]
    class_ids = detections.class_id if detections.class_id is not None else [None] * len(detections)
    return ["" if class_id is None else str(class_id) for class_id in class_ids]


def _confidences(detections: sv.Detections) -> list[str]:
    if detections.confidence is None:
        return [""] * len(detections)
    return ["" if math.isnan(value) else f"{value:.2f}" for value in detections.confidence.tolist()]


def _class_and_confidence(detections: sv.Detections) -> list[str]:
    return [f"{name} {confidence}".rstrip()
            for name, confidence in zip(_class_names(detections), _confidences(detections), strict=True)]


def _tracker_ids(detections: sv.Detections) -> list[str]:
    if detections.tracker_id is None:
        return ["No Tracker ID"] * len(detections)
    return [str(tracker_id) for tracker_id in detections.tracker_id.tolist()]


def _time_in_zone(detections: sv.Detections) -> list[str]:
    # As the reference: 0 s (the first frame in the zone) reads N/A too.
    times = detections.data.get(TIME_IN_ZONE)
    if times is None:
        return ["In zone: N/A"] * len(detections)
    return [f"In zone: {round(float(t), 2)}s" if _truthy(t) else "In zone: N/A" for t in times]


def _dimensions(detections: sv.Detections) -> list[str]:
    labels = []
    for x1, y1, x2, y2 in detections.xyxy.tolist():
        labels.append(f"{int((x1 + x2) / 2)}, {int((y1 + y2) / 2)} {int(x2 - x1)}x{int(y2 - y1)}")
    return labels


def _measured(key: str, caption: str) -> Callable[[sv.Detections], list[str]]:
    def build(detections: sv.Detections) -> list[str]:
        values: Any = detections.data.get(key, [None] * len(detections))
        return [f"{caption}: N/A" if value is None else f"{caption}: {float(value):.2f}" for value in values]

    return build


def _truthy(value: Any) -> bool:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return False
    return bool(value)


_BUILDERS: dict[str, Callable[[sv.Detections], list[str]]] = {
    "Class": _class_names,
    "Confidence": _confidences,
    "Class and Confidence": _class_and_confidence,
    "Index": lambda detections: [str(index) for index in range(len(detections))],
    "Dimensions": _dimensions,
    "Area": lambda detections: [str(int(area)) for area in np.asarray(detections.area).tolist()],
    "Area (mask)": _measured(AREA_PX, "Area (mask)"),
    "Area (converted)": _measured(AREA_CONVERTED, "Area (conv)"),
    "Tracker Id": _tracker_ids,
    "Time In Zone": _time_in_zone,
}
