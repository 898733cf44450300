"""detections_filter@v1 and detections_transformation@v1, built from published definitions."""

from typing import Any

import numpy as np
import pytest

from services.core.workflows import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.operations import QueryLanguageError
from tests.worker.workflows.query_values import boxes, environment, frame, published, resolved, scene


def block_and_step(definition: dict[str, Any], name: str, **parameters: Any) -> tuple[Any, Any]:
    plan = compile_workflow(definition, parameters=parameters)
    step = plan.step(name)
    return REGISTRY[step.type](step, environment()), step


def test_published_filter_keeps_wanted_classes_bigger_than_a_share_of_the_image() -> None:
    # size >= image size * 0.02 (768 * 576 * 0.02 = 8847.36) and class in the `classes` parameter
    block, step = block_and_step(published("filtering_workflow"), "filtering", model_id="m", classes=["car", "person"])
    image = frame()
    detections = boxes([(0, 0, 100, 100, 0.9, "person"), (200, 40, 260, 160, 0.8, "car"),
                        (300, 0, 500, 200, 0.7, "car"), (500, 0, 700, 200, 0.6, "bicycle")], image)
    inputs = resolved(step, {"$steps.detection.predictions": detections, "$inputs.image": image})
    assert inputs["operations_parameters"] == {"classes": ["car", "person"], "image": image}
    kept = block.run(**inputs)["predictions"]
    assert kept.xyxy[:, 0].tolist() == [0, 300]
    assert kept.data["class_name"].tolist() == ["person", "car"]
    assert set(kept.data) == set(detections.data)


def test_the_filter_runs_frame_after_frame_with_each_frames_parameters() -> None:
    block, step = block_and_step(published("filtering_workflow"), "filtering", model_id="m", classes=["car"])
    kept = []
    for number in range(1, 6):  # n cars of (60 + 10n) x 100 px: kept from n = 3 (9000 >= 8847.36 px)
        image = frame(number=number)
        rows = [(0, 0, 60 + 10 * number, 100, 0.9, "car")] * number + [(0, 0, 400, 400, 0.9, "person")]
        inputs = resolved(step, {"$steps.detection.predictions": boxes(rows, image), "$inputs.image": image})
        kept.append(len(block.run(**inputs)["predictions"]))
    assert kept == [0, 0, 3, 4, 5]


def test_the_filter_passes_empty_detections_through() -> None:
    block, step = block_and_step(published("filtering_workflow"), "filtering", model_id="m", classes=["car"])
    image = frame()
    kept = block.run(**resolved(step, {"$steps.detection.predictions": boxes([], image), "$inputs.image": image}))
    assert len(kept["predictions"]) == 0 and "detection_id" in kept["predictions"].data


def test_published_rename_with_parametrised_class_map() -> None:
    block, step = block_and_step(published("workflow_with_parametrised_detections_rename"), "class_rename",
                                 class_map={"person": "human"}, strict=False)
    renamed = block.run(**resolved(step, {"$steps.model.predictions": scene()}))["predictions"]
    assert renamed.data["class_name"].tolist() == ["human", "car", "human"]
    assert renamed.class_id.tolist() == [1024, 2, 1024]


def test_published_top_prediction_keeps_the_most_confident() -> None:
    block, step = block_and_step(published("top_prediction_workflow"), "take_top_prediction",
                                 model_id="m", classes=["person"])
    detections = boxes([(0, 0, 10, 10, 0.3, "car"), (5, 5, 20, 20, 0.95, "person"), (1, 1, 2, 2, 0.5, "car")])
    top = block.run(**resolved(step, {"$steps.model.predictions": detections}))["predictions"]
    assert top.confidence.tolist() == pytest.approx([0.95])


def test_a_chain_that_leaves_detections_is_refused() -> None:
    definition = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model", "images": "$inputs.image",
             "model_id": "m"},
            {"type": "roboflow_core/detections_transformation@v1", "name": "t",
             "predictions": "$steps.model.predictions", "operations": [{"type": "SequenceLength"}]},
        ],
        "outputs": [],
    }
    block, step = block_and_step(definition, "t")
    with pytest.raises(ValueError, match="turn detections into int; this block must output detections"):
        block.run(**resolved(step, {"$steps.model.predictions": scene()}))


