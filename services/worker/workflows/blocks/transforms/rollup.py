"""detections_list_rollup@v1: detections made on crops (a second model run on each ``dynamic_crop`` of the parent
detections, gathered by ``dimension_collapse``) rolled up into the parent detections' image and merged.

``child_detections`` holds one item per parent detection, in the parent detections' order (their number must
match); a crop that gave nothing (``null``: its step did not run) counts as no detections. Each child detection
moves by its crop's place in the parent image, and the detections of one class id that overlap are merged, as the
reference: boxes grouped transitively (any intersection when ``overlap_threshold`` is 0, else an IoU of at least
``overlap_threshold``) become the box around them all; the group's confidence is the ``max``, ``mean`` or ``min`` of
its members' (``confidence_strategy``); its class and other fields are its first member's, its detection id a new
one. Detections with masks merge by their masks instead (pasted into the parent image; mask intersection or IoU;
the union of the masks, the box around it), and keypoint detections by their keypoints (a group: every later
detection of the class whose keypoints are within ``keypoint_merge_threshold`` px of the first's on average; the
mean box, the mean keypoints), again as the reference. ``crop_zones`` is each parent box as its four corners
(top-left, top-right, bottom-right, bottom-left) in the parent image.

Where it differs from the reference, on purpose: a crop's place is read from its detections' lineage (where the
crop lies in the parent detections' image, as detections_stitch does), so a crop clipped at the image's edge or
rounded to whole pixels still lands its detections where they were seen; detections without lineage use the
parent box's top-left corner (truncated to whole pixels), which is all the reference reads. The rolled-up
detections are placed on the parent detections' image (its parent id, size and offsets; the reference keeps the
first crop's parent id and crop offsets while giving the boxes in the parent image). Crops where some detections
carry masks and others do not fail the step (the reference fails on them too, less clearly), as does a
``confidence_strategy`` other than max, mean or min from a selector (the reference takes it for ``max`` on boxes
and for ``min`` on masks).
"""

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.catalogue.transformations import CONFIDENCE_STRATEGIES
from services.core.workflows.plan import PlanStep
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.lineage import LINEAGE, empty_detections

PREDICTION_TYPE_KEYPOINTS = "keypoint-detection"
KEYPOINTS_XY = "keypoints_xy"
KEYPOINT_FIELDS = (KEYPOINTS_XY, "keypoints_class_name", "keypoints_class_id", "keypoints_confidence")
_REPLACED = (values.DETECTION_ID, *LINEAGE)  # written anew for a rolled-up detection


@dataclass(slots=True)
class _Child:
    """One child detection in the parent image."""

    box: np.ndarray  # x1, y1, x2, y2
    confidence: float
    class_id: int
    data: dict[str, Any]  # its other per-detection fields, by key
    mask: np.ndarray | None = None  # (h, w) bool in the parent image
    keypoints: dict[str, Any] = field(default_factory=dict)  # KEYPOINT_FIELDS present, keypoints_xy moved


def combined_confidence(confidences: list[float], strategy: str) -> float:
    if strategy == "max":
        return max(confidences)
    if strategy == "min":
        return min(confidences)
    return float(np.mean(confidences))


def overlapping_groups(count: int, linked: np.ndarray) -> list[list[int]]:
    """The connected groups of ``count`` items whose pairs ``linked`` (count x count bool) marks, each group in
    index order, the groups in the order of their first item."""
    root = list(range(count))

    def find(item: int) -> int:
        while root[item] != item:
            root[item] = root[root[item]]
            item = root[item]
        return item

    for first, second in zip(*np.nonzero(np.triu(linked, 1)), strict=True):
        root[find(int(first))] = find(int(second))
    groups: dict[int, list[int]] = {}
    for item in range(count):
        groups.setdefault(find(item), []).append(item)
    return list(groups.values())


def _links(intersection: np.ndarray, areas: np.ndarray, threshold: float) -> np.ndarray:
    if threshold <= 0.0:
        linked: np.ndarray = intersection > 0
        return linked
    union = areas[:, None] + areas[None, :] - intersection
    iou = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
    enough: np.ndarray = iou >= threshold
    return enough


