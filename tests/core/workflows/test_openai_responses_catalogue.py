"""open_ai@v4 and open_ai@v5 (OpenAI's Responses API) at INIT: names, defaults and choices as the reference's
manifests, the reasoning efforts each model takes, what each task type requires, Roboflow's proxy key (the
manifests' default) refused with its JSON path, and the reference's own step definitions compiled as written."""

import re
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.catalogue import llm as catalogue
from services.core.workflows.compiler import compile_workflow

STEP = re.escape("workflow.steps[0]")
V4 = "roboflow_core/open_ai@v4"
V5 = "roboflow_core/open_ai@v5"
BOTH = pytest.mark.parametrize("block", [V4, V5])
KEY = "sk-own-openai-key"
PROXY_REFUSAL = rf"field '{STEP}.api_key': an api_key of the form 'rf_key:...' asks for Roboflow's API proxy"
# The manifests' model list, in order, with each model's reasoning efforts (the reference's OPENAI_MODELS).
MODELS = {
    "gpt-5.6-sol": "none low medium high xhigh", "gpt-5.6-terra": "none low medium high xhigh",
    "gpt-5.6-luna": "none low medium high xhigh", "gpt-5.5": "none low medium high xhigh",
    "gpt-5.4": "none low medium high xhigh", "gpt-5.4-mini": "none low medium high xhigh",
    "gpt-5.4-nano": "none low medium high xhigh", "gpt-5.2": "none low medium high xhigh",
    "gpt-5.1": "none low medium high", "gpt-5": "minimal low medium high", "gpt-5-mini": "minimal low medium high",
    "gpt-5-nano": "minimal low medium high", "gpt-4.1": "", "gpt-4.1-mini": "", "gpt-4.1-nano": "", "gpt-4o": "",
    "gpt-4o-mini": "",
}
NINE_TASKS = ("unconstrained", "ocr", "structured-answering", "classification", "multi-label-classification",
              "visual-question-answering", "caption", "detailed-caption", "object-detection")


def definition_of(step: dict[str, Any]) -> dict[str, Any]:
    """``step`` in a workflow of its own: its ``$inputs.<name>`` as parameters, its two outputs as the workflow's."""
    names = sorted({value.split(".", 1)[1] for value in step.values()
                    if isinstance(value, str) and value.startswith("$inputs.") and value != "$inputs.image"})
    return {"version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"},
                       *({"type": "WorkflowParameter", "name": name} for name in names)],
            "steps": [step],
            "outputs": [{"type": "JsonField", "name": "answer", "selector": f"$steps.{step['name']}.output"},
                        {"type": "JsonField", "name": "classes", "selector": f"$steps.{step['name']}.classes"}]}


