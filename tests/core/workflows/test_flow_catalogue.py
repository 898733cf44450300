"""Flow-control catalogue entries (continue_if, rate_limiter, delta_filter): gates, defaults, refusals."""

from typing import Any

import pytest

from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow
from tests.core.workflows.test_query_blocks_catalogue import published, refusal, with_step

CONDITION = {"type": "StatementGroup", "statements": [{
    "type": "BinaryStatement", "left_operand": {"type": "DynamicOperand", "operand_name": "n",
                                                "operations": [{"type": "SequenceLength"}]},
    "comparator": {"type": "(Number) >"}, "right_operand": {"type": "StaticOperand", "value": 0}}]}
GATED = {"type": "PropertyDefinition", "name": "gated", "data": "$steps.model.predictions",
         "operations": [{"type": "SequenceLength"}]}


def continue_if(**fields: Any) -> dict[str, Any]:
    return {"type": "ContinueIf", "condition_statement": CONDITION, "next_steps": ["$steps.gated"],
            "evaluation_parameters": {"n": "$steps.model.predictions"}, **fields}


def test_flow_blocks_are_flow_control_with_no_outputs() -> None:
    for name in ("roboflow_core/continue_if@v1", "roboflow_core/rate_limiter@v1", "roboflow_core/delta_filter@v1"):
        assert CATALOGUE[name].flow_control and CATALOGUE[name].outputs == {}


def test_next_steps_become_gates_of_those_steps() -> None:
    plan = compile_workflow(with_step(continue_if(), GATED))
    assert plan.step("step").params == {"condition_statement": CONDITION, "next_steps": ["gated"],
                                        "evaluation_parameters": {"n": "$steps.model.predictions"}, "stop_delay": 0}
    assert plan.step("gated").gates == ["step"]
    assert [step.name for step in plan.steps] == ["model", "step", "gated"]


def test_published_flow_definitions_gate_their_next_steps() -> None:
    plan = compile_workflow(published("workflow_with_continue_if_and_stop_delay"))
    assert plan.step("dependent_model").gates == ["continue_if_with_delay"]
    plan = compile_workflow(published("workflow_with_rate_limiter"))
    assert plan.step("rate_limiter").params["depends_on"] == "$steps.model.predictions"
    assert plan.step("visualization").gates == ["rate_limiter"]
    plan = compile_workflow(published("workflow_with_delta_filter"), parameters={"target_directory": "/tmp"})
    assert plan.step("csv_formatter").gates == ["delta_filter"]
    assert plan.step("reports_sink").gates == []


def test_rate_limiter_defaults() -> None:
    plan = compile_workflow(with_step({"type": "roboflow_core/rate_limiter@v1", "next_steps": ["$steps.gated"],
                                       "depends_on": "$steps.model.predictions"}, GATED))
    assert plan.step("step").params == {"cooldown_seconds": 1.0, "depends_on": "$steps.model.predictions",
                                        "next_steps": ["gated"], "video_reference_image": None}


@pytest.mark.parametrize(("step", "message"), [
    (continue_if(next_steps=["$steps.nowhere"]), "field 'workflow.steps[1].next_steps[0]': '$steps.nowhere' names no "
                                                 "step of the workflow"),
    (continue_if(next_steps=["$steps.gated.output"]), "names no step of the workflow"),
    (continue_if(stop_delay=-1), "field 'workflow.steps[1].stop_delay': expected a number >= 0, got -1"),
    (continue_if(condition_statement="x > 1"), "field 'workflow.steps[1].condition_statement': expected an object"),
    ({"type": "ContinueIf", "condition_statement": CONDITION}, "field 'workflow.steps[1].next_steps' is required"),
    ({"type": "roboflow_core/rate_limiter@v1", "depends_on": "$steps.model.predictions", "next_steps": [],
      "cooldown_seconds": "1s"}, "field 'workflow.steps[1].cooldown_seconds': expected a number >= 0, got '1s'"),
    ({"type": "roboflow_core/rate_limiter@v1", "depends_on": 5, "next_steps": []},
     "field 'workflow.steps[1].depends_on' takes a selector of *, got 5"),
    ({"type": "roboflow_core/rate_limiter@v1", "depends_on": "$steps.model.predictions", "next_steps": [],
      "video_reference_image": "$steps.model.predictions"},
     "field 'workflow.steps[1].video_reference_image': '$steps.model.predictions' gives object_detection_prediction"),
    ({"type": "roboflow_core/delta_filter@v1", "images": "$inputs.image", "value": "$steps.model.predictions",
      "next_steps": []}, "field 'workflow.steps[1].image' is required"),
    ({"type": "roboflow_core/delta_filter@v1", "image": "$inputs.image", "value": 3, "next_steps": []},
     "field 'workflow.steps[1].value' takes a selector of *, got 3"),
])
def test_refusals_name_their_path(step: dict[str, Any], message: str) -> None:
    assert message in refusal(with_step(step, GATED))


def test_first_non_empty_or_default_merges_a_gated_branch_and_runs_on_nulls() -> None:
    merge = {"type": "FirstNonEmptyOrDefault", "name": "merged", "data": ["$steps.gated.output"], "default": 0}
    plan = compile_workflow(with_step(continue_if(), GATED, merge))
    assert plan.step("merged").params == {"data": ["$steps.gated.output"], "default": 0}
    assert plan.step("merged").gates == []  # it is not gated itself: it runs whether the branch ran or not
    assert CATALOGUE["roboflow_core/first_non_empty_or_default@v1"].accepts_empty
    assert not CATALOGUE["roboflow_core/property_definition@v1"].accepts_empty


@pytest.mark.parametrize(("data", "message"), [
    ([], "field 'workflow.steps[3].data': expected a list of at least one selector"),
    ("$steps.gated.output", "field 'workflow.steps[3].data' takes a literal value, not a selector"),  # a list of them
    (["$steps.nowhere.output"], "field 'workflow.steps[3].data[0]': selector '$steps.nowhere.output' names no step"),
])
def test_first_non_empty_or_default_needs_a_list_of_selectors(data: Any, message: str) -> None:
    merge = {"type": "roboflow_core/first_non_empty_or_default@v1", "name": "merged", "data": data}
    assert message in refusal(with_step(continue_if(), GATED, merge))
