"""detections_filter@v1 and detections_transformation@v1, built from published definitions."""

from typing import Any

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
