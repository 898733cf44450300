"""switch_case: the block's choice of branch, and the executor running only that branch, frame by frame."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import supervision as sv

from services.core.workflows import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment, FlowDecision
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.query_values import AtOnce, FakeClock, boxes, environment, frame

PEOPLE_PER_FRAME = {1: 0, 2: 2, 3: 5, 4: 3, 5: 7}  # frame number -> people the scripted detector finds
NOON_UTC = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def expression_step(name: str, result: str) -> dict[str, Any]:
    """A step that gives ``result`` whenever it runs (the branches of the reference's own test)."""
    return {"type": "Expression", "name": name, "data": {},
            "switch": {"type": "CasesDefinition", "cases": [],
                       "default": {"type": "StaticCaseResult", "value": result}}}


def routing(value: Any, **switch: Any) -> dict[str, Any]:
    """switch_case on ``value`` over the branches on_a, on_b and on_default (each an output of its own)."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   {"type": "WorkflowParameter", "name": "routing_value", "default_value": "a"}],
        "steps": [
            {"type": "roboflow_core/switch_case@v1", "name": "switch", "value": value,
             "cases": {"a": "$steps.on_a", "b": "$steps.on_b"}, "default_next_steps": ["$steps.on_default"],
             **switch},
            expression_step("on_a", "EXECUTED A!"), expression_step("on_b", "EXECUTED B!"),
            expression_step("on_default", "EXECUTED DEFAULT!"),
        ],
        "outputs": [{"type": "JsonField", "name": name, "selector": f"$steps.{name}.output"}
                    for name in ("on_a", "on_b", "on_default")],
    }


def run_frames(definition: dict[str, Any], frames: int = 1, **parameters: Any) -> list[dict[str, Any]]:
    plan = compile_workflow(definition, parameters=parameters)
    executor = WorkflowExecutor(plan, REGISTRY, BlockEnvironment(0, ScriptedPeople(), AtOnce(),
                                                                 clock=FakeClock(NOON_UTC)))
    results = []
    for number in range(1, frames + 1):
        outputs, errors = executor.run(frame(number=number))
        assert errors == []
        results.append(outputs)
    return results


class ScriptedPeople:
    def detect(self, model_id: str, image: WorkflowImage, params: Mapping[str, Any]) -> sv.Detections:
        count = PEOPLE_PER_FRAME[image.video.frame_number]
        return boxes([(20 * i, 10, 20 * i + 15, 60, 0.8, "person") for i in range(count)], image)

    def classify(self, model_id: str, image: Any, confidence: float) -> Any:
        raise AssertionError("no classifier here")


# ---------------------------------------------------------------------------- the block


def decide(value: Any, cases: dict[str, str], default: list[str] | None = None,
           case_insensitive: bool = False) -> FlowDecision:
    block = REGISTRY["roboflow_core/switch_case@v1"](compile_workflow(routing("a")).step("switch"), environment())
    return block.run(value=value, cases=cases, case_insensitive=case_insensitive,  # type: ignore[no-any-return]
                     default_next_steps=default or [])


@pytest.mark.parametrize(("value", "expected"), [
    ("red", FlowDecision(True, frozenset({"on_red"}))),
    ("blue", FlowDecision(True, frozenset({"on_blue"}))),
    ("RED", FlowDecision(True, frozenset({"fallback", "log"}))),  # letter case matters by default
    ("green", FlowDecision(True, frozenset({"fallback", "log"}))),
    (True, FlowDecision(True, frozenset({"on_true"}))),  # str(value): "True"
    (1.0, FlowDecision(True, frozenset({"on_one_point_zero"}))),  # "1.0", not "1"
    (1, FlowDecision(True, frozenset({"on_one"}))),
])
def test_switch_case_lets_through_the_matching_case_else_the_default(value: Any, expected: FlowDecision) -> None:
    cases = {"red": "on_red", "blue": "on_blue", "True": "on_true", "1.0": "on_one_point_zero", "1": "on_one"}
    assert decide(value, cases, ["fallback", "log"]) == expected


def test_switch_case_with_no_match_and_no_default_lets_nothing_through() -> None:
    assert decide("green", {"red": "on_red"}).proceed is False
    assert decide("anything", {}).proceed is False


def test_switch_case_ignoring_letter_case() -> None:
    cases = {"Red": "on_red", "blue": "on_blue"}
    assert decide("RED", cases, case_insensitive=True) == FlowDecision(True, frozenset({"on_red"}))
    assert decide("Blue", cases, case_insensitive=True) == FlowDecision(True, frozenset({"on_blue"}))
    assert decide("Blue", cases).proceed is False


# ---------------------------------------------------------------------------- in a workflow


@pytest.mark.parametrize(("routing_value", "expected"), [
    ("a", {"on_a": "EXECUTED A!", "on_b": None, "on_default": None}),
    ("b", {"on_a": None, "on_b": "EXECUTED B!", "on_default": None}),
    ("c", {"on_a": None, "on_b": None, "on_default": "EXECUTED DEFAULT!"}),
])
def test_only_the_chosen_branch_runs(routing_value: str, expected: dict[str, Any]) -> None:
    assert run_frames(routing("$inputs.routing_value"), routing_value=routing_value) == [expected]


def test_without_a_default_no_branch_runs_when_nothing_matches() -> None:
    definition = routing("$inputs.routing_value", default_next_steps=[])
    ungated = {"on_a": None, "on_b": None, "on_default": "EXECUTED DEFAULT!"}  # no step gates on_default now
    assert run_frames(definition, routing_value="c") == [ungated]
    definition["steps"] = [step for step in definition["steps"] if step["name"] != "on_default"]
    definition["outputs"] = definition["outputs"][:2]
    assert run_frames(definition, routing_value="c") == [{"on_a": None, "on_b": None}]


def test_crowded_or_quiet_message_per_frame() -> None:
    """count people -> expression names the level -> switch_case picks that level's template (with the
    time in Berlin); what reads the branch not taken is skipped, first_non_empty_or_default merges them."""
    level = {"type": "CasesDefinition", "default": {"type": "StaticCaseResult", "value": "quiet"}, "cases": [{
        "type": "CaseDefinition", "result": {"type": "StaticCaseResult", "value": "crowded"},
        "condition": {"type": "StatementGroup", "statements": [{
            "type": "BinaryStatement", "left_operand": {"type": "DynamicOperand", "operand_name": "count"},
            "comparator": {"type": "(Number) >="}, "right_operand": {"type": "StaticOperand", "value": 4}}]}}]}
    data = {"count": "$steps.count.output", "time": "$steps.now.time"}
    definition = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model", "images": "$inputs.image",
             "model_id": "m"},
            {"type": "roboflow_core/property_definition@v1", "name": "count", "data": "$steps.model.predictions",
             "operations": [{"type": "SequenceLength"}]},
            {"type": "roboflow_core/expression@v1", "name": "level", "data": {"count": "$steps.count.output"},
             "switch": level},
            {"type": "roboflow_core/current_time@v1", "name": "now", "timezone": "Europe/Berlin"},
            {"type": "roboflow_core/switch_case@v1", "name": "route", "value": "$steps.level.output",
             "cases": {"CROWDED": "$steps.alert"}, "case_insensitive": True, "default_next_steps": ["$steps.note"]},
            {"type": "roboflow_core/string_template@v1", "name": "alert",
             "template": "CROWDED: {count} people at {time}", "data": data},
            {"type": "roboflow_core/string_template@v1", "name": "note", "template": "quiet: {count} at {time}",
             "data": data},
            {"type": "roboflow_core/first_non_empty_or_default@v1", "name": "message",
             "data": ["$steps.alert.output", "$steps.note.output"]},
        ],
        "outputs": [{"type": "JsonField", "name": name, "selector": f"$steps.{name}.output"}
                    for name in ("alert", "note", "message")],
    }
    outputs = run_frames(definition, frames=len(PEOPLE_PER_FRAME))
    assert [o["message"] for o in outputs] == [
        "quiet: 0 at 14:00:00", "quiet: 2 at 14:00:00", "CROWDED: 5 people at 14:00:00", "quiet: 3 at 14:00:00",
        "CROWDED: 7 people at 14:00:00"]
    assert [(o["alert"] is None, o["note"] is None) for o in outputs] == [
        (True, False), (True, False), (False, True), (True, False), (False, True)]