def test_value_errors_name_the_operation() -> None:
    definition = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model", "images": "$inputs.image",
             "model_id": "m"},
            {"type": "DetectionsFilter", "name": "f", "predictions": "$steps.model.predictions",
             "operations": [{"type": "DetectionsFilter", "filter_operation": {
                 "type": "StatementGroup", "statements": [{
                     "type": "BinaryStatement",
                     "left_operand": {"type": "DynamicOperand", "operations": [
                         {"type": "ExtractDetectionProperty", "property_name": "class_name"}]},
                     "comparator": {"type": "in (Sequence)"},
                     "right_operand": {"type": "DynamicOperand", "operand_name": "classes"}}]}}]},
        ],
        "outputs": [],
    }
    block, step = block_and_step(definition, "f")
    with pytest.raises(QueryLanguageError, match="operand 'classes' is not defined"):
        block.run(**resolved(step, {"$steps.model.predictions": scene()}))
    inputs = resolved(step, {"$steps.model.predictions": scene()})
    inputs["operations_parameters"] = {"_": 1}
    with pytest.raises(ValueError, match="'_': the name is reserved"):
        block.run(**inputs)


def two_models(step: dict[str, Any]) -> dict[str, Any]:
    """Two detectors on the image, then ``step`` (named "step") on their predictions."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/roboflow_object_detection_model@v2", "name": name, "images": "$inputs.image",
                   "model_id": "m"} for name in ("people", "vehicles")] + [{"name": "step", **step}],
        "outputs": [{"type": "JsonField", "name": "out", "selector": "$steps.step.predictions"}],
    }


def per_class_filter(**fields: Any) -> dict[str, Any]:
    return two_models({"type": "roboflow_core/per_class_confidence_filter@v1",
                       "predictions": "$steps.people.predictions", **fields})


def test_per_class_confidence_filter_applies_each_class_its_threshold() -> None:
    block, step = block_and_step(per_class_filter(class_thresholds={"person": 0.8, "car": 0.7}), "step")
    detections = scene()  # person 0.90, car 0.75, person 0.35
    kept = block.run(**resolved(step, {"$steps.people.predictions": detections}))["predictions"]
    assert kept.confidence.tolist() == pytest.approx([0.9, 0.75])
    assert kept.data["detection_id"].tolist() == detections.data["detection_id"][:2].tolist()
    block, step = block_and_step(per_class_filter(class_thresholds={"car": 0.8}, default_threshold=0.3), "step")
    kept = block.run(**resolved(step, {"$steps.people.predictions": detections}))["predictions"]
    assert kept.data["class_name"].tolist() == ["person", "person"]  # car below its 0.8; people above 0.3


def test_per_class_confidence_filter_keeps_the_empty_and_refuses_a_bad_mapping() -> None:
    block, step = block_and_step(per_class_filter(class_thresholds={}), "step")
    empty = boxes([])
    assert block.run(**resolved(step, {"$steps.people.predictions": empty}))["predictions"] is empty
    with pytest.raises(ValueError, match="class_thresholds must be an object"):
        block.run(predictions=scene(), class_thresholds=["person"], default_threshold=0.3)


def combine() -> dict[str, Any]:
    return two_models({"type": "roboflow_core/detections_combine@v1", "prediction_one": "$steps.people.predictions",
                       "prediction_two": "$steps.vehicles.predictions"})


def test_detections_combine_puts_the_second_set_after_the_first() -> None:
    block, step = block_and_step(combine(), "step")
    one, two = scene(), boxes([(0, 0, 100, 100, 0.6, "bicycle")])
    combined = block.run(**resolved(step, {"$steps.people.predictions": one,
                                           "$steps.vehicles.predictions": two}))["predictions"]
    assert combined.data["class_name"].tolist() == ["person", "car", "person", "bicycle"]
    assert combined.xyxy.tolist() == [*one.xyxy.tolist(), *two.xyxy.tolist()]
    assert combined.data["detection_id"].tolist() == [*one.data["detection_id"], *two.data["detection_id"]]
    nothing = block.run(prediction_one=boxes([]), prediction_two=two)["predictions"]
    assert nothing.data["class_name"].tolist() == ["bicycle"]


def test_detections_combine_says_why_two_sets_do_not_combine() -> None:
    block, _ = block_and_step(combine(), "step")
    tracked = scene()
    tracked.tracker_id = np.array([1, 2, 3])
    with pytest.raises(ValueError, match=r"step 'step': these detections cannot be combined: .*tracker_id"):
        block.run(prediction_one=tracked, prediction_two=boxes([(0, 0, 100, 100, 0.6, "bicycle")]))
