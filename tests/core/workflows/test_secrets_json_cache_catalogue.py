"""The formatters family's environment_secrets_store, json_parser, cache_set and cache_get through the compiler:
their outputs named by their fields (with kinds), defaults, and what INIT refuses."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.compiler import compile_workflow

IMAGE = {"type": "WorkflowImage", "name": "image"}


def workflow(*steps: dict[str, Any], outputs: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    return {"version": "1.0", "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "reply"}], "steps": list(steps),
            "outputs": [{"type": "JsonField", "name": name, "selector": selector} for name, selector in outputs]}


def refusal(definition: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition, parameters={"reply": "{}"})
    return str(caught.value)


def vault(*variables: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
            "variables_storing_secrets": list(variables)}


def slack(token: str) -> dict[str, Any]:
    return {"type": "roboflow_core/slack_notification@v1", "name": "notify", "slack_token": token,
            "channel": "C1", "message": "hi", "cooldown_session_key": "k"}


def test_each_variable_is_a_secret_output_in_lower_case() -> None:
    plan = compile_workflow(workflow(vault("SLACK_TOKEN", "Smtp_Password"), slack("$steps.vault.slack_token"),
                                     outputs=(("password", "$steps.vault.smtp_password"),)))
    assert plan.step("vault").params == {"variables_storing_secrets": ["SLACK_TOKEN", "Smtp_Password"]}
    assert plan.step("notify").params["slack_token"] == "$steps.vault.slack_token"


@pytest.mark.parametrize(("variables", "reason"), [
    ((), "field 'workflow.steps[0].variables_storing_secrets': expected a list of at least one environment variable"),
    (("SLACK-TOKEN",), "field 'workflow.steps[0].variables_storing_secrets[0]': expected an environment variable name"),
    (("OK", 5), "field 'workflow.steps[0].variables_storing_secrets[1]': expected an environment variable name"),
    (("TOKEN", "token"), "'token' and 'TOKEN' would both be the output 'token'"),
])
def test_the_variables_must_be_names(variables: tuple[Any, ...], reason: str) -> None:
    assert reason in refusal(workflow(vault(*variables)))


def test_a_secret_feeds_only_fields_that_take_secrets() -> None:
    assert "gives secret, but the field takes string" in refusal(workflow(
        vault("CHANNEL"), {**slack("literal-token"), "channel": "$steps.vault.channel"}))
    assert "has no output 'other'" in refusal(workflow(vault("TOKEN"), slack("$steps.vault.other")))
    assert "takes a literal value, not a selector" in refusal(workflow(
        {"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
         "variables_storing_secrets": "$inputs.image"}))


def parser(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/json_parser@v1", "name": "parser", "raw_json": "$inputs.reply",
            "expected_fields": ["label", "count"], **fields}


def test_json_parser_outputs_its_fields_and_error_status() -> None:
    plan = compile_workflow(workflow(parser(), outputs=(("label", "$steps.parser.label"),
                                                        ("failed", "$steps.parser.error_status"))),
                            parameters={"reply": '{"label": "x"}'})
    assert plan.step("parser").params == {"raw_json": '{"label": "x"}', "expected_fields": ["label", "count"]}
    assert "has no output 'other'" in refusal(workflow(parser(), outputs=(("x", "$steps.parser.other"),)))
    assert "'error_status' is reserved" in refusal(workflow(parser(expected_fields=["error_status"])))
    assert "expected a list of JSON field names" in refusal(workflow(parser(expected_fields=["a", 1])))
    assert "expected a string, got 5" in refusal(workflow(parser(raw_json=5)))


def cache(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": f"roboflow_core/cache_{kind}@v1", "name": f"cache_{kind}", "image": "$inputs.image",
            "key": "last", **fields}


def test_cache_set_takes_a_selector_value_and_cache_get_a_key() -> None:
    plan = compile_workflow(workflow(cache("get"), cache("set", value="$steps.cache_get.output"),
                                     outputs=(("value", "$steps.cache_set.output"),)))
    read = {"image": "$inputs.image", "key": "last"}
    assert plan.step("cache_set").params == {**read, "value": "$steps.cache_get.output"}
    assert plan.step("cache_get").params == read
    assert "takes a selector" in refusal(workflow(cache("set", value=3)))
    assert "field 'workflow.steps[0].key': expected a string, got 3" in refusal(workflow(cache("get", key=3)))
    assert "is required" in refusal(workflow({"type": "roboflow_core/cache_get@v1", "name": "g", "key": "k"}))
