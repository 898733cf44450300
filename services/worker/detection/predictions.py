"""Detections -> the reference's JSON prediction format (plain Python types only).

``{"image": {"width", "height"}, "predictions": [{"x", "y", "width", "height", "confidence",
"class", "class_id", "detection_id"}]}`` where x, y is the box centre in source pixels.
"""

from collections.abc import Sequence
from typing import Any

from services.worker.detection.detections import Detections, detection_ids

_PIXEL_DECIMALS = 1
_CONFIDENCE_DECIMALS = 4


def to_prediction(
    detections: Detections, class_names: Sequence[str], image_width: int, image_height: int
) -> dict[str, Any]:
    """The reference prediction dict of one frame's detections."""
    return {
        "image": {"width": int(image_width), "height": int(image_height)},
        "predictions": [
            _prediction(box, float(score), int(class_id), class_names, detection_id)
            for box, score, class_id, detection_id in zip(
                detections.xyxy.tolist(),
                detections.confidence.tolist(),
                detections.class_id.tolist(),
                detection_ids(len(detections)),
                strict=True,
            )
        ],
    }


def _prediction(box: list[float], score: float, class_id: int, class_names: Sequence[str],
                detection_id: str) -> dict[str, Any]:
    x1, y1, x2, y2 = box
    return {
        "x": round((x1 + x2) / 2, _PIXEL_DECIMALS),
        "y": round((y1 + y2) / 2, _PIXEL_DECIMALS),
        "width": round(x2 - x1, _PIXEL_DECIMALS),
        "height": round(y2 - y1, _PIXEL_DECIMALS),
        "confidence": round(score, _CONFIDENCE_DECIMALS),
        "class": class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id),
        "class_id": class_id,
        "detection_id": detection_id,
    }
