"""Detections stitch (SAHI's second half): detections made on slices or crops, back in one image.

Each detection is moved by where its image sits inside the reference image: the difference of the
two root offsets (so slices of a crop stitch onto that crop, and deeper nesting works), or its
parent offset when it carries no root lineage. Then every part is merged and overlaps are removed
with supervision's NMS or NMM, as the reference does.
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.lineage import copy_of, empty_detections, place_on
from services.worker.workflows.values import WorkflowImage


def offsets_in(detections: sv.Detections, reference: WorkflowImage) -> np.ndarray:
    """(N, 2) x, y of the image each detection was made on, in the reference image's pixels."""
    data = detections.data
    if values.ROOT_PARENT_COORDINATES in data:
        root = np.asarray(data[values.ROOT_PARENT_COORDINATES], dtype=np.int64).reshape(-1, 2)
        return root - np.array([reference.root_origin.offset_x, reference.root_origin.offset_y], dtype=np.int64)
    if values.PARENT_COORDINATES in data:
        return np.asarray(data[values.PARENT_COORDINATES], dtype=np.int64).reshape(-1, 2)
    raise ValueError(
        "detections_stitch needs detections that say where their image lies (parent coordinates): "
        "predictions of a model step run on slices or crops"
    )


def moved_into(detections: sv.Detections, reference: WorkflowImage) -> sv.Detections:
    """A copy of ``detections`` in the reference image's pixels and lineage."""
    offsets = offsets_in(detections, reference)
    moved = copy_of(detections)
    moved.xyxy = (detections.xyxy + np.hstack([offsets, offsets])).astype(detections.xyxy.dtype)
    if detections.mask is not None:
        masks, resolution_wh = np.asarray(detections.mask, dtype=bool), (reference.width, reference.height)
        moved.mask = np.concatenate([sv.move_masks(masks=masks[i:i + 1], offset=offsets[i], resolution_wh=resolution_wh)
                                     for i in range(len(detections))])
    return place_on(moved, reference)


def merge_parts(parts: list[sv.Detections]) -> sv.Detections:
    """``sv.Detections.merge`` of the non-empty parts, keeping only the data keys they all have."""
    parts = [part for part in parts if len(part)]
    if not parts:
        return empty_detections()
    common = set.intersection(*(set(part.data) for part in parts))
    for part in parts:
        part.data = {key: value for key, value in part.data.items() if key in common}
    return sv.Detections.merge(parts)


class DetectionsStitch:
    """``roboflow_core/detections_stitch@v1``: ``predictions`` is every slice's detections at once."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, reference_image: WorkflowImage, predictions: list[sv.Detections | None],
            overlap_filtering_strategy: str = "nms", iou_threshold: float = 0.3) -> dict[str, Any]:
        if overlap_filtering_strategy not in ("none", "nms", "nmm"):
            raise ValueError(f"overlap_filtering_strategy must be none, nms or nmm, got {overlap_filtering_strategy!r}")
        if isinstance(predictions, sv.Detections):  # a single image's detections (no slicing upstream)
            predictions = [predictions]
        parts = [moved_into(part, reference_image) for part in predictions if part is not None and len(part)]
        merged = merge_parts(parts)
        merged.metadata[values.IMAGE_SIZE] = (reference_image.height, reference_image.width)
        if len(merged) == 0 or overlap_filtering_strategy == "none":
            return {"predictions": merged}
        if overlap_filtering_strategy == "nms":
            return {"predictions": merged.with_nms(threshold=iou_threshold)}
        return {"predictions": merged.with_nmm(threshold=iou_threshold)}
