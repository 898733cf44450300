"""Non-maximum suppression in pure numpy: threshold, top-k, greedy per-class (or agnostic) NMS, cap."""

import numpy as np


def suppress(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    *,
    confidence: float,
    iou_threshold: float,
    class_agnostic: bool,
    max_candidates: int,
    max_detections: int,
) -> np.ndarray:
    """Indices of the kept boxes, best score first.

    Boxes scoring below ``confidence`` are dropped, then only the ``max_candidates`` best enter
    NMS; a box is suppressed by a better one of the same class (any class when
    ``class_agnostic``) overlapping it by more than ``iou_threshold``. At most ``max_detections``
    indices are returned.
    """
    candidates = np.flatnonzero(scores >= confidence)
    order = candidates[np.argsort(-scores[candidates], kind="stable")][:max_candidates]
    boxes = xyxy[order].astype(np.float32)
    if not class_agnostic and len(order):
        # Shifting each class into its own far-apart region makes one NMS pass per-class.
        span = float(boxes.max() - min(boxes.min(), 0.0)) + 1.0
        boxes = boxes + (class_ids[order].astype(np.float32) * span)[:, None]
    kept: np.ndarray = order[_greedy(boxes, iou_threshold, max_detections)]
    return kept


def _greedy(boxes: np.ndarray, iou_threshold: float, limit: int) -> np.ndarray:
    """Greedy NMS over boxes already sorted by descending score; positions of those kept."""
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    remaining = np.arange(len(boxes))
    kept: list[int] = []
    while len(remaining) and len(kept) < limit:
        best, rest = remaining[0], remaining[1:]
        kept.append(int(best))
        overlap = _iou(boxes[best], areas[best], boxes[rest], areas[rest])
        remaining = rest[overlap <= iou_threshold]
    return np.array(kept, dtype=np.int64)


def _iou(box: np.ndarray, area: np.ndarray, others: np.ndarray, other_areas: np.ndarray) -> np.ndarray:
    width = (np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])).clip(0)
    height = (np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])).clip(0)
    inter = width * height
    union = area + other_areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
