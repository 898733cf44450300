"""The OpenRouter blocks' manifests at INIT (llama_3_2_vision@v1, llama_vision@v2, openrouter@v1, kimi_openrouter
v1/v2, qwen3_5/qwen3_6_openrouter@v1): names, defaults, choices and model tables as the reference's, what each task
type requires, bad literals refused with their JSON path, Roboflow's proxy key (the v2 blocks' default) refused, and
the reference's own integration-test definitions compiled as written."""

import re
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.catalogue import llm as catalogue
from services.core.workflows.compiler import compile_workflow

STEP = re.escape("workflow.steps[0]")
LLAMA_V1 = "roboflow_core/llama_3_2_vision@v1"
LLAMA_V2 = "roboflow_core/llama_vision@v2"
OPENROUTER = "roboflow_core/openrouter@v1"
KIMI_V1 = "roboflow_core/kimi_openrouter@v1"
KIMI_V2 = "roboflow_core/kimi_openrouter@v2"
QWEN35 = "roboflow_core/qwen3_5_openrouter@v1"
QWEN36 = "roboflow_core/qwen3_6_openrouter@v1"
ALL = (LLAMA_V1, LLAMA_V2, OPENROUTER, KIMI_V1, KIMI_V2, QWEN35, QWEN36)
FIRST_GENERATION = (LLAMA_V1, KIMI_V1, QWEN35, QWEN36)  # api_key required, no privacy_level
SECOND_GENERATION = (LLAMA_V2, OPENROUTER, KIMI_V2)  # api_key defaults to Roboflow's proxy, privacy_level
NINE_TASKS = ("unconstrained", "ocr", "structured-answering", "classification", "multi-label-classification",
              "visual-question-answering", "caption", "detailed-caption", "object-detection")


def compile_step(step: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    inputs = [{"type": "WorkflowImage", "name": "image"},
              *({"type": "WorkflowParameter", "name": name} for name in parameters)]
    definition = {"version": "1.0", "inputs": inputs, "steps": [{"name": "llm", "images": "$inputs.image", **step}],
                  "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.llm.output"},
                              {"type": "JsonField", "name": "classes", "selector": "$steps.llm.classes"}]}
    return dict(compile_workflow(definition, parameters=parameters).step("llm").params)


def minimal(block: str, **fields: Any) -> dict[str, Any]:
    step = {"type": block, "prompt": "hi", "api_key": "sk-or-v1-test", **fields}
    if block == OPENROUTER:
        step.setdefault("model_id", "openai/gpt-4o-mini")
    return step


def refused(step: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidPayloadError, match=match):
        compile_step(step)


def test_the_blocks_are_named_as_the_manifests_and_answer_output_and_classes() -> None:
    for block in ALL:
        spec = CATALOGUE[block]
        assert (spec.name, spec.family) == (block, "llm")
        assert spec.outputs == {"output": (kinds.STRING, kinds.LANGUAGE_MODEL_OUTPUT),
                                "classes": (kinds.LIST_OF_VALUES,)}
    # the reference's Llama v2 is "llama_vision@v2", not "llama_3_2_vision@v2"
    assert "roboflow_core/llama_vision@v2" in CATALOGUE


@pytest.mark.parametrize(("block", "model"), [
    (LLAMA_V1, "11B (Free) - OpenRouter"), (LLAMA_V2, "11B - OpenRouter"), (KIMI_V1, "Kimi K2.6 - OpenRouter"),
    (KIMI_V2, "Kimi K2.6 - OpenRouter"), (QWEN35, "Qwen 3.5 27B - OpenRouter"),
    (QWEN36, "Qwen 3.6 35B A3B - OpenRouter"),
])
def test_defaults_follow_the_manifests(block: str, model: str) -> None:
    params = compile_step(minimal(block))
    assert {k: params[k] for k in ("task_type", "model_version", "max_tokens", "temperature", "output_structure",
                                   "classes", "max_concurrent_requests")} == {
        "task_type": "unconstrained", "model_version": model, "max_tokens": 500, "temperature": 0.1,
        "output_structure": None, "classes": None, "max_concurrent_requests": None}
    assert ("privacy_level" in params) is (block in SECOND_GENERATION)
    if block in SECOND_GENERATION:
        assert params["privacy_level"] == "deny"


