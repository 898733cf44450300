"""Detections classes replacement: the second stage of detect → crop → classify, back on the detections.

Each detection takes the class of the classification made on its crop: a crop's id is the id of the
detection it was cut from (``dynamic_crop``), so a classification's image ``parent_id`` names its
detection. The detection keeps its box and lineage and takes the classification's top class, that
class's index in the classifier and its confidence, with a new detection id; a detection whose crop
has no classification (a crop clipped away, a classifier's step that did not run at all) is left out, as
in the reference: the block runs when a selector gives null (``accepts_empty``), and only null detections
give null.
A classification without any class (a classifier with no classes) gives ``fallback_class_name`` with
``fallback_class_id`` (``sys.maxsize`` when unset or negative) and confidence 0, or is left out too.
A multi-label classification gives its most confident class (of all its classes, as the reference), with that
class's id and confidence; one that predicts no class, or whose confidences are all 0, is left out (no fallback).

Strings instead of classifications (a class name per crop, e.g. a property extracted from each crop's
result) are matched by position: the i-th string is the i-th detection's class, class id 0, confidence
1; for a list of strings its first; a missing one (null, or an empty list) takes the fallback or is
left out.
"""

import sys
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.detection.detections import detection_ids
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.lineage import copy_of
from services.worker.workflows.values import Classification

# A detection's new class: name, id, confidence.
_Class = tuple[str, int, float]


class DetectionsClassesReplacement:
    """``roboflow_core/detections_classes_replacement@v1``: ``classification_predictions`` is every crop's
    result at once (or one result, when the classifier ran on the whole image)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, object_detection_predictions: sv.Detections | None, classification_predictions: Any,
            fallback_class_name: str | None = None, fallback_class_id: int | None = None) -> dict[str, Any]:
        if object_detection_predictions is None:  # the block accepts empty values: no detections, nothing out
            return {"predictions": None}
        results = (classification_predictions if isinstance(classification_predictions, list)
                   else [classification_predictions])
        fallback = _fallback(fallback_class_name, fallback_class_id)
        first = next((result for result in results if result is not None), None)
        if first is None:
            return {"predictions": copy_of(object_detection_predictions, [])}
        if isinstance(first, str | list):
            chosen = _by_position(len(object_detection_predictions), results, fallback)
        else:
            chosen = _by_parent(object_detection_predictions, results, fallback)
        replaced = copy_of(object_detection_predictions, list(chosen))
        classes = list(chosen.values())
        replaced.class_id = np.array([class_id for _, class_id, _ in classes], dtype=np.int64)
        replaced.confidence = np.array([confidence for _, _, confidence in classes], dtype=np.float32)
        replaced.data[values.CLASS_NAME] = np.array([name for name, _, _ in classes], dtype=object)
        replaced.data[values.DETECTION_ID] = np.array(detection_ids(len(classes)), dtype=object)
        return {"predictions": replaced}


def _fallback(name: str | None, class_id: int | None) -> _Class | None:
    if not name:
        return None
    return name, class_id if class_id is not None and class_id >= 0 else sys.maxsize, 0.0


def _by_parent(detections: sv.Detections, results: list[Any], fallback: _Class | None) -> dict[int, _Class]:
    """Detection index -> its new class, for the detections whose crop was classified."""
    by_detection: dict[str, _Class | None] = {}
    for result in results:
        if result is None:
            continue
        if not isinstance(result, Classification):
            raise ValueError("classification_predictions must all be classifications, or all class names "
                             f"(strings), got {type(result).__name__}")
        if result.multi_label:
            by_detection[result.image.parent_id] = _most_confident(result)
        else:
            by_detection[result.image.parent_id] = _top(result) if len(result.class_names) else fallback
    ids = detections.data.get(values.DETECTION_ID, [])
    chosen = {index: by_detection.get(str(detection_id)) for index, detection_id in enumerate(ids)}
    return {index: new for index, new in chosen.items() if new is not None}


def _top(result: Classification) -> _Class:
    index = result.leading_index
    assert index is not None  # a single-label result with classes has a top class
    return result.class_names[index], result.class_id(index), float(result.confidences[index])


def _most_confident(result: Classification) -> _Class | None:
    """A multi-label result's class, as the reference's: its most confident class of all, none when nothing is
    predicted or every confidence is 0 (no fallback then)."""
    if not result.predicted or not len(result.confidences):
        return None
    index = int(np.argmax(result.confidences))
    confidence = float(result.confidences[index])
    return (result.class_names[index], result.class_id(index), confidence) if confidence else None


def _by_position(count: int, results: list[Any], fallback: _Class | None) -> dict[int, _Class]:
    """Detection index -> its new class, the i-th string naming the i-th detection's class."""
    chosen: dict[int, _Class] = {}
    for index, result in zip(range(count), results, strict=False):
        name = result[0] if isinstance(result, list) and result else result
        if isinstance(name, str):
            chosen[index] = (name, 0, 1.0)
        elif name is None or name == []:
            if fallback is not None:
                chosen[index] = fallback
        else:
            raise ValueError(f"classification_predictions given as class names must be strings or lists of "
                             f"strings, got {type(name).__name__}")
    return chosen
