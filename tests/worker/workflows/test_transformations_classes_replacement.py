"""Detections classes replacement against hand-built cases: detections on a black 768x576 frame and
classifications made on their crops (as dynamic_crop names them: a crop's id is its detection's id)."""

import sys
from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows import values
from services.worker.workflows.values import Classification
from tests.worker.workflows.transformations_support import Step, as_frame, detector, found, step_of

FRAME = as_frame(np.zeros((576, 768, 3), dtype=np.uint8))
COLOURS = ("red", "green", "blue")
BOXES = [(10, 10, 110, 210, 0.9, "person"), (300, 40, 380, 240, 0.8, "person"), (500, 300, 700, 400, 0.7, "car")]


def replacement(**fields: Any) -> Step:
    step = {"type": "roboflow_core/detections_classes_replacement@v1", "name": "replace",
            "object_detection_predictions": "$steps.detect.predictions",
            "classification_predictions": "$steps.classify.predictions", **fields}
    crop = {"type": "roboflow_core/dynamic_crop@v1", "name": "crop", "images": "$inputs.image",
            "predictions": "$steps.detect.predictions"}
    classify = {"type": "roboflow_core/roboflow_classification_model@v2", "name": "classify",
                "images": "$steps.crop.crops", "model_id": "demo-colours/1"}
    return step_of(step, detector("detect"), crop, classify)


def classified(detections: sv.Detections, index: int, confidences: tuple[float, ...]) -> Classification:
    """The classification of the crop of detection ``index``."""
    x1, y1, x2, y2 = detections.xyxy[index].astype(int).tolist()
    crop = FRAME.crop(x1, y1, x2, y2, crop_id=str(detections.data[values.DETECTION_ID][index]))
    return Classification(crop, COLOURS, np.array(confidences, dtype=np.float32), f"inference-{index}")


def run(step: Step, detections: sv.Detections, results: Any) -> sv.Detections:
    replaced = step.run(object_detection_predictions=detections, classification_predictions=results)["predictions"]
    assert isinstance(replaced, sv.Detections)
    return replaced


def test_each_detection_takes_the_top_class_of_its_crop() -> None:
    detections = found(FRAME, BOXES)
    results = [classified(detections, 2, (0.1, 0.2, 0.7)), classified(detections, 0, (0.6, 0.3, 0.1)),
               classified(detections, 1, (0.2, 0.5, 0.3))]  # in any order: matched by the crop's parent id
    replaced = run(replacement(), detections, results)
    assert np.array_equal(replaced.xyxy, detections.xyxy)
    assert replaced.data[values.CLASS_NAME].tolist() == ["red", "green", "blue"]
    assert replaced.class_id.tolist() == [0, 1, 2]
    assert np.allclose(replaced.confidence, [0.6, 0.5, 0.7])
    new_ids = replaced.data[values.DETECTION_ID].tolist()
    assert len(set(new_ids)) == 3 and not set(new_ids) & set(detections.data[values.DETECTION_ID].tolist())
    assert replaced.data[values.PARENT_ID].tolist() == [FRAME.parent_id] * 3  # the lineage stays the frame's
    assert detections.data[values.CLASS_NAME].tolist() == ["person", "person", "car"]  # the input is untouched


def test_a_detection_whose_crop_has_no_classification_is_left_out_even_with_a_fallback() -> None:
    detections = found(FRAME, BOXES)
    stranger = FRAME.crop(0, 0, 50, 50, crop_id="not-a-detection")
    results = [classified(detections, 1, (0.1, 0.1, 0.8)), None,
               Classification(stranger, COLOURS, np.array([1.0, 0.0, 0.0], dtype=np.float32), "other")]
    replaced = run(replacement(fallback_class_name="unknown"), detections, results)
    assert np.array_equal(replaced.xyxy, detections.xyxy[[1]])
    assert replaced.data[values.CLASS_NAME].tolist() == ["blue"]


def test_a_classification_without_classes_takes_the_fallback() -> None:
    detections = found(FRAME, BOXES[:2])
    crop = classified(detections, 0, (1.0, 0.0, 0.0)).image
    empty = Classification(crop, (), np.zeros(0, dtype=np.float32), "none")
    results = [empty, classified(detections, 1, (0.9, 0.05, 0.05))]
    assert run(replacement(), detections, results).data[values.CLASS_NAME].tolist() == ["red"]
    kept = run(replacement(fallback_class_name="unknown", fallback_class_id=7), detections, results)
    assert kept.data[values.CLASS_NAME].tolist() == ["unknown", "red"]
    assert kept.class_id.tolist() == [7, 0] and kept.confidence.tolist() == [0.0, pytest.approx(0.9)]
    negative = run(replacement(fallback_class_name="unknown", fallback_class_id=-1), detections, results)
    assert negative.class_id.tolist() == [sys.maxsize, 0]


@pytest.mark.parametrize("results", [[], [None, None], None])
def test_no_classification_at_all_gives_no_detections_with_the_image_size(results: Any) -> None:
    replaced = run(replacement(fallback_class_name="unknown"), found(FRAME, BOXES), results)
    assert len(replaced) == 0
    assert replaced.metadata[values.IMAGE_SIZE] == (576, 768)


def test_class_names_as_strings_are_matched_by_position() -> None:
    detections = found(FRAME, BOXES)
    replaced = run(replacement(fallback_class_name="unknown"), detections, ["red", None, ["blue", "ignored"]])
    assert replaced.data[values.CLASS_NAME].tolist() == ["red", "unknown", "blue"]
    assert replaced.class_id.tolist() == [0, sys.maxsize, 0] and replaced.confidence.tolist() == [1.0, 0.0, 1.0]
    without_fallback = run(replacement(), detections, ["red", [], "green"])
    assert np.array_equal(without_fallback.xyxy, detections.xyxy[[0, 2]])
    assert without_fallback.data[values.CLASS_NAME].tolist() == ["red", "green"]


@pytest.mark.parametrize(("results", "message"), [
    (lambda d: [classified(d, 0, (1.0, 0.0, 0.0)), "red"], "must all be classifications, or all class names"),
    (lambda d: ["red", 3], "must be strings or lists of strings, got int"),
    (lambda d: [["red"], [["nested"]]], "must be strings or lists of strings, got list"),
])
def test_mixed_or_unknown_values_are_a_clear_error(results: Any, message: str) -> None:
    detections = found(FRAME, BOXES)
    with pytest.raises(ValueError, match=message):
        run(replacement(), detections, results(detections))