def test_openrouter_v1_takes_any_model_slug_and_requires_it() -> None:
    params = compile_step(minimal(OPENROUTER, model_id="anthropic/claude-3.5-sonnet"))
    assert (params["model_id"], params["privacy_level"], params["max_tokens"]) == (
        "anthropic/claude-3.5-sonnet", "deny", 500)
    assert "model_version" not in params
    assert compile_step(minimal(OPENROUTER, model_id="$inputs.slug"), slug="qwen/qwen3.6-27b")["model_id"] == \
        "qwen/qwen3.6-27b"
    refused({"type": OPENROUTER, "prompt": "p", "api_key": "k"}, rf"'{STEP}.model_id'")


def test_the_model_tables_are_the_reference_s() -> None:
    assert catalogue.LLAMA_V1_MODELS == {
        "11B (Free) - OpenRouter": "meta-llama/llama-3.2-11b-vision-instruct:free",
        "11B (Regular) - OpenRouter": "meta-llama/llama-3.2-11b-vision-instruct",
        "90B (Free) - OpenRouter": "meta-llama/llama-3.2-90b-vision-instruct:free",
        "90B (Regular) - OpenRouter": "meta-llama/llama-3.2-90b-vision-instruct"}
    assert catalogue.LLAMA_V2_MODELS == {"11B - OpenRouter": "meta-llama/llama-3.2-11b-vision-instruct"}
    assert catalogue.KIMI_MODELS == {"Kimi K2.5 - OpenRouter": "moonshotai/kimi-k2.5",
                                     "Kimi K2.6 - OpenRouter": "moonshotai/kimi-k2.6"}
    assert list(catalogue.QWEN3_5_MODELS.values()) == [
        "qwen/qwen3.5-9b", "qwen/qwen3.5-27b", "qwen/qwen3.5-122b-a10b", "qwen/qwen3.5-397b-a17b",
        "qwen/qwen3.5-flash-02-23", "qwen/qwen3.5-plus-20260420"]
    assert catalogue.QWEN3_6_MODELS == {
        "Qwen 3.6 27B - OpenRouter": "qwen/qwen3.6-27b", "Qwen 3.6 35B A3B - OpenRouter": "qwen/qwen3.6-35b-a3b",
        "Qwen 3.6 Flash - OpenRouter": "qwen/qwen3.6-flash", "Qwen 3.6 Plus - OpenRouter": "qwen/qwen3.6-plus",
        "Qwen 3.6 Max Preview - OpenRouter": "qwen/qwen3.6-max-preview"}
    for block, table in catalogue.OPENROUTER_MODELS.items():
        field = CATALOGUE[block].field("model_version")
        assert field is not None and field.choices == tuple(table), block


@pytest.mark.parametrize("block", ALL)
def test_task_types_are_the_manifests(block: str) -> None:
    field = CATALOGUE[block].field("task_type")
    assert field is not None
    assert field.choices == (NINE_TASKS[:-1] if block == LLAMA_V1 else NINE_TASKS)


@pytest.mark.parametrize(("block", "task", "field"), [
    (LLAMA_V1, "unconstrained", "prompt"),
    (LLAMA_V2, "visual-question-answering", "prompt"),
    (OPENROUTER, "object-detection", "classes"),
    (KIMI_V1, "multi-label-classification", "classes"),
    (KIMI_V2, "structured-answering", "output_structure"),
    (QWEN35, "classification", "classes"),
    (QWEN36, "object-detection", "classes"),
])
def test_each_task_type_requires_its_field(block: str, task: str, field: str) -> None:
    step = minimal(block, task_type=task)
    del step["prompt"]
    refused(step, f"field '{STEP}.{field}' is required for task_type '{re.escape(task)}'")