def compile_step(step: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    full = {"name": "llm", "images": "$inputs.image", **step}
    return dict(compile_workflow(definition_of(full), parameters=parameters).step(full["name"]).params)


def refused(step: dict[str, Any], match: str, **parameters: Any) -> None:
    with pytest.raises(InvalidPayloadError, match=match):
        compile_step(step, **parameters)


@BOTH
def test_the_blocks_are_named_as_the_manifests_and_answer_output_and_classes(block: str) -> None:
    spec = CATALOGUE[block]
    assert (spec.name, spec.family) == (block, "llm")
    assert spec.outputs == {"output": (kinds.STRING, kinds.LANGUAGE_MODEL_OUTPUT), "classes": (kinds.LIST_OF_VALUES,)}
    fields = {field.name: field for field in spec.fields}
    assert list(fields) == ["images", "task_type", "prompt", "output_structure", "classes", "api_key",
                            "model_version", "reasoning_effort", "image_detail", "max_tokens", "temperature",
                            "max_concurrent_requests"]
    assert fields["task_type"].choices == NINE_TASKS
    assert fields["model_version"].choices == tuple(MODELS)
    assert fields["reasoning_effort"].choices == ("none", "minimal", "low", "medium", "high", "xhigh")
    assert fields["image_detail"].choices == ("auto", "high", "low")
    assert fields["api_key"].kinds == (kinds.STRING, kinds.SECRET)
    assert {name: " ".join(efforts) for name, efforts in catalogue.OPENAI_RESPONSES_MODELS.items()} == MODELS


@BOTH
def test_defaults_follow_the_manifests(block: str) -> None:
    params = compile_step({"type": block, "prompt": "hi", "api_key": KEY})
    assert {name: params[name] for name in ("task_type", "model_version", "reasoning_effort", "image_detail",
                                            "max_tokens", "temperature", "max_concurrent_requests",
                                            "output_structure", "classes", "api_key")} == {
        "task_type": "unconstrained", "model_version": "gpt-5.1", "reasoning_effort": None, "image_detail": "auto",
        "max_tokens": None, "temperature": None, "max_concurrent_requests": None, "output_structure": None,
        "classes": None, "api_key": KEY}


@BOTH
@pytest.mark.parametrize(("task", "field"), [
    ("unconstrained", "prompt"), ("visual-question-answering", "prompt"), ("classification", "classes"),
    ("multi-label-classification", "classes"), ("object-detection", "classes"),
    ("structured-answering", "output_structure"),
])
def test_each_task_type_requires_its_field(block: str, task: str, field: str) -> None:
    refused({"type": block, "task_type": task, "api_key": KEY},
            f"field '{STEP}.{field}' is required for task_type '{re.escape(task)}'")


@BOTH
@pytest.mark.parametrize("task", ["ocr", "caption", "detailed-caption"])
def test_tasks_without_an_input_of_their_own_need_nothing(block: str, task: str) -> None:
    assert compile_step({"type": block, "task_type": task, "api_key": KEY})["task_type"] == task


@BOTH
def test_object_detection_is_a_task_of_both_and_a_selector_counts_as_given(block: str) -> None:
    params = compile_step({"type": block, "task_type": "object-detection", "classes": "$inputs.classes",
                           "api_key": KEY}, classes=["person", "car"])
    assert params["classes"] == ["person", "car"]


@BOTH
@pytest.mark.parametrize(("fields", "match"), [
    ({"model_version": "o3"}, r"'o3' is not one of 'gpt-5.6-sol'"),  # v3's, not v4's
    ({"model_version": "invalid-model"}, r"'invalid-model' is not one of"),
    ({"model_version": 123}, r"expected a string, got 123"),
    ({"reasoning_effort": "very_high"}, r"'very_high' is not one of 'none', 'minimal'"),
    ({"reasoning_effort": 123}, r"expected a string or null"),
    ({"image_detail": "max"}, r"'max' is not one of 'auto', 'high', 'low'"),
    ({"max_tokens": 15}, rf"field '{STEP}.max_tokens': expected an integer >= 16 or null, got 15"),
    ({"max_tokens": 0}, r"an integer >= 16 or null"),
    ({"max_tokens": 100.5}, r"an integer >= 16 or null"),
    ({"temperature": 2.1}, r"a number from 0.0 to 2.0 or null"),
    ({"temperature": -0.1}, r"a number from 0.0 to 2.0 or null"),
    ({"task_type": "segmentation"}, r"'segmentation' is not one of 'unconstrained'"),
])
def test_literals_are_checked_with_their_path(block: str, fields: dict[str, Any], match: str) -> None:
    refused({"type": block, "prompt": "p", "api_key": KEY, **fields}, match)


@BOTH
def test_the_bounds_themselves_are_accepted(block: str) -> None:
    params = compile_step({"type": block, "prompt": "p", "api_key": KEY, "max_tokens": 16, "temperature": 2.0,
                           "max_concurrent_requests": 2, "image_detail": "low"})
    assert (params["max_tokens"], params["temperature"], params["max_concurrent_requests"]) == (16, 2.0, 2)


@BOTH
@pytest.mark.parametrize(("model", "effort"), [
    ("gpt-5.1", "minimal"), ("gpt-5.1", "xhigh"), ("gpt-5", "none"), ("gpt-5-nano", "xhigh"),
    ("gpt-5.6-sol", "minimal"),
])
def test_an_effort_the_model_does_not_take_is_refused_at_init(block: str, model: str, effort: str) -> None:
    # the reference fails each request with it ('Model gpt-5.1 does not support reasoning effort "minimal"')
    refused({"type": block, "prompt": "p", "api_key": KEY, "model_version": model, "reasoning_effort": effort},
            rf"field '{STEP}.reasoning_effort': model '{re.escape(model)}' does not take reasoning_effort "
            rf"'{effort}' \(it takes ")


@BOTH
@pytest.mark.parametrize(("model", "effort"), [
    ("gpt-5.1", "none"), ("gpt-5.1", "high"), ("gpt-5", "minimal"), ("gpt-5.2", "xhigh"), ("gpt-5.6-luna", "none"),
    ("gpt-4o", "high"), ("gpt-4.1-nano", "minimal"),  # a model that does not reason: the effort is not sent
])
def test_an_effort_the_model_takes_or_ignores_is_accepted(block: str, model: str, effort: str) -> None:
    params = compile_step({"type": block, "prompt": "p", "api_key": KEY, "model_version": model,
                           "reasoning_effort": effort})
    assert (params["model_version"], params["reasoning_effort"]) == (model, effort)


@BOTH
def test_an_effort_from_a_parameter_is_checked_and_a_step_s_output_on_each_frame(block: str) -> None:
    refused({"type": block, "prompt": "p", "api_key": KEY, "model_version": "gpt-5", "reasoning_effort":
             "$inputs.effort"}, r"'gpt-5' does not take reasoning_effort 'none'", effort="none")
    definition = definition_of({"type": block, "name": "llm", "images": "$inputs.image", "prompt": "p",
                                "api_key": KEY, "model_version": "gpt-5", "reasoning_effort": "$steps.effort.output"})
    definition["steps"].insert(0, {"type": "roboflow_core/first_non_empty_or_default@v1", "name": "effort",
                                   "data": ["$inputs.effort"], "default": "low"})
    definition["inputs"].append({"type": "WorkflowParameter", "name": "effort"})
    assert compile_workflow(definition, parameters={"effort": None}).step("llm").params["reasoning_effort"] == \
        "$steps.effort.output"


@BOTH
def test_the_default_key_is_roboflow_s_proxy_and_is_refused(block: str) -> None:
    refused({"type": block, "prompt": "p"}, PROXY_REFUSAL + ".*give your own OpenAI API key")


@BOTH
@pytest.mark.parametrize("key", ["rf_key:account", "rf_key:user:12345"])
def test_a_proxy_key_given_or_from_a_parameter_is_refused(block: str, key: str) -> None:
    refused({"type": block, "prompt": "p", "api_key": key}, PROXY_REFUSAL)
    refused({"type": block, "prompt": "p", "api_key": "$inputs.openai_api_key"}, PROXY_REFUSAL,
            openai_api_key=key)


@BOTH
def test_a_key_from_a_secret_store_is_accepted(block: str) -> None:
    definition = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
                   "variables_storing_secrets": ["OPENAI_KEY"]},
                  {"type": block, "name": "llm", "images": "$inputs.image", "task_type": "structured-answering",
                   "output_structure": {"count": "how many people"}, "api_key": "$steps.vault.openai_key"},
                  {"type": "roboflow_core/json_parser@v1", "name": "parse", "raw_json": "$steps.llm.output",
                   "expected_fields": ["count"]}],
        "outputs": [{"type": "JsonField", "name": "count", "selector": "$steps.parse.count"}],
    }
    assert compile_workflow(definition).step("llm").params["api_key"] == "$steps.vault.openai_key"


