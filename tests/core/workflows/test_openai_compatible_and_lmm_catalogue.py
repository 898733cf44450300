"""openai_compatible@v1 and the first-generation GPT-4V blocks (open_ai@v1, lmm@v1, lmm_for_classification@v1) at
INIT: names and aliases, defaults and outputs as the reference's manifests have them (the JSON format's fields as
outputs of their own), bad literals refused with their JSON path, ``cog_vlm`` refused naming ``lmm_type``, and the
reference's own definitions compiled as written."""

import re
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.catalogue import llm as catalogue
from services.core.workflows.compiler import compile_workflow

STEP = re.escape("workflow.steps[0]")
OPEN_AI_V1 = "roboflow_core/open_ai@v1"
LMM = "roboflow_core/lmm@v1"
LMM_CLASSIFIER = "roboflow_core/lmm_for_classification@v1"
COMPATIBLE = "roboflow_core/openai_compatible@v1"
LEGACY_OUTPUTS = ["parent_id", "root_parent_id", "image", "structured_output", "raw_output"]


def definition(step: dict[str, Any], *parameters: str, output: str = "*") -> dict[str, Any]:
    inputs = [{"type": "WorkflowImage", "name": "image"},
              *({"type": "WorkflowParameter", "name": name} for name in parameters)]
    return {"version": "1.0", "inputs": inputs, "steps": [{"name": "llm", **step}],
            "outputs": [{"type": "JsonField", "name": "answer", "selector": f"$steps.llm.{output}"}]}


def compile_step(step: dict[str, Any], output: str = "*", **parameters: Any) -> dict[str, Any]:
    plan = compile_workflow(definition(step, *parameters, output=output), parameters=parameters)
    return dict(plan.step("llm").params)


def refused(step: dict[str, Any], match: str, **parameters: Any) -> None:
    with pytest.raises(InvalidPayloadError, match=match):
        compile_step(step, **parameters)


def open_ai(**fields: Any) -> dict[str, Any]:
    return {"type": OPEN_AI_V1, "images": "$inputs.image", "prompt": "Describe", "openai_api_key": "sk-1", **fields}


def lmm(**fields: Any) -> dict[str, Any]:
    return {"type": LMM, "images": "$inputs.image", "prompt": "Describe", "lmm_type": "gpt_4v",
            "remote_api_key": "sk-1", **fields}


def classifier(**fields: Any) -> dict[str, Any]:
    return {"type": LMM_CLASSIFIER, "images": "$inputs.image", "lmm_type": "gpt_4v", "classes": ["cat", "dog"],
            "remote_api_key": "sk-1", **fields}


def compatible(**fields: Any) -> dict[str, Any]:
    return {"type": COMPATIBLE, "base_url": "http://localhost:8000/v1", "model_name": "Qwen/Qwen2.5-VL-7B-Instruct",
            "prompt": "Describe what you see in the image.", **fields}


# ----------------------------------------------------------------------------- names, defaults, outputs


def test_the_blocks_answer_to_their_names_and_legacy_aliases() -> None:
    for name, alias in ((OPEN_AI_V1, "OpenAI"), (LMM, "LMM"), (LMM_CLASSIFIER, "LMMForClassification")):
        assert CATALOGUE[alias] is CATALOGUE[name] and CATALOGUE[name].family == "llm"
    assert CATALOGUE[COMPATIBLE].names == (COMPATIBLE,)
    assert compile_step({**open_ai(), "type": "OpenAI"})["prompt"] == "Describe"
    assert compile_step({**classifier(), "type": "LMMForClassification"})["classes"] == ["cat", "dog"]


def test_defaults_follow_the_manifests() -> None:
    params = compile_step(open_ai())
    assert {k: params[k] for k in ("openai_model", "json_output_format", "image_detail", "max_tokens")} == {
        "openai_model": "gpt-4o", "json_output_format": None, "image_detail": "auto", "max_tokens": 450}
    params = compile_step(lmm())
    assert (params["lmm_config"], params["json_output"]) == (
        {"max_tokens": 450, "gpt_image_detail": "auto", "gpt_model_version": "gpt-4o"}, None)
    params = compile_step(compatible())
    assert {k: v for k, v in params.items() if k not in ("base_url", "model_name", "prompt")} == {
        "api_key": None, "system_prompt": None, "prompt_parameters": {}, "prompt_parameters_operations": {},
        "max_tokens": 500, "temperature": None, "extra_body": None}


