"""The compiler: the published format in, a checked plan out; every refusal names its JSON path."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import compile_workflow
from services.core.workflows.catalogue import BLOCKS, CATALOGUE, supported_types
from tests.support import workflow_definitions as wf


def refusal(definition: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition, **kwargs)
    return str(caught.value)


def test_steps_come_in_dependency_order_whatever_the_definition_order() -> None:
    definition = wf.counting([[0, 300], [768, 300]])
    definition["steps"].reverse()

    plan = compile_workflow(definition)

    # each step after what it reads; free steps keep the definition's (here reversed) order
    assert [step.name for step in plan.steps] == ["model", "tracker", "boxes", "labels", "line_counter"]
    assert plan.step("model").params["class_filter"] == ["person"]  # the parameter's default_value


def test_a_flow_control_step_gates_its_next_steps_and_comes_before_them() -> None:
    definition = wf.webhook("http://127.0.0.1:1/hook")
    definition["steps"].insert(0, {"type": "roboflow_core/rate_limiter@v1", "name": "limit", "cooldown_seconds": 5,
                                   "depends_on": "$steps.count.output", "next_steps": ["$steps.notify"]})

    plan = compile_workflow(definition, parameters={"url": "http://127.0.0.1:1/hook"})

    assert [step.name for step in plan.steps] == ["model", "count", "limit", "notify"]
    assert plan.step("notify").gates == ["limit"] and plan.step("count").gates == []


def test_levels_follow_slices_and_come_back_through_a_batch_field() -> None:
    plan = compile_workflow(wf.sahi())

    assert [(s.name, s.dimensionality) for s in plan.steps] == [("slicer", 0), ("slice_model", 1), ("stitch", 0)]


def test_legacy_names_and_aliases_compile_to_the_canonical_block() -> None:
    definition = wf.detection_only()
    definition["steps"][0] = {"type": "ObjectDetectionModel", "name": "model", "image": "$inputs.image",
                              "model_id": "yolov3-tiny/coco-416"}

    [step] = compile_workflow(definition).steps

    assert step.type == "roboflow_core/roboflow_object_detection_model@v1"
    assert step.params["images"] == "$inputs.image" and step.params["confidence"] == 0.4


def test_every_catalogue_name_is_unique_and_listed() -> None:
    names = [name for spec in BLOCKS for name in spec.names]
    assert len(names) == len(set(names)) == len(CATALOGUE)
    assert sorted(supported_types()) == sorted(names)


def _with(mutate: Any) -> dict[str, Any]:
    definition = wf.counting([[0, 300], [768, 300]])
    mutate(definition)
    return definition


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (_with(lambda d: d["steps"][1].update(detections="$steps.line_counter.count_in")),
         "field 'workflow.steps[1].detections': '$steps.line_counter.count_in' gives integer, but the field takes "
         "object_detection_prediction"),
        (_with(lambda d: d["steps"][1].update(detections="$steps.tracker.tracked_detections")),
         "step 'tracker' cannot read its own output"),
        (_with(lambda d: d["steps"][0].update(images="$steps.labels.image")), "has a cycle among steps"),
        (_with(lambda d: d["steps"][2].update(name="model")),
         "field 'workflow.steps[2].name': step name 'model' is used twice"),
        (_with(lambda d: d["steps"][1].update(detections="$steps.model")), "names a step, not one of its outputs"),
        (_with(lambda d: d["steps"][1].update(detections="$steps.model.boxes")),
         "step 'model' (roboflow_core/roboflow_object_detection_model@v2) has no output 'boxes'; its outputs: "
         "inference_id, predictions, model_id"),
        (_with(lambda d: d["steps"][3].update(image="steps.model")), "takes a selector of image, got 'steps.model'"),
        (_with(lambda d: d["steps"][2].pop("line_segment")),
         "field 'workflow.steps[2].line_segment' is required by roboflow_core/line_counter@v2"),
        (_with(lambda d: d["outputs"].append({"type": "JsonField", "name": "count_in", "selector": "$steps.x.y"})),
         "names no step"),
        (_with(lambda d: d["outputs"].append({"type": "JsonField", "name": "workflow_errors",
                                              "selector": "$steps.model.predictions"})), "is reserved"),
        (_with(lambda d: d["outputs"][0].update(coordinates_system="world")), "expected 'own' or 'parent'"),
        (_with(lambda d: d["inputs"].append({"type": "WorkflowImage", "name": "image"})), "declared twice"),
        (_with(lambda d: d["inputs"].append({"type": "WorkflowBatchInput", "name": "x"})),
         "input type 'WorkflowBatchInput' is not supported"),
        (_with(lambda d: d["steps"][0].update(model_id=3)), "field 'workflow.steps[0].model_id': expected a string"),
    ],
)
def test_refusals_name_the_path(definition: dict[str, Any], message: str) -> None:
    assert message in refusal(definition)


def test_the_image_input_must_be_the_one_init_names() -> None:
    message = refusal(wf.detection_only(), image_input_name="frame")
    assert "'frame' names no image input of the workflow (it declares 'image')" in message


def test_a_parameter_value_is_checked_like_a_literal() -> None:
    message = refusal(wf.counting([[0, 300], [768, 300]]), parameters={"classes": "person"})
    assert "field 'workflow.steps[0].class_filter': expected a list of strings or null, got 'person'" in message
