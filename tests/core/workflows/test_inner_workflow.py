"""roboflow_core/inner_workflow@v1: a pasted child workflow inlined into its parent before compiling."""

import copy
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError, NotFoundError
from services.core.workflows import compile_workflow
from services.core.workflows.inner import MAX_DEPTH, referenced_workflows

MODEL = "yolov3-tiny/coco-416"


def child() -> dict[str, Any]:
    """People detected and tracked, as a user would save it on its own (its own input names)."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "picture"},
                   {"type": "WorkflowParameter", "name": "confidence", "default_value": 0.4},
                   {"type": "WorkflowParameter", "name": "classes", "default_value": ["person"]}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model",
             "images": "$inputs.picture", "model_id": MODEL, "confidence": "$inputs.confidence",
             "class_filter": "$inputs.classes"},
            {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.picture",
             "detections": "$steps.model.predictions"},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.tracker.tracked_detections"},
                    {"type": "JsonField", "name": "raw", "selector": "$steps.model.predictions"}],
    }


def parent(inner: dict[str, Any] | None = None, **step: Any) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/inner_workflow@v1", "name": "people_counter",
             "workflow_definition": inner or child(),
             "parameter_bindings": {"picture": "$inputs.image", "confidence": 0.6}, **step},
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.people_counter.people"},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.people_counter.people"},
                    {"type": "JsonField", "name": "drawn", "selector": "$steps.boxes.image"}],
    }


def flat() -> dict[str, Any]:
    """What ``parent()`` means, written out by hand."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "people_counter__model",
             "images": "$inputs.image", "model_id": MODEL, "confidence": 0.6, "class_filter": ["person"]},
            {"type": "roboflow_core/byte_tracker@v3", "name": "people_counter__tracker", "image": "$inputs.image",
             "detections": "$steps.people_counter__model.predictions"},
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.people_counter__tracker.tracked_detections"},
        ],
        "outputs": [{"type": "JsonField", "name": "people",
                     "selector": "$steps.people_counter__tracker.tracked_detections"},
                    {"type": "JsonField", "name": "drawn", "selector": "$steps.boxes.image"}],
    }


def test_the_child_is_inlined_bound_and_defaulted_as_if_written_out() -> None:
    plan = compile_workflow(parent())
    assert plan == compile_workflow(flat())
    model = plan.step("people_counter__model")
    assert model.params["confidence"] == 0.6 and model.params["class_filter"] == ["person"]  # bound; default


def test_a_parameter_of_the_parent_can_be_bound_and_the_parent_s_parameters_apply() -> None:
    workflow = parent()
    workflow["inputs"].append({"type": "WorkflowParameter", "name": "sure", "default_value": 0.5})
    workflow["steps"][0]["parameter_bindings"]["confidence"] = "$inputs.sure"
    assert compile_workflow(workflow).step("people_counter__model").params["confidence"] == 0.5
    assert compile_workflow(workflow, parameters={"sure": 0.7}).step("people_counter__model").params[
        "confidence"] == 0.7


def test_nested_inner_workflows_are_inlined_innermost_first() -> None:
    middle = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "frame"}],
        "steps": [{"type": "roboflow_core/inner_workflow@v1", "name": "inner", "workflow_definition": child(),
                   "parameter_bindings": {"picture": "$inputs.frame"}}],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.inner.people"}],
    }
    workflow = parent(middle)
    workflow["steps"][0]["parameter_bindings"] = {"frame": "$inputs.image"}
    plan = compile_workflow(workflow)
    assert [step.name for step in plan.steps] == [
        "people_counter__inner__model", "people_counter__inner__tracker", "boxes"]
    assert plan.step("people_counter__inner__model").params["confidence"] == 0.4  # the child's default
    assert plan.outputs[0].selector == "$steps.people_counter__inner__tracker.tracked_detections"


def test_an_inlined_name_already_taken_gets_a_suffix() -> None:
    workflow = parent()
    workflow["steps"].append({"type": "roboflow_core/roboflow_object_detection_model@v2",
                              "name": "people_counter__model", "images": "$inputs.image", "model_id": MODEL})
    names = [step.name for step in compile_workflow(workflow).steps]
    assert "people_counter__model__2" in names and "people_counter__model" in names


