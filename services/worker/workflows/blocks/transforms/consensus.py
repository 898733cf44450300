"""Detections consensus: detections of several models on one image, kept where enough models agree.

Theory of operation (the reference's greedy vote): sources are walked in order, and each of their
detections not yet used looks in every other source for its best match (the unused detection of
highest IoU above the threshold, of the same class when class-aware). With at least
``required_votes - 1`` matching sources, the detection and its matches merge into one (class,
confidence and box aggregated by the chosen modes) and are all marked used, if the merged
confidence reaches ``confidence``. Presence is then decided on the merged detections.
"""

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.detection.detections import detection_ids
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.lineage import LINEAGE, empty_detections

_AGGREGATE: dict[str, Callable[[Sequence[float]], float]] = {"average": statistics.mean, "max": max, "min": min}


@dataclass(frozen=True, slots=True)
class Vote:
    """One detection of one source: what the merge needs of it."""

    xyxy: np.ndarray
    confidence: float
    class_name: str
    class_id: int
    mask: np.ndarray | None
    lineage: dict[str, Any]

    @property
    def area(self) -> float:
        if self.mask is not None:
            return float(self.mask.sum())
        return float((self.xyxy[2] - self.xyxy[0]) * (self.xyxy[3] - self.xyxy[1]))


def votes_of(detections: sv.Detections) -> list[Vote]:
    names = detections.data.get(values.CLASS_NAME)
    confidence = detections.confidence if detections.confidence is not None else np.ones(len(detections))
    class_id = detections.class_id if detections.class_id is not None else np.zeros(len(detections), dtype=int)
    masks = None if detections.mask is None else np.asarray(detections.mask)
    return [
        Vote(detections.xyxy[i].astype(np.float64), float(confidence[i]),
             str(names[i]) if names is not None else str(class_id[i]), int(class_id[i]),
             None if masks is None else masks[i],
             {key: detections.data[key][i] for key in LINEAGE if key in detections.data})
        for i in range(len(detections))
    ]


def best_matches(vote: Vote, source: int, sources: list[list[Vote]], used: set[tuple[int, int]],
                 iou_threshold: float, class_aware: bool) -> list[tuple[int, int]]:
    """(source, index) of the best unused match of ``vote`` in each other source that has one."""
    matches = []
    for other, candidates in enumerate(sources):
        if other == source or not candidates:
            continue
        ious = sv.box_iou_batch(vote.xyxy[None, :], np.stack([c.xyxy for c in candidates]))[0]
        best, best_iou = -1, iou_threshold
        for index, iou in enumerate(np.nan_to_num(ious).tolist()):
            if (other, index) in used or (class_aware and candidates[index].class_name != vote.class_name):
                continue
            if iou > best_iou:
                best, best_iou = index, iou
        if best >= 0:
            matches.append((other, best))
    return matches


def merged(group: list[Vote], confidence_mode: str, box_mode: str, mask_mode: str) -> Vote:
    """One vote out of a group: class and confidence by ``confidence_mode``, box (or mask) by the others."""
    confidences = [vote.confidence for vote in group]
    if confidence_mode == "average":  # majority class (first seen wins a tie)
        class_name, class_id = Counter((v.class_name, v.class_id) for v in group).most_common(1)[0][0]
    else:
        chosen = group[confidences.index(_AGGREGATE[confidence_mode](confidences))]
        class_name, class_id = chosen.class_name, chosen.class_id
    mask = _merged_mask(group, mask_mode)
    if mask is not None:
        xyxy = sv.mask_to_xyxy(mask[None])[0].astype(np.float64)
    elif box_mode == "average":
        xyxy = np.mean([vote.xyxy for vote in group], axis=0)
    else:
        areas = [vote.area for vote in group]
        xyxy = group[areas.index(_AGGREGATE[box_mode](areas))].xyxy
    return Vote(xyxy, float(_AGGREGATE[confidence_mode](confidences)), class_name, class_id, mask, group[0].lineage)


def _merged_mask(group: list[Vote], mode: str) -> np.ndarray | None:
    shapes = [vote.mask.shape for vote in group if vote.mask is not None]
    if not shapes:
        return None
    masks = np.stack([vote.mask if vote.mask is not None else np.zeros(shapes[0], dtype=bool) for vote in group])
    if mode == "union":
        return np.asarray(np.any(masks, axis=0))
    if mode == "intersection":
        return np.asarray(np.all(masks, axis=0))
    areas = masks.reshape(len(group), -1).sum(axis=1).tolist()
    return np.asarray(masks[areas.index(max(areas) if mode == "max" else min(areas))])


