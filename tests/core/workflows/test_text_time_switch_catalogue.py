"""Catalogue entries of string_template, current_time (formatters) and switch_case (flow control): names,
defaults, output kinds, the steps switch_case gates, and bad literals refused at INIT with their path."""

from typing import Any

import pytest

from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow
from tests.core.workflows.test_query_blocks_catalogue import refusal, with_step

COUNT = {"type": "PropertyDefinition", "name": "count", "data": "$steps.model.predictions",
         "operations": [{"type": "SequenceLength"}]}
ON_RED = {"type": "PropertyDefinition", "name": "on_red", "data": "$steps.model.predictions", "operations": []}
ON_BLUE = {**ON_RED, "name": "on_blue"}
FALLBACK = {**ON_RED, "name": "fallback"}


def template(text: Any = "{n} {unit}", **fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/string_template@v1", "template": text,
            "data": {"n": "$steps.model.predictions", "unit": "$inputs.unit"}, **fields}


def switch(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/switch_case@v1", "value": "$steps.count.output",
            "cases": {"red": "$steps.on_red", "blue": "$steps.on_blue"}, "default_next_steps": ["$steps.fallback"],
            **fields}


def with_switch(step: dict[str, Any]) -> dict[str, Any]:
    definition = with_step(step, ON_RED, ON_BLUE, FALLBACK)
    definition["steps"].insert(1, COUNT)
    return definition


def test_string_template_and_current_time_fields_and_outputs() -> None:
    plan = compile_workflow(with_step(template(), {"type": "roboflow_core/current_time@v1", "name": "now"}))
    assert plan.step("step").params == {"template": "{n} {unit}", "data_operations": {},
                                        "data": {"n": "$steps.model.predictions", "unit": "runs"}}
    assert plan.step("now").params == {"timezone": "UTC"}
    assert CATALOGUE["roboflow_core/string_template@v1"].outputs == {"output": (kinds.STRING,)}
    assert CATALOGUE["roboflow_core/current_time@v1"].outputs == {
        "timestamp": (kinds.TIMESTAMP,), "iso_string": (kinds.STRING,), "date": (kinds.STRING,),
        "time": (kinds.STRING,)}


def test_string_template_reads_current_time_and_a_template_given_by_a_step() -> None:
    now = {"type": "roboflow_core/current_time@v1", "name": "now", "timezone": "Asia/Kathmandu"}
    message = {"type": "roboflow_core/string_template@v1", "name": "message", "template": "$steps.prompt.output",
               "data": {"time": "$steps.now.time", "stamp": "$steps.now.timestamp"}}
    prompt = {"type": "roboflow_core/string_template@v1", "name": "prompt", "template": "at {{time}}"}
    plan = compile_workflow(with_step(now, message, prompt))
    assert plan.step("message").params["template"] == "$steps.prompt.output"  # checked on each frame instead
    assert [step.name for step in plan.steps] == ["model", "now", "prompt", "message"]  # after what it reads


def test_switch_case_gates_every_target_and_keeps_case_keys() -> None:
    plan = compile_workflow(with_switch(switch(name="step")))
    assert plan.step("step").params == {"value": "$steps.count.output", "cases": {"red": "on_red", "blue": "on_blue"},
                                        "case_insensitive": False, "default_next_steps": ["fallback"]}
    assert [plan.step(name).gates for name in ("on_red", "on_blue", "fallback", "count")] == [
        ["step"], ["step"], ["step"], []]
    assert [step.name for step in plan.steps] == ["model", "count", "step", "on_red", "on_blue", "fallback"]
    spec = CATALOGUE["SwitchCase"]
    assert spec.name == "roboflow_core/switch_case@v1" and spec.flow_control and spec.outputs == {}


def test_switch_case_defaults_and_literal_values() -> None:
    plan = compile_workflow(with_switch({"type": "SwitchCase", "value": 1.5}))
    assert plan.step("step").params == {"value": 1.5, "cases": {}, "case_insensitive": False,
                                        "default_next_steps": []}
    assert plan.step("on_red").gates == []
    for value in ("red", 3, True, "$inputs.unit"):
        assert compile_workflow(with_switch(switch(value=value))).step("step").params["value"] in ("red", 3, True,
                                                                                                     "runs")