def test_a_selector_counts_as_given_and_ocr_needs_nothing() -> None:
    params = compile_step({"type": KIMI_V2, "task_type": "object-detection", "api_key": "k",
                           "classes": "$inputs.classes"}, classes=["a", "b"])
    assert params["classes"] == ["a", "b"]
    assert compile_step({"type": QWEN36, "task_type": "ocr", "api_key": "k"})["prompt"] is None


@pytest.mark.parametrize(("step", "match"), [
    (minimal(LLAMA_V1, task_type="object-detection", classes=["a"]), r"'object-detection' is not one of"),
    (minimal(LLAMA_V1, model_version="11B - OpenRouter"), r"'11B - OpenRouter' is not one of '11B \(Free\)"),
    (minimal(LLAMA_V2, model_version="90B (Regular) - OpenRouter"), r"is not one of '11B - OpenRouter'"),
    (minimal(KIMI_V1, model_version="Kimi K2 - OpenRouter"), r"'Kimi K2 - OpenRouter' is not one of"),
    (minimal(QWEN35, model_version="Qwen 3.6 27B - OpenRouter"), r"'Qwen 3.6 27B - OpenRouter' is not one of"),
    (minimal(QWEN36, model_version="qwen/qwen3.6-27b"), r"'qwen/qwen3.6-27b' is not one of"),
    (minimal(KIMI_V2, privacy_level="none"), rf"'{STEP}.privacy_level'.*'none' is not one of 'allow', 'deny', 'zdr'"),
    (minimal(OPENROUTER, privacy_level="$inputs.level"), rf"'{STEP}.privacy_level'"),
    (minimal(LLAMA_V1, max_tokens=1), rf"'{STEP}.max_tokens'.*an integer greater than 1"),
    (minimal(QWEN35, max_tokens="$inputs.tokens"), rf"'{STEP}.max_tokens'"),
    (minimal(KIMI_V1, temperature=2.5), rf"'{STEP}.temperature'.*a number from 0.0 to 2.0"),
    (minimal(LLAMA_V2, temperature=-0.1), rf"'{STEP}.temperature'.*a number from 0.0 to 2.0"),
    (minimal(QWEN36, task_type="structured-answering", output_structure={"n": 3}),
     r"an object of field names to descriptions \(strings\) or null"),
    (minimal(OPENROUTER, model_id=7), rf"'{STEP}.model_id'.*a string"),
])
def test_bad_literals_are_refused_with_their_path(step: dict[str, Any], match: str) -> None:
    refused(step, match)


def test_a_parameter_s_value_is_checked_as_a_literal() -> None:
    assert compile_step(minimal(KIMI_V1, model_version="$inputs.kimi"),
                        kimi="Kimi K2.5 - OpenRouter")["model_version"] == "Kimi K2.5 - OpenRouter"
    with pytest.raises(InvalidPayloadError, match=r"'Kimi K3 - OpenRouter' is not one of"):
        compile_step(minimal(KIMI_V1, model_version="$inputs.kimi"), kimi="Kimi K3 - OpenRouter")
    with pytest.raises(InvalidPayloadError, match=rf"'{STEP}.temperature'.*a number from 0.0 to 2.0"):
        compile_step(minimal(OPENROUTER, temperature="$inputs.t"), t=3.0)


@pytest.mark.parametrize("block", FIRST_GENERATION)
def test_the_first_generation_requires_a_key(block: str) -> None:
    refused({"type": block, "prompt": "p"}, rf"'{STEP}.api_key'")