def test_no_block_here_has_max_concurrent_requests_as_their_manifests_have_none() -> None:
    for name in (OPEN_AI_V1, LMM, LMM_CLASSIFIER, COMPATIBLE):
        assert CATALOGUE[name].field("max_concurrent_requests") is None


@pytest.mark.parametrize("alias", ["images", "image"])
def test_the_image_field_takes_both_of_the_reference_s_names(alias: str) -> None:
    step = {**classifier(), alias: "$inputs.image"}
    if alias == "image":
        del step["images"]
    assert compile_step(step)["images"] == "$inputs.image"


def test_the_json_format_s_fields_are_outputs_after_the_block_s_own() -> None:
    spec = CATALOGUE[OPEN_AI_V1]
    outputs = spec.outputs_of(open_ai(json_output_format={"count": "how many", "colour": "which colour"}))
    assert list(outputs) == [*LEGACY_OUTPUTS, "count", "colour"]
    assert outputs["count"] == (kinds.WILDCARD,) and outputs["raw_output"] == (kinds.STRING,)
    assert (outputs["image"], outputs["structured_output"], outputs["parent_id"]) == (
        (kinds.IMAGE_METADATA,), (kinds.DICTIONARY,), (kinds.PARENT_ID,))
    assert list(CATALOGUE[LMM].outputs_of(lmm())) == LEGACY_OUTPUTS
    assert compile_step(open_ai(json_output_format={"count": "how many"}), output="count")["json_output_format"] == {
        "count": "how many"}
    refused_output = "step 'llm' (roboflow_core/open_ai@v1) has no output 'count'"
    with pytest.raises(InvalidPayloadError, match=re.escape(refused_output)):
        compile_step(open_ai(), output="count")


def test_the_classifier_s_and_the_compatible_block_s_outputs() -> None:
    assert CATALOGUE[LMM_CLASSIFIER].outputs == {
        "raw_output": (kinds.STRING,), "top": (kinds.TOP_CLASS,), "parent_id": (kinds.PARENT_ID,),
        "root_parent_id": (kinds.PARENT_ID,), "image": (kinds.IMAGE_METADATA,),
        "prediction_type": (kinds.PREDICTION_TYPE,)}
    assert CATALOGUE[COMPATIBLE].outputs == {"output": (kinds.STRING, kinds.LANGUAGE_MODEL_OUTPUT),
                                             "error_status": (kinds.STRING,)}


def test_the_model_choices_are_the_manifest_s_and_a_parameter_s_value_is_checked() -> None:
    field = CATALOGUE[OPEN_AI_V1].field("openai_model")
    assert field is not None and field.choices == catalogue.OPENAI_V1_MODELS == (
        "gpt-4o", "gpt-4o-mini", "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5")
    assert compile_step(open_ai(openai_model="$inputs.model"), model="gpt-5.5")["openai_model"] == "gpt-5.5"
    refused(open_ai(openai_model="$inputs.model"), r"'gpt-4.1' is not one of 'gpt-4o'", model="gpt-4.1")


# ----------------------------------------------------------------------------- cog_vlm and keys


@pytest.mark.parametrize("step", [lmm(lmm_type="cog_vlm"), classifier(lmm_type="cog_vlm")], ids=["lmm", "classifier"])
def test_cog_vlm_is_refused_naming_the_field(step: dict[str, Any]) -> None:
    refused(step, rf"^field '{STEP}.lmm_type': 'cog_vlm' \(CogVLM\) ran on Roboflow's own inference server, which "
                  r"this manager does not have .*use 'gpt_4v' with an OpenAI API key")


def test_cog_vlm_from_a_parameter_is_refused_too_and_one_from_a_step_waits_for_the_frame() -> None:
    refused(lmm(lmm_type="$inputs.lmm_type"), rf"field '{STEP}.lmm_type': 'cog_vlm'", lmm_type="cog_vlm")
    assert compile_step(lmm(lmm_type="$inputs.lmm_type"), lmm_type="gpt_4v")["lmm_type"] == "gpt_4v"
    workflow = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/property_definition@v1", "name": "kind", "data": "$inputs.image",
                   "operations": [{"type": "ExtractImageProperty", "property_name": "width"}, {"type": "ToString"}]},
                  {**lmm(lmm_type="$steps.kind.output"), "name": "llm"}],
        "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.llm.raw_output"}],
    }
    assert compile_workflow(workflow).step("llm").params["lmm_type"] == "$steps.kind.output"