def to_detections(votes: list[Vote], image_size: Any) -> sv.Detections:
    if not votes:
        return empty_detections(image_size)
    masks = [vote.mask for vote in votes]
    detections = sv.Detections(
        xyxy=np.array([vote.xyxy for vote in votes], dtype=np.float64).reshape(-1, 4),
        confidence=np.array([vote.confidence for vote in votes], dtype=np.float64),
        class_id=np.array([vote.class_id for vote in votes], dtype=np.int64),
        mask=np.stack(masks) if all(m is not None for m in masks) else None,  # type: ignore[arg-type]
    )
    kind = "instance-segmentation" if detections.mask is not None else "object-detection"
    shared = [key for key in LINEAGE if all(key in vote.lineage for vote in votes)]
    detections.data = {
        values.CLASS_NAME: np.array([vote.class_name for vote in votes], dtype=object),
        values.DETECTION_ID: np.array(detection_ids(len(votes)), dtype=object),
        values.PREDICTION_TYPE: np.array([kind] * len(votes), dtype=object),
        **{key: _column([vote.lineage[key] for vote in votes]) for key in shared},
    }
    if image_size is not None:
        detections.metadata[values.IMAGE_SIZE] = image_size
    return detections


def _column(items: list[Any]) -> np.ndarray:
    return np.array(items, dtype=object) if isinstance(items[0], str) else np.array(items)


def presence(consensus: list[Vote], class_aware: bool, mode: str,
             required_objects: int | dict[str, int] | None) -> tuple[bool, dict[str, float]]:
    """``object_present`` and ``presence_confidence`` of the merged detections (the reference's rules)."""
    if not consensus:
        return False, {}
    required = required_objects or 0
    if isinstance(required, dict) and not class_aware:
        required = sum(required.values())
    if isinstance(required, int) and len(consensus) < required:
        return False, {}
    if not class_aware:
        return True, {"any_object": float(_AGGREGATE[mode]([vote.confidence for vote in consensus]))}
    by_class: dict[str, list[float]] = {}
    for vote in consensus:
        by_class.setdefault(vote.class_name, []).append(vote.confidence)
    if isinstance(required, dict) and any(len(by_class.get(name, [])) < count for name, count in required.items()):
        return False, {}
    return True, {name: float(_AGGREGATE[mode](confidences)) for name, confidences in by_class.items()}


def _parent_id(sources: list[sv.Detections]) -> None:
    found = {str(p) for d in sources if values.PARENT_ID in d.data for p in d.data[values.PARENT_ID]}
    if len(found) > 1:
        raise ValueError("detections_consensus: its predictions were made on different images "
                         f"(parent ids {sorted(found)}); consensus needs predictions of the same image")


class DetectionsConsensus:
    """``roboflow_core/detections_consensus@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, predictions_batches: list[Any], required_votes: int, class_aware: bool = True,
            iou_threshold: float = 0.3, confidence: float = 0.0, classes_to_consider: list[str] | None = None,
            required_objects: int | dict[str, int] | None = None, presence_confidence_aggregation: str = "max",
            detections_merge_confidence_aggregation: str = "average",
            detections_merge_coordinates_aggregation: str = "average",
            detections_merge_mask_aggregation: str = "union") -> dict[str, Any]:
        sources = _sources(predictions_batches)
        if all(len(d) == 0 for d in sources):
            image_size = next((d.metadata.get(values.IMAGE_SIZE) for d in sources), None)
            return {"predictions": empty_detections(image_size), "object_present": False, "presence_confidence": {}}
        _parent_id(sources)
        votes = [[v for v in votes_of(d) if not classes_to_consider or v.class_name in classes_to_consider]
                 for d in sources]
        used: set[tuple[int, int]] = set()
        consensus: list[Vote] = []
        for source, candidates in enumerate(votes):
            for index, vote in enumerate(candidates):
                if (source, index) in used:
                    continue
                matches = best_matches(vote, source, votes, used, iou_threshold, class_aware)
                if len(matches) < required_votes - 1:
                    continue
                group = [vote, *(votes[s][i] for s, i in matches)]
                result = merged(group, detections_merge_confidence_aggregation,
                                detections_merge_coordinates_aggregation, detections_merge_mask_aggregation)
                if result.confidence < confidence:
                    continue
                consensus.append(result)
                used.update([(source, index), *matches])
        image_size = next((d.metadata.get(values.IMAGE_SIZE) for d in sources if len(d)), None)
        present, presence_confidence = presence(consensus, class_aware, presence_confidence_aggregation,
                                                required_objects)
        return {"predictions": to_detections(consensus, image_size), "object_present": present,
                "presence_confidence": presence_confidence}


def _sources(predictions_batches: Any) -> list[sv.Detections]:
    if isinstance(predictions_batches, sv.Detections):
        predictions_batches = [predictions_batches]
    if not isinstance(predictions_batches, list) or not predictions_batches:
        raise ValueError("detections_consensus needs a non-empty list of predictions (predictions_batches)")
    for index, item in enumerate(predictions_batches):
        if not isinstance(item, sv.Detections):
            raise ValueError(f"predictions_batches[{index}] is not detections but {type(item).__name__}")
    return list(predictions_batches)