@pytest.mark.parametrize("block", SECOND_GENERATION)
def test_the_second_generation_s_default_key_is_roboflow_s_proxy_and_is_refused(block: str) -> None:
    step = minimal(block)
    del step["api_key"]
    refused(step, rf"field '{STEP}.api_key': an api_key of the form 'rf_key:...' asks for Roboflow's API proxy, "
                  r"which this manager does not have; give your own OpenRouter API key")


@pytest.mark.parametrize("block", ALL)
@pytest.mark.parametrize("key", ["rf_key:account", "rf_key:user:42"])
def test_a_roboflow_proxy_key_is_refused(block: str, key: str) -> None:
    refused(minimal(block, api_key=key), rf"field '{STEP}.api_key': .*Roboflow's API proxy")
    with pytest.raises(InvalidPayloadError, match="Roboflow's API proxy"):
        compile_step(minimal(block, api_key="$inputs.key"), key=key)


def test_a_secret_feeds_every_block_s_key_but_llama_v1_s_which_takes_a_string() -> None:
    def with_vault(block: str) -> dict[str, Any]:
        return {
            "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
            "steps": [{"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
                       "variables_storing_secrets": ["OPENROUTER_KEY"]},
                      {**minimal(block, api_key="$steps.vault.openrouter_key"), "name": "llm",
                       "images": "$inputs.image"}],
            "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.llm.output"}],
        }

    for block in ALL:
        if block == LLAMA_V1:  # the manifest's api_key selector takes STRING_KIND only
            with pytest.raises(InvalidPayloadError, match="gives secret, but the field takes string"):
                compile_workflow(with_vault(block))
        else:
            assert compile_workflow(with_vault(block)).step("llm").params["api_key"] == \
                "$steps.vault.openrouter_key"