@pytest.mark.parametrize(("step", "match"), [
    (lmm(lmm_type="gpt_5"), rf"'{STEP}.lmm_type': expected 'gpt_4v', got 'gpt_5'"),
    (lmm(remote_api_key=None), rf"^field '{STEP}.remote_api_key' is required for lmm_type 'gpt_4v'"),
    (classifier(remote_api_key=None), rf"^field '{STEP}.remote_api_key' is required for lmm_type 'gpt_4v'"),
    ({k: v for k, v in open_ai().items() if k != "openai_api_key"}, rf"'{STEP}.openai_api_key' is required"),
    (open_ai(openai_api_key=None), rf"'{STEP}.openai_api_key' is required"),
])
def test_a_model_and_a_key_are_needed(step: dict[str, Any], match: str) -> None:
    refused(step, match)


def test_a_key_may_come_from_a_parameter_or_a_step_s_secret_and_lmm_type_from_a_parameter() -> None:
    assert compile_step(lmm(remote_api_key="$inputs.key"), key="sk-2")["remote_api_key"] == "sk-2"
    workflow = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
                   "variables_storing_secrets": ["OPENAI_KEY"]},
                  {**open_ai(openai_api_key="$steps.vault.openai_key"), "name": "llm"}],
        "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.llm.raw_output"}],
    }
    assert compile_workflow(workflow).step("llm").params["openai_api_key"] == "$steps.vault.openai_key"


# ----------------------------------------------------------------------------- literals


@pytest.mark.parametrize(("step", "match"), [
    (open_ai(image_detail="max"), rf"'{STEP}.image_detail'.*'max' is not one of 'auto', 'high', 'low'"),
    (open_ai(max_tokens=0), rf"'{STEP}.max_tokens'.*a positive integer"),
    (open_ai(json_output_format={"count": 3}), r"an object of field names to descriptions \(strings\) or null"),
    (open_ai(json_output_format="$inputs.image"), rf"'{STEP}.json_output_format' takes a literal value"),
    (open_ai(json_output_format={"raw_output": "the answer"}),
     rf"^field '{STEP}.json_output_format.raw_output': 'raw_output' is one of the block's own outputs"),
    (lmm(json_output={"parent_id": "x"}), rf"'{STEP}.json_output.parent_id': 'parent_id' is one of the block's"),
    (lmm(lmm_config={"gpt_image_detail": "medium"}), rf"'{STEP}.lmm_config': expected an object of max_tokens"),
    (lmm(lmm_config={"max_tokens": -1}), rf"'{STEP}.lmm_config'"),
    (classifier(lmm_config={"gpt_model_version": 4}), rf"'{STEP}.lmm_config'"),
    (classifier(classes="cat"), rf"'{STEP}.classes'.*a list of strings"),
    ({k: v for k, v in classifier().items() if k != "classes"}, rf"'{STEP}.classes' is required"),
    ({k: v for k, v in lmm().items() if k != "prompt"}, rf"'{STEP}.prompt' is required"),
    (compatible(base_url="localhost:8000/v1"), rf"^field '{STEP}.base_url': expected an http:// or https:// URL"),
    (compatible(base_url="ftp://models.internal/v1"), rf"'{STEP}.base_url': expected an http:// or https://"),
    (compatible(base_url="http://gateway/v1?api-version=1"), rf"'{STEP}.base_url': .*takes no query or fragment"),
    ({k: v for k, v in compatible().items() if k != "model_name"}, rf"'{STEP}.model_name' is required"),
    ({k: v for k, v in compatible().items() if k != "base_url"}, rf"'{STEP}.base_url' is required"),
    ({k: v for k, v in compatible().items() if k != "prompt"}, rf"'{STEP}.prompt' is required"),
    (compatible(max_tokens=1), rf"'{STEP}.max_tokens'.*an integer greater than 1"),
    (compatible(temperature=2.5), rf"'{STEP}.temperature'.*a number from 0.0 to 2.0 or null"),
    (compatible(extra_body=["guided_choice"]), rf"'{STEP}.extra_body'.*an object or null"),
    (compatible(prompt_parameters="$inputs.image"), rf"'{STEP}.prompt_parameters' takes a literal value"),
    (compatible(prompt_parameters_operations={"x": [{"type": "Teleport"}]}),
     rf"'{STEP}.prompt_parameters_operations.x\[0\].type'"),
    (compatible(prompt_parameters={"x": "$steps.nowhere.output"}), r"names no step of the workflow"),
])
def test_bad_literals_are_refused_with_their_path(step: dict[str, Any], match: str) -> None:
    refused(step, match)