# The reference has no integration tests of open_ai@v4 / v5 (none under
# roboflow/inference/tests/workflows/integration_tests/execution/ names either); its manifest tests' step definitions
# are compiled here as written
# (roboflow/inference/tests/workflows/unit_tests/core_steps/models/foundation/test_openai_v4.py and test_openai_v5.py),
# each in a workflow of its own whose $inputs are parameters given at INIT.
REFERENCE_VALID_STEP = {
    "type": "roboflow_core/open_ai@v4",
    "name": "step_1",
    "images": "$inputs.image",
    "task_type": "unconstrained",
    "prompt": "$inputs.prompt",
    "api_key": "$inputs.openai_api_key",
}
REFERENCE_DEFAULT_KEY_STEP = {  # test_openai_step_validation_with_default_api_key: api_key left to the proxy
    "type": "roboflow_core/open_ai@v4",
    "name": "step_1",
    "images": "$inputs.image",
    "task_type": "caption",
}
REFERENCE_PROMPT_GIVEN_STEP = {
    "type": "roboflow_core/open_ai@v4",
    "name": "step_1",
    "images": "$inputs.image",
    "task_type": "unconstrained",
    "prompt": "This is my prompt",
    "api_key": "$inputs.openai_api_key",
}
REFERENCE_CLASSIFICATION_STEP = {
    "type": "roboflow_core/open_ai@v4",
    "name": "step_1",
    "images": "$inputs.image",
    "task_type": "classification",
    "classes": ["cat", "dog"],
    "api_key": "$inputs.openai_api_key",
}
REFERENCE_DETECTION_STEP = {
    "type": "roboflow_core/open_ai@v5",
    "name": "step_1",
    "images": "$inputs.image",
    "task_type": "object-detection",
    "classes": ["person", "car"],
    "api_key": "$inputs.openai_api_key",
}
REFERENCE_DEPENDENT_MODEL_STEP = {  # test_openai_step_discovers_dependent_model (v5): the proxy's key again
    "type": "roboflow_core/open_ai@v5",
    "name": "step_1",
    "images": "$inputs.image",
    "task_type": "caption",
    "model_version": "gpt-5.6-sol",
}
REFERENCE_REASONING_STEP = {  # test_openai_step_validation_with_reasoning_effort, with its "high"
    "type": "roboflow_core/open_ai@v4",
    "name": "step_1",
    "images": "$inputs.image",
    "task_type": "caption",
    "api_key": "$inputs.openai_api_key",
    "model_version": "gpt-5.1",
    "reasoning_effort": "high",
}
PARAMETERS = {"openai_api_key": KEY, "prompt": "What is in the image?"}


