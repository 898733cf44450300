"""Predictions in the reference's serialised format (box centre and size) as ``sv.Detections``, to draw them.

The pipeline's results and the dashboard's preview carry predictions as the reference's dicts; the
visualization annotators draw ``sv.Detections``.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import supervision as sv

from services.worker.workflows.values import CLASS_NAME


def detections_from_predictions(items: Sequence[Mapping[str, Any]], scale: float = 1.0) -> sv.Detections:
    """``sv.Detections`` of reference-format predictions (box centre and size), scaled by ``scale``.

    Malformed items are left out; a missing confidence is NaN (its label shows the class alone).
    """
    boxes, confidences, class_ids, names = [], [], [], []
    for item in items:
        try:
            x, y = float(item["x"]), float(item["y"])
            half_w, half_h = float(item["width"]) / 2, float(item["height"]) / 2
            class_id = int(item.get("class_id", 0))
        except (KeyError, TypeError, ValueError):
            continue
        boxes.append([(x - half_w) * scale, (y - half_h) * scale, (x + half_w) * scale, (y + half_h) * scale])
        confidence = item.get("confidence")
        confidences.append(float(confidence) if isinstance(confidence, int | float) else math.nan)
        class_ids.append(class_id)
        names.append(str(item.get("class", class_id)))
    if not boxes:
        return sv.Detections.empty()
    return sv.Detections(xyxy=np.array(boxes, dtype=np.float32), confidence=np.array(confidences, dtype=np.float32),
                         class_id=np.array(class_ids, dtype=int), data={CLASS_NAME: np.array(names, dtype=object)})