def test_the_compatible_block_takes_selectors_parameters_and_extra_body() -> None:
    params = compile_step(compatible(
        base_url="$inputs.base_url", model_name="$inputs.model_name", api_key="$inputs.api_key",
        system_prompt="You are a helpful assistant.", temperature=0.0,
        prompt="Count {{ $parameters.obj_type }} in {{ $parameters.frame }}",
        prompt_parameters={"obj_type": "$inputs.obj_type", "frame": "$inputs.image", "limit": 3},
        prompt_parameters_operations={"obj_type": [{"type": "StringToUpperCase"}], "elsewhere": [{"type": "ToString"}]},
        extra_body={"guided_choice": ["A", "B"], "chat_template_kwargs": {"enable_thinking": False}}),
        base_url="http://10.0.0.5:11434/v1", model_name="llava", api_key="sk-local", obj_type="cars")
    assert (params["base_url"], params["model_name"], params["api_key"]) == (
        "http://10.0.0.5:11434/v1", "llava", "sk-local")
    assert params["prompt_parameters"] == {"obj_type": "cars", "frame": "$inputs.image", "limit": 3}
    assert params["extra_body"] == {"guided_choice": ["A", "B"], "chat_template_kwargs": {"enable_thinking": False}}
    assert compile_step(compatible(base_url="https://llm.example.com/openai/v1/"))["base_url"] == \
        "https://llm.example.com/openai/v1/"
    refused(compatible(base_url="$inputs.url"), rf"'{STEP}.base_url': expected an http", url="not a url")


# ----------------------------------------------------------------------------- the reference's definitions

# roboflow/inference/tests/inference/hosted_platform_tests/workflows_examples/test_workflow_with_openai.py, as
# written there (the reference has no execution integration test of these blocks); its runtime parameters become
# INIT's workflows_parameters here.
REFERENCE_DESCRIPTION_WORKFLOW = {
    "version": "1.0",
    "inputs": [
        {"type": "WorkflowImage", "name": "image"},
        {"type": "WorkflowParameter", "name": "detection_model_id"},
        {"type": "InferenceParameter", "name": "prompt"},
        {"type": "WorkflowParameter", "name": "open_ai_key"},
    ],
    "steps": [
        {
            "type": "ObjectDetectionModel",
            "name": "general_detection",
            "image": "$inputs.image",
            "model_id": "$inputs.detection_model_id",
            "class_filter": ["dog"],
        },
        {
            "type": "Crop",
            "name": "cropping",
            "image": "$inputs.image",
            "predictions": "$steps.general_detection.predictions",
        },
        {
            "type": "roboflow_core/open_ai@v1",
            "name": "open_ai",
            "image": "$inputs.image",
            "prompt": "$inputs.prompt",
            "json_output_format": {
                "description": "This is the field to inject produced description",
            },
            "openai_model": "gpt-4o",
            "openai_api_key": "$inputs.open_ai_key",
            "max_tokens": 100,
        },
    ],
    "outputs": [
        {
            "type": "JsonField",
            "name": "detection_predictions",
            "selector": "$steps.general_detection.predictions",
        },
        {
            "type": "JsonField",
            "name": "description",
            "selector": "$steps.open_ai.description",
        },
    ],
}