# The reference's integration tests
# (roboflow/inference/tests/workflows/integration_tests/execution/test_workflow_with_llama_vision.py), as written
# there; their runtime parameters become INIT's workflows_parameters here.
REFERENCE_CLASSIFICATION_WORKFLOW = {
    "version": "1.0",
    "inputs": [
        {"type": "WorkflowImage", "name": "image"},
        {"type": "WorkflowParameter", "name": "api_key"},
        {"type": "WorkflowParameter", "name": "classes"},
    ],
    "steps": [
        {
            "type": "roboflow_core/llama_3_2_vision@v1",
            "name": "llama",
            "images": "$inputs.image",
            "task_type": "classification",
            "classes": "$inputs.classes",
            "api_key": "$inputs.api_key",
            "model_version": "11B (Regular) - OpenRouter",
        },
        {
            "type": "roboflow_core/vlm_as_classifier@v2",
            "name": "parser",
            "image": "$inputs.image",
            "vlm_output": "$steps.llama.output",
            "classes": "$steps.llama.classes",
        },
        {
            "type": "roboflow_core/property_definition@v1",
            "name": "top_class",
            "operations": [
                {"type": "ClassificationPropertyExtract", "property_name": "top_class"}
            ],
            "data": "$steps.parser.predictions",
        },
    ],
    "outputs": [
        {
            "type": "JsonField",
            "name": "llama_result",
            "selector": "$steps.llama.output",
        },
        {
            "type": "JsonField",
            "name": "top_class",
            "selector": "$steps.top_class.output",
        },
        {
            "type": "JsonField",
            "name": "parsed_prediction",
            "selector": "$steps.parser.*",
        },
    ],
}
REFERENCE_STRUCTURED_PROMPTING_WORKFLOW = {
    "version": "1.0",
    "inputs": [
        {"type": "WorkflowImage", "name": "image"},
        {"type": "WorkflowParameter", "name": "api_key"},
    ],
    "steps": [
        {
            "type": "roboflow_core/llama_3_2_vision@v1",
            "name": "llama",
            "images": "$inputs.image",
            "task_type": "structured-answering",
            "output_structure": {
                "dogs_count": "count of dogs instances in the image",
                "cats_count": "count of cats instances in the image",
            },
            "api_key": "$inputs.api_key",
            "model_version": "11B (Regular) - OpenRouter",
        },
        {
            "type": "roboflow_core/json_parser@v1",
            "name": "parser",
            "raw_json": "$steps.llama.output",
            "expected_fields": ["dogs_count", "cats_count"],
        },
        {
            "type": "roboflow_core/property_definition@v1",
            "name": "property_definition",
            "operations": [{"type": "ToString"}],
            "data": "$steps.parser.dogs_count",
        },
    ],
    "outputs": [
        {
            "type": "JsonField",
            "name": "llama_output",
            "selector": "$steps.llama.output",
        },
        {
            "type": "JsonField",
            "name": "result",
            "selector": "$steps.property_definition.output",
        },
    ],
}
REFERENCE_SECONDARY_CLASSIFIER_WORKFLOW = {
    "version": "1.0",
    "inputs": [
        {"type": "WorkflowImage", "name": "image"},
        {"type": "WorkflowParameter", "name": "api_key"},
        {
            "type": "WorkflowParameter",
            "name": "classes",
            "default_value": [
                "russell-terrier",
                "wirehaired-pointing-griffon",
                "beagle",
            ],
        },
    ],
    "steps": [
        {
            "type": "ObjectDetectionModel",
            "name": "general_detection",
            "image": "$inputs.image",
            "model_id": "yolov8n-640",
            "class_filter": ["dog"],
        },
        {
            "type": "Crop",
            "name": "cropping",
            "image": "$inputs.image",
            "predictions": "$steps.general_detection.predictions",
        },
        {
            "type": "roboflow_core/llama_3_2_vision@v1",
            "name": "llama",
            "images": "$steps.cropping.crops",
            "task_type": "classification",
            "classes": "$inputs.classes",
            "api_key": "$inputs.api_key",
            "model_version": "11B (Regular) - OpenRouter",
        },
        {
            "type": "roboflow_core/vlm_as_classifier@v2",
            "name": "parser",
            "image": "$steps.cropping.crops",
            "vlm_output": "$steps.llama.output",
            "classes": "$steps.llama.classes",
        },
        {
            "type": "roboflow_core/detections_classes_replacement@v1",
            "name": "classes_replacement",
            "object_detection_predictions": "$steps.general_detection.predictions",
            "classification_predictions": "$steps.parser.predictions",
        },
    ],
    "outputs": [
        {
            "type": "JsonField",
            "name": "predictions",
            "selector": "$steps.classes_replacement.predictions",
        },
    ],
}


@pytest.mark.parametrize(("definition", "parameters", "expected"), [
    (REFERENCE_CLASSIFICATION_WORKFLOW, {"api_key": "sk-or-v1-x", "classes": ["cat", "dog"]},
     {"task_type": "classification", "classes": ["cat", "dog"]}),
    (REFERENCE_STRUCTURED_PROMPTING_WORKFLOW, {"api_key": "sk-or-v1-x"},
     {"task_type": "structured-answering",
      "output_structure": {"dogs_count": "count of dogs instances in the image",
                           "cats_count": "count of cats instances in the image"}}),
    (REFERENCE_SECONDARY_CLASSIFIER_WORKFLOW, {"api_key": "sk-or-v1-x"},
     {"task_type": "classification", "classes": ["russell-terrier", "wirehaired-pointing-griffon", "beagle"]}),
], ids=["classification", "structured-answering", "secondary-classifier"])
def test_the_reference_s_integration_definitions_compile_as_written(
        definition: dict[str, Any], parameters: dict[str, Any], expected: dict[str, Any]) -> None:
    plan = compile_workflow(definition, parameters=parameters)
    params = plan.step("llama").params
    assert plan.step("llama").type == LLAMA_V1
    assert {k: params[k] for k in expected} == expected
    assert (params["model_version"], params["api_key"], params["max_tokens"], params["temperature"]) == (
        "11B (Regular) - OpenRouter", "sk-or-v1-x", 500, 0.1)