def compile_reference(step: dict[str, Any], **extra: Any) -> dict[str, Any]:
    definition = definition_of({**step, **extra})
    names = {item["name"] for item in definition["inputs"]}
    return dict(compile_workflow(definition, parameters={k: v for k, v in PARAMETERS.items() if k in names})
                .step("step_1").params)


@pytest.mark.parametrize("step", [REFERENCE_VALID_STEP, REFERENCE_PROMPT_GIVEN_STEP, REFERENCE_CLASSIFICATION_STEP,
                                  REFERENCE_DETECTION_STEP, REFERENCE_REASONING_STEP])
def test_the_reference_s_steps_with_a_key_compile_as_written(step: dict[str, Any]) -> None:
    params = compile_reference(step)
    assert params["api_key"] == KEY
    assert {name: params[name] for name in step if name not in ("type", "name", "images", "api_key", "prompt")} == {
        name: value for name, value in step.items() if name not in ("type", "name", "images", "api_key", "prompt")}
    if step.get("prompt") == "$inputs.prompt":
        assert params["prompt"] == "What is in the image?"


@pytest.mark.parametrize("step", [REFERENCE_DEFAULT_KEY_STEP, REFERENCE_DEPENDENT_MODEL_STEP])
def test_the_reference_s_steps_on_the_proxy_s_default_key_are_refused_for_it_and_compile_with_a_key(
        step: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayloadError, match=PROXY_REFUSAL):
        compile_reference(step)
    params = compile_reference(step, api_key=KEY)
    assert (params["api_key"], params["task_type"], params["model_version"]) == (
        KEY, "caption", step.get("model_version", "gpt-5.1"))


@pytest.mark.parametrize(("fields", "match"), [
    ({"images": None}, rf"field '{STEP}.images' is required by roboflow_core/open_ai@v4"),
    ({"images": 1}, rf"field '{STEP}.images' takes a selector of image, got 1"),
    ({"images": "a"}, rf"field '{STEP}.images' takes a selector of image, got 'a'"),
    ({"images": True}, rf"field '{STEP}.images' takes a selector of image, got True"),
])
def test_the_reference_s_invalid_images_are_refused(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidPayloadError, match=match):
        compile_reference(REFERENCE_VALID_STEP, **fields)