def test_a_bare_reference_to_the_inner_step_targets_its_first_step() -> None:
    workflow = parent()
    workflow["inputs"].append({"type": "WorkflowParameter", "name": "on", "default_value": True})
    workflow["steps"].insert(0, {
        "type": "roboflow_core/continue_if@v1", "name": "gate", "next_steps": ["$steps.people_counter"],
        "condition_statement": {"type": "StatementGroup", "statements": [{
            "type": "UnaryStatement", "operand": {"type": "DynamicOperand", "operand_name": "on"},
            "operator": {"type": "(Boolean) is True"}}]},
        "evaluation_parameters": {"on": "$inputs.on"}})
    plan = compile_workflow(workflow)
    assert plan.step("gate").params["next_steps"] == ["people_counter__model"]
    assert "gate" in plan.step("people_counter__model").gates


def test_the_child_s_definition_is_left_as_it_was() -> None:
    workflow = parent()
    given = copy.deepcopy(workflow)
    compile_workflow(workflow)
    assert workflow == given


@pytest.mark.parametrize(("change", "message"), [
    (lambda w: w["steps"][0]["parameter_bindings"].update(threshold=0.3),
     "field 'workflow.steps[0].parameter_bindings.threshold': the inner workflow has no input 'threshold' "
     "(its inputs: 'picture', 'confidence', 'classes')"),
    (lambda w: w["steps"][0]["parameter_bindings"].pop("picture"),
     "field 'workflow.steps[0].parameter_bindings': the inner workflow's input 'picture' is not bound"),
    (lambda w: w["steps"][0].update(parameter_bindings=["$inputs.image"]),
     "field 'workflow.steps[0].parameter_bindings' must be an object"),
    (lambda w: w["steps"][0].update(workflow_definition=None, workflow_workspace_id="acme",
                                    workflow_id="people"),
     "field 'workflow.steps[0].workflow_workspace_id': an inner workflow by reference is not supported here; "
     "paste its definition as workflow_definition"),
    (lambda w: w["steps"][0].update(workflow_id="people"),
     "field 'workflow.steps[0]': give either workflow_definition or workflow_id, not both"),
    (lambda w: w["steps"][0].pop("workflow_definition"),
     "field 'workflow.steps[0].workflow_definition' must be a non-empty workflow definition"),
    (lambda w: w["steps"][0]["workflow_definition"].update(steps=[]),
     "field 'workflow.steps[0].workflow_definition.steps': an inner workflow needs at least one step"),
    (lambda w: w["outputs"].append({"type": "JsonField", "name": "n", "selector": "$steps.people_counter.count"}),
     "selector '$steps.people_counter.count': the inner workflow at 'workflow.steps[0]' has no output 'count' "
     "(its outputs: 'people', 'raw')"),
    # A step of the child is checked where it is written.
    (lambda w: w["steps"][0]["workflow_definition"]["steps"][1].update(track_activation_threshold="high"),
     "field 'workflow.steps[0].workflow_definition.steps[1].track_activation_threshold'"),
    (lambda w: w["steps"][0]["workflow_definition"]["steps"][1].update(type="roboflow_core/sam3@v1"),
     "unsupported workflow block type 'roboflow_core/sam3@v1' at 'workflow.steps[0].workflow_definition.steps[1]"
     ".type'"),
])
def test_a_wrong_inner_workflow_is_refused_with_its_path(change: Any, message: str) -> None:
    workflow = parent()
    change(workflow)
    with pytest.raises(InvalidPayloadError) as raised:
        compile_workflow(workflow)
    assert message in str(raised.value)