@pytest.mark.parametrize(("step", "message"), [
    (template("{n} {missing}"), "field 'workflow.steps[1].template': the template reads ['missing'], which data "
                                "does not declare (declared: ['n', 'unit'])"),
    (template("{n:{width}}"), "field 'workflow.steps[1].template': the template reads ['width']"),
    (template("{}"), "field 'workflow.steps[1].template': positional placeholders ('{}', '{0}') are not supported"),
    (template("{n.__class__}"), "field 'workflow.steps[1].template': placeholder '{n.__class__}' uses attribute or "
                                "index access"),
    (template("{n[0]}"), "uses attribute or index access"),
    (template("{n"), "field 'workflow.steps[1].template': cannot parse the template"),
    (template("}"), "field 'workflow.steps[1].template': cannot parse the template"),
    (template(42), "field 'workflow.steps[1].template': expected a string, got 42"),
    (template("$steps.model.predictions"), "field 'workflow.steps[1].template': '$steps.model.predictions' gives "
                                           "object_detection_prediction, but the field takes string"),
    ({"type": "roboflow_core/string_template@v1"}, "field 'workflow.steps[1].template' is required"),
    (template(data="$steps.model.predictions"), "field 'workflow.steps[1].data' takes a literal value, not a selector"),
    (template(data_operations={"other": [{"type": "SequenceLength"}]}),
     "field 'workflow.steps[1].data_operations.other': operations are given for 'other', which data does not "
     "declare (declared: ['n', 'unit'])"),
    (template(data_operations={"n": [{"type": "SequenceSize"}]}),
     "field 'workflow.steps[1].data_operations.n[0].type'"),
    (template(data_operations={"n": {"type": "SequenceLength"}}), "field 'workflow.steps[1].data_operations.n'"),
    ({"type": "roboflow_core/current_time@v1", "timezone": "Mars/Olympus_Mons"},
     "field 'workflow.steps[1].timezone': 'Mars/Olympus_Mons' is not one of the supported timezones"),
    ({"type": "roboflow_core/current_time@v1", "timezone": "Europe/Paris"},  # real, but not a curated zone
     "field 'workflow.steps[1].timezone': 'Europe/Paris' is not one of the supported timezones"),
    ({"type": "roboflow_core/current_time@v1", "timezone": "$inputs.unit"},  # the parameter's value: "runs"
     "field 'workflow.steps[1].timezone': 'runs' is not one of the supported timezones"),
    ({"type": "roboflow_core/current_time@v1", "timezone": 2}, "field 'workflow.steps[1].timezone': expected a string"),
    ({"type": "roboflow_core/current_time@v1", "timezone": "$steps.model.predictions"},
     "field 'workflow.steps[1].timezone': '$steps.model.predictions' gives object_detection_prediction"),
])
def test_formatter_refusals_name_their_path(step: dict[str, Any], message: str) -> None:
    assert message in refusal(with_step(step))


@pytest.mark.parametrize(("step", "message"), [
    (switch(cases={"red": "$steps.nowhere"}), "field 'workflow.steps[2].cases.red': '$steps.nowhere' names no step"),
    (switch(cases={"red": "$steps.on_red.output"}), "field 'workflow.steps[2].cases.red': '$steps.on_red.output' "
                                                    "names no step of the workflow"),
    (switch(cases={"red": 3}), "field 'workflow.steps[2].cases.red' must be a step reference '$steps.<name>'"),
    (switch(cases={"red": "$steps.step"}), "field 'workflow.steps[2].cases.red': step 'step' cannot gate itself"),
    (switch(default_next_steps=["$steps.fallback", "$steps.later"]),
     "field 'workflow.steps[2].default_next_steps[1]': '$steps.later' names no step"),
    (switch(cases={"red": "$steps.on_red", "crimson": "$steps.on_red"}),
     "field 'workflow.steps[2].cases': each step may be targeted at most once across cases and default_next_steps; "
     "targeted more than once: on_red"),
    (switch(default_next_steps=["$steps.on_blue"]), "targeted more than once: on_blue"),
    (switch(cases={"red": "$steps.on_red", "RED": "$steps.on_blue"}, case_insensitive=True),
     "field 'workflow.steps[2].cases': keys ['RED', 'red'] are the same when case_insensitive is true"),
    (switch(case_insensitive="yes"), "field 'workflow.steps[2].case_insensitive': expected true or false, got 'yes'"),
    (switch(value=["red"]), "field 'workflow.steps[2].value': expected a string, a number or true/false, got ['red']"),
    (switch(value="$steps.nowhere.output"), "field 'workflow.steps[2].value': selector '$steps.nowhere.output' names "
                                            "no step"),
    ({"type": "SwitchCase", "cases": {}}, "field 'workflow.steps[2].value' is required"),
])
def test_switch_case_refusals_name_their_path(step: dict[str, Any], message: str) -> None:
    assert message in refusal(with_switch(step))


def test_switch_case_keys_differing_in_case_are_fine_when_case_matters() -> None:
    step = switch(cases={"red": "$steps.on_red", "RED": "$steps.on_blue"})
    assert compile_workflow(with_switch(step)).step("step").params["cases"] == {"red": "on_red", "RED": "on_blue"}