def box_groups(boxes: np.ndarray, threshold: float) -> list[list[int]]:
    low = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    high = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    sides = np.clip(high - low, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return overlapping_groups(len(boxes), _links(sides[..., 0] * sides[..., 1], areas, threshold))


def mask_groups(masks: list[np.ndarray], boxes: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups by mask intersection (or IoU): only the pairs whose boxes overlap are compared pixel by pixel."""
    count = len(masks)
    areas = np.array([np.count_nonzero(mask) for mask in masks], dtype=np.float64)
    intersection = np.zeros((count, count))
    for first in range(count):
        for second in range(first + 1, count):
            (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = boxes[first], boxes[second]
            if ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1:
                continue
            shared = float(np.count_nonzero(masks[first] & masks[second]))
            intersection[first, second] = intersection[second, first] = shared
    return overlapping_groups(count, _links(intersection, areas, threshold))


def keypoint_groups(children: list[_Child], threshold: float) -> list[list[int]]:
    """Greedy, as the reference: each detection not yet taken takes every later one whose keypoints (as many) are
    within ``threshold`` px of its own on average; detections without keypoints stay alone, after the others."""
    with_points = [i for i, child in enumerate(children) if KEYPOINTS_XY in child.keypoints]
    groups, taken = [], set()
    for position, index in enumerate(with_points):
        if index in taken:
            continue
        group = [index]
        taken.add(index)
        own = np.asarray(children[index].keypoints[KEYPOINTS_XY], dtype=np.float64).reshape(-1, 2)
        for other in with_points[position + 1:]:
            theirs = np.asarray(children[other].keypoints[KEYPOINTS_XY], dtype=np.float64).reshape(-1, 2)
            if other not in taken and len(theirs) == len(own) and len(own) and \
                    float(np.linalg.norm(own - theirs, axis=1).mean()) < threshold:
                group.append(other)
                taken.add(other)
        groups.append(group)
    return groups + [[i] for i in range(len(children)) if i not in with_points]


def _merged_keypoints(group: list[_Child]) -> dict[str, Any]:
    first = group[0].keypoints
    if len(group) == 1 or KEYPOINTS_XY not in first:
        return first
    merged = {key: first[key] for key in KEYPOINT_FIELDS[1:3] if key in first}
    merged[KEYPOINTS_XY] = np.mean([np.asarray(c.keypoints[KEYPOINTS_XY], dtype=np.float64) for c in group], axis=0)
    if "keypoints_confidence" in first:
        merged["keypoints_confidence"] = np.mean(
            [np.asarray(c.keypoints["keypoints_confidence"], dtype=np.float64) for c in group], axis=0)
    return merged


def _crop_offset(parent: sv.Detections, index: int, child: sv.Detections) -> np.ndarray:
    """Where the image ``child`` was made on lies in the parent detections' image (x, y)."""
    if values.ROOT_PARENT_COORDINATES in child.data and values.ROOT_PARENT_COORDINATES in parent.data:
        crop = np.asarray(child.data[values.ROOT_PARENT_COORDINATES], dtype=np.int64).reshape(-1, 2)[0]
        image = np.asarray(parent.data[values.ROOT_PARENT_COORDINATES], dtype=np.int64).reshape(-1, 2)[index]
        place: np.ndarray = (crop - image).astype(np.float64)
        return place
    corner: np.ndarray = np.trunc(np.asarray(parent.xyxy[index][:2], dtype=np.float64))
    return corner


def _parent_size(parent: sv.Detections) -> tuple[int, int] | None:
    """(h, w) of the parent detections' image, when they know it."""
    if values.IMAGE_DIMENSIONS in parent.data and len(parent):
        height, width = np.asarray(parent.data[values.IMAGE_DIMENSIONS]).reshape(-1, 2)[0].tolist()
        return int(height), int(width)
    size = parent.metadata.get(values.IMAGE_SIZE)
    return None if size is None else (int(size[0]), int(size[1]))


def _pasted(mask: np.ndarray, offset: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A crop's (h, w) mask at ``offset`` in an image of ``size`` (h, w), clipped to it."""
    canvas = np.zeros(size, dtype=bool)
    x, y = int(offset[0]), int(offset[1])
    height, width = mask.shape
    top, left = max(0, y), max(0, x)
    bottom, right = min(size[0], y + height), min(size[1], x + width)
    if bottom > top and right > left:
        canvas[top:bottom, left:right] = mask[top - y:bottom - y, left - x:right - x]
    return canvas


def _children(parent: sv.Detections, crops: list[sv.Detections | None]) -> tuple[list[_Child], str, list[str]]:
    """Every child detection in the parent image, how they merge (boxes, masks or keypoints), the data keys kept."""
    present = [(i, crop) for i, crop in enumerate(crops) if crop is not None and len(crop)]
    with_masks = {crop.mask is not None for _, crop in present}
    if len(with_masks) > 1:
        raise ValueError("detections_list_rollup: some crops' detections carry masks and others do not")
    keypoints = any(str(np.asarray(crop.data.get(values.PREDICTION_TYPE, [""]))[0]) == PREDICTION_TYPE_KEYPOINTS
                    for _, crop in present)
    mode = "masks" if with_masks == {True} else "keypoints" if keypoints else "boxes"
    keys = [key for key in (set.intersection(*(set(crop.data) for _, crop in present)) if present else set())
            if key not in _REPLACED and key not in KEYPOINT_FIELDS]
    size = _parent_size(parent)
    if mode == "masks" and size is None:
        raise ValueError("detections_list_rollup: masks need parent detections that know their image's size "
                         "(a model step's predictions)")
    children = []
    for index, crop in present:
        offset = _crop_offset(parent, index, crop)
        xyxy = np.asarray(crop.xyxy, dtype=np.float64) + np.tile(offset, 2)
        confidence = crop.confidence if crop.confidence is not None else np.ones(len(crop))
        class_id = crop.class_id if crop.class_id is not None else np.zeros(len(crop), dtype=np.int64)
        for row in range(len(crop)):
            child = _Child(xyxy[row], float(confidence[row]), int(class_id[row]),
                           {key: crop.data[key][row] for key in keys})
            if mode == "masks":
                child.mask = _pasted(np.asarray(crop.mask)[row].astype(bool), offset, size or (0, 0))
            if mode == "keypoints" and KEYPOINTS_XY in crop.data:
                child.keypoints = {key: crop.data[key][row] for key in KEYPOINT_FIELDS if key in crop.data}
                moved = np.asarray(child.keypoints[KEYPOINTS_XY], dtype=np.float64).reshape(-1, 2) + offset
                child.keypoints[KEYPOINTS_XY] = moved
            children.append(child)
    return children, mode, sorted(keys)


def _merged(group: list[_Child], mode: str, strategy: str) -> _Child | None:
    first = group[0]
    confidence = combined_confidence([c.confidence for c in group], strategy)
    if mode == "masks":
        mask = np.logical_or.reduce([c.mask for c in group if c.mask is not None])
        rows, columns = np.nonzero(mask)
        if not len(rows):
            return None  # as the reference: a merged mask with no pixel (the crop lay outside the image) is dropped
        box = np.array([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1], dtype=np.float64)
        return _Child(box, confidence, first.class_id, first.data, mask)
    boxes = np.array([c.box for c in group])
    if mode == "keypoints":
        box = boxes.mean(axis=0) if len(group) > 1 else first.box
        return _Child(box, confidence, first.class_id, first.data, keypoints=_merged_keypoints(group))
    box = np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])
    return _Child(box, confidence, first.class_id, first.data)


def rolled_up(parent: sv.Detections, crops: list[sv.Detections | None], strategy: str = "max",
              overlap_threshold: float = 0.0, keypoint_merge_threshold: float = 10.0) -> sv.Detections:
    """The crops' detections in the parent detections' image, merged per class id."""
    children, mode, keys = _children(parent, crops)
    by_class: dict[int, list[_Child]] = {}
    for child in children:
        by_class.setdefault(child.class_id, []).append(child)
    merged: list[_Child] = []
    for members in by_class.values():
        if mode == "keypoints":
            groups = keypoint_groups(members, keypoint_merge_threshold)
        elif mode == "masks":
            groups = mask_groups([c.mask for c in members if c.mask is not None], np.array([c.box for c in members]),
                                 overlap_threshold)
        else:
            groups = box_groups(np.array([c.box for c in members]), overlap_threshold)
        merged.extend(m for group in groups if (m := _merged([members[i] for i in group], mode, strategy)))
    if not merged:
        return empty_detections(_parent_size(parent))
    return _placed(merged, parent, mode, keys)


def _placed(merged: list[_Child], parent: sv.Detections, mode: str, keys: list[str]) -> sv.Detections:
    count = len(merged)
    detections = sv.Detections(
        xyxy=np.array([m.box for m in merged], dtype=np.float32).reshape(-1, 4),
        mask=np.array([m.mask for m in merged]) if mode == "masks" else None,
        confidence=np.array([m.confidence for m in merged], dtype=np.float32),
        class_id=np.array([m.class_id for m in merged], dtype=np.int64),
    )
    data: dict[str, Any] = {key: np.array([m.data[key] for m in merged]) for key in keys}
    data[values.DETECTION_ID] = np.array([str(uuid.uuid4()) for _ in merged], dtype=object)
    for key in LINEAGE:
        if key in parent.data:
            data[key] = np.repeat(np.asarray(parent.data[key])[:1], count, axis=0)
    if mode == "keypoints":
        for key in KEYPOINT_FIELDS:
            if any(key in m.keypoints for m in merged):
                column = np.empty(count, dtype=object)
                column[:] = [m.keypoints.get(key) for m in merged]
                data[key] = column
    detections.data = data
    size = _parent_size(parent)
    if size is not None:
        detections.metadata[values.IMAGE_SIZE] = size
    return detections


def crop_zones(parent: sv.Detections) -> list[list[tuple[float, float]]]:
    return [[(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
            for x1, y1, x2, y2 in np.asarray(parent.xyxy, dtype=np.float64).tolist()]


class DetectionsListRollUp:
    """``roboflow_core/detections_list_rollup@v1``: ``rolled_up_detections`` and ``crop_zones``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, parent_detection: sv.Detections, child_detections: Any, confidence_strategy: str = "max",
            overlap_threshold: float = 0.0, keypoint_merge_threshold: float = 10.0) -> dict[str, Any]:
        if confidence_strategy not in CONFIDENCE_STRATEGIES:
            raise ValueError(f"confidence_strategy must be one of {', '.join(CONFIDENCE_STRATEGIES)}, "
                             f"got {confidence_strategy!r}")
        for name, value, upper in (("overlap_threshold", overlap_threshold, 1.0),
                                   ("keypoint_merge_threshold", keypoint_merge_threshold, None)):
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or \
                    value < 0 or (upper is not None and value > upper):
                expected = "between 0 and 1" if upper is not None else ">= 0"
                raise ValueError(f"{name} must be a number {expected}, got {value!r}")
        crops = list(child_detections) if isinstance(child_detections, list | tuple) else None
        if crops is None or not all(crop is None or isinstance(crop, sv.Detections) for crop in crops):
            raise ValueError("child_detections must be a list of detections, one per parent detection (the crops' "
                             "predictions through dimension_collapse)")
        if len(crops) != len(parent_detection):
            raise ValueError(f"child_detections has {len(crops)} items for {len(parent_detection)} parent detections "
                             "(one per parent detection expected)")
        return {"rolled_up_detections": rolled_up(parent_detection, crops, confidence_strategy,
                                                  float(overlap_threshold), float(keypoint_merge_threshold)),
                "crop_zones": crop_zones(parent_detection)}