def test_inner_workflows_nest_at_most_max_depth_levels() -> None:
    def nested(levels: int) -> dict[str, Any]:
        definition = child()
        for _ in range(levels):
            definition = {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "picture"}],
                          "steps": [{"type": "roboflow_core/inner_workflow@v1", "name": "n",
                                     "workflow_definition": definition,
                                     "parameter_bindings": {"picture": "$inputs.picture"}}],
                          "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.n.people"}]}
        return definition

    def workflow(levels: int) -> dict[str, Any]:
        outer = parent(nested(levels))
        outer["steps"][0]["parameter_bindings"] = {"picture": "$inputs.image"}
        return outer

    assert compile_workflow(workflow(MAX_DEPTH - 1)).steps[0].name.count("n__") == MAX_DEPTH - 1
    with pytest.raises(InvalidPayloadError, match=f"inner workflows nest deeper than {MAX_DEPTH} levels"):
        compile_workflow(workflow(MAX_DEPTH))


# --- a child named by workflow_workspace_id / workflow_id ----------------------------------------------------------


def by_reference(workflow_id: str = "tracker", **extra: Any) -> dict[str, Any]:
    workflow = parent()
    step = workflow["steps"][0]
    del step["workflow_definition"]
    step.update(workflow_workspace_id="acme", workflow_id=workflow_id, **extra)
    return workflow


def resolver(stored: dict[str, dict[str, Any]]) -> Any:
    def resolve(workspace: str, workflow_id: str) -> dict[str, Any]:
        if workspace != "acme" or workflow_id not in stored:
            raise NotFoundError(f"workflow '{workspace}/{workflow_id}' not found")
        return stored[workflow_id]
    return resolve


def test_a_child_named_by_reference_is_resolved_and_inlined_as_a_pasted_one() -> None:
    assert compile_workflow(by_reference(), resolve=resolver({"tracker": child()})) == compile_workflow(flat())


def test_an_error_in_a_referenced_child_names_the_workflow_it_is_in() -> None:
    broken = child()
    broken["steps"][1]["track_activation_threshold"] = "high"
    with pytest.raises(InvalidPayloadError, match=r"field 'workflow\(acme/tracker\)\.steps\[1\]\."
                                                  r"track_activation_threshold'"):
        compile_workflow(by_reference(), resolve=resolver({"tracker": broken}))


def test_a_missing_child_is_not_found_at_its_path() -> None:
    with pytest.raises(NotFoundError, match=r"workflow 'acme/ghost' not found \(the inner workflow at "
                                            r"'workflow.steps\[0\]'\)"):
        compile_workflow(by_reference("ghost"), resolve=resolver({}))


def test_workflows_that_name_each_other_are_refused_as_a_cycle() -> None:
    def naming(workflow_id: str) -> dict[str, Any]:
        return {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "picture"}],
                "steps": [{"type": "roboflow_core/inner_workflow@v1", "name": "n", "workflow_workspace_id": "acme",
                           "workflow_id": workflow_id, "parameter_bindings": {"picture": "$inputs.picture"}}],
                "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.n.people"}]}

    workflow = by_reference("a")
    workflow["steps"][0]["parameter_bindings"] = {"picture": "$inputs.image"}
    with pytest.raises(InvalidPayloadError, match=r"cycle \(acme/a -> acme/b -> acme/a\)"):
        compile_workflow(workflow, resolve=resolver({"a": naming("b"), "b": naming("a")}))


def test_a_version_is_refused_and_so_is_a_half_reference() -> None:
    with pytest.raises(InvalidPayloadError, match="workflow_version_id': workflow versions are not kept here"):
        compile_workflow(by_reference(workflow_version_id="3"), resolve=resolver({"tracker": child()}))
    half = by_reference()
    del half["steps"][0]["workflow_workspace_id"]
    with pytest.raises(InvalidPayloadError, match="needs both workflow_workspace_id and workflow_id"):
        compile_workflow(half, resolve=resolver({"tracker": child()}))


def test_the_references_are_listed_at_every_depth_of_pasted_definitions() -> None:
    outer = parent({"version": "1.0", "inputs": [], "outputs": [],
                    "steps": [{"type": "roboflow_core/inner_workflow@v1", "name": "deep",
                               "workflow_workspace_id": "acme", "workflow_id": "deep"}]})
    outer["steps"].append(by_reference("near")["steps"][0])
    assert referenced_workflows(outer) == [("acme", "deep"), ("acme", "near")]
    assert referenced_workflows({"steps": "not a list"}) == [] and referenced_workflows(None) == []