# The LMM step whose dynamic outputs roboflow/inference/tests/inference/integration_tests/test_workflow_endpoints.py
# (test_getting_dynamic_outputs) asks for, as written there.
REFERENCE_LMM_STEP = {
    "type": "LMM",
    "name": "step_1",
    "images": "$inputs.image",
    "lmm_type": "$inputs.lmm_type",
    "prompt": "This is my prompt",
    "json_output": {"field_1": "some", "field_2": "other"},
    "remote_api_key": "$inputs.open_ai_key",
}

# Steps the reference's manifest tests validate as written
# (roboflow/inference/tests/workflows/unit_tests/core_steps/models/foundation/test_openai_compatible_v1.py).
REFERENCE_COMPATIBLE_STEPS = [
    {
        "type": "roboflow_core/openai_compatible@v1",
        "name": "step_1",
        "base_url": "http://localhost:8000/v1",
        "model_name": "Qwen/Qwen2.5-VL-7B-Instruct",
        "prompt": "Describe what you see.",
    },
    {
        "type": "roboflow_core/openai_compatible@v1",
        "name": "step_1",
        "base_url": "$inputs.base_url",
        "model_name": "$inputs.model_name",
        "prompt": "$inputs.prompt",
        "api_key": "$inputs.api_key",
    },
    {
        "type": "roboflow_core/openai_compatible@v1",
        "name": "step_1",
        "base_url": "http://localhost:8000/v1",
        "model_name": "test-model",
        "prompt": "Pick one.",
        "extra_body": {
            "guided_choice": ["A", "B", "C"],
            "chat_template_kwargs": {"enable_thinking": False},
        },
    },
]


def test_the_reference_s_open_ai_v1_workflow_compiles_as_written() -> None:
    plan = compile_workflow(REFERENCE_DESCRIPTION_WORKFLOW, parameters={
        "detection_model_id": "yolov8n-640", "open_ai_key": "sk-x",
        "prompt": "Provide a very short description for the image given."})
    step = plan.step("open_ai")
    assert step.type == OPEN_AI_V1
    assert dict(step.params) == {
        "images": "$inputs.image", "prompt": "Provide a very short description for the image given.",
        "openai_api_key": "sk-x", "openai_model": "gpt-4o",
        "json_output_format": {"description": "This is the field to inject produced description"},
        "image_detail": "auto", "max_tokens": 100}
    assert [output.selector for output in plan.outputs][-1] == "$steps.open_ai.description"


def test_the_reference_s_lmm_step_has_the_reference_s_dynamic_outputs() -> None:
    assert list(CATALOGUE["LMM"].outputs_of(REFERENCE_LMM_STEP)) == [
        "parent_id", "root_parent_id", "image", "structured_output", "raw_output", "field_1", "field_2"]
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "lmm_type"},
                   {"type": "WorkflowParameter", "name": "open_ai_key"}],
        "steps": [REFERENCE_LMM_STEP],
        "outputs": [{"type": "JsonField", "name": name, "selector": f"$steps.step_1.{name}"}
                    for name in ("field_1", "field_2", "raw_output")],
    }
    params = compile_workflow(workflow, parameters={"lmm_type": "gpt_4v", "open_ai_key": "sk-x"}).step(
        "step_1").params
    assert (params["lmm_type"], params["remote_api_key"], params["json_output"]) == (
        "gpt_4v", "sk-x", {"field_1": "some", "field_2": "other"})
    with pytest.raises(InvalidPayloadError, match=r"'workflow.steps\[0\].lmm_type': 'cog_vlm'"):
        compile_workflow(workflow, parameters={"lmm_type": "cog_vlm", "open_ai_key": "sk-x"})


@pytest.mark.parametrize("step", REFERENCE_COMPATIBLE_STEPS, ids=["literals", "selectors", "extra-body"])
def test_the_reference_s_openai_compatible_steps_compile_as_written(step: dict[str, Any]) -> None:
    parameters = {"base_url": "http://127.0.0.1:8000/v1", "model_name": "m", "prompt": "Hi", "api_key": "k"}
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   *({"type": "WorkflowParameter", "name": name} for name in parameters)],
        "steps": [step],
        "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.step_1.output"},
                    {"type": "JsonField", "name": "error", "selector": "$steps.step_1.error_status"}],
    }
    params = compile_workflow(workflow, parameters=parameters).step("step_1").params
    assert params["max_tokens"] == 500 and params["prompt_parameters"] == {}
    assert params["extra_body"] == step.get("extra_body")
