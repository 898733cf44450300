"""meta_vlm@v1 (Meta's Muse models through OpenRouter) and spacexai@v1 (xAI's Grok models) at INIT: names,
defaults, choices and model tables as the reference's manifests, what each task type requires, bad literals refused
with their JSON path, Roboflow's proxy key (meta_vlm's default) refused naming ``api_key``, and the reference's own
integration and manifest-test definitions compiled as written."""

import re
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.catalogue import llm as catalogue
from services.core.workflows.compiler import compile_workflow

STEP = re.escape("workflow.steps[0]")
META = "roboflow_core/meta_vlm@v1"
XAI = "roboflow_core/spacexai@v1"
BOTH = pytest.mark.parametrize("block", [META, XAI])
KEYS = {META: "sk-or-v1-own-key", XAI: "xai-own-key"}
PROVIDERS = {META: "OpenRouter", XAI: "xAI"}
NINE_TASKS = ("unconstrained", "ocr", "structured-answering", "classification", "multi-label-classification",
              "visual-question-answering", "caption", "detailed-caption", "object-detection")
ANSWERS = {"output": (kinds.STRING, kinds.LANGUAGE_MODEL_OUTPUT), "classes": (kinds.LIST_OF_VALUES,)}


def definition_of(step: dict[str, Any]) -> dict[str, Any]:
    """``step`` in a workflow of its own: its ``$inputs.<name>`` as parameters, its output as the workflow's."""
    names = sorted({value.split(".", 1)[1] for value in step.values()
                    if isinstance(value, str) and value.startswith("$inputs.") and value != "$inputs.image"})
    return {"version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"},
                       *({"type": "WorkflowParameter", "name": name} for name in names)],
            "steps": [step],
            "outputs": [{"type": "JsonField", "name": "answer", "selector": f"$steps.{step['name']}.output"}]}


def compile_step(step: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    full = {"name": "llm", "images": "$inputs.image", **step}
    return dict(compile_workflow(definition_of(full), parameters=parameters).step(full["name"]).params)


def minimal(block: str, **fields: Any) -> dict[str, Any]:
    return {"type": block, "prompt": "hi", "api_key": KEYS[block], **fields}


def refused(step: dict[str, Any], match: str, **parameters: Any) -> None:
    with pytest.raises(InvalidPayloadError, match=match):
        compile_step(step, **parameters)


def test_the_blocks_are_named_as_the_manifests_with_their_outputs() -> None:
    meta, xai = CATALOGUE[META], CATALOGUE[XAI]
    assert (meta.name, meta.family, xai.name, xai.family) == (META, "llm", XAI, "llm")
    assert meta.outputs == {**ANSWERS, "thinking": (kinds.STRING,)}, "the Muse model's reasoning trace"
    assert xai.outputs == ANSWERS
    assert [field.name for field in meta.fields] == [
        "images", "model_version", "task_type", "prompt", "output_structure", "classes", "reasoning_effort",
        "max_tokens", "temperature", "api_key", "privacy_level", "max_concurrent_requests"]
    assert [field.name for field in xai.fields] == [
        "images", "task_type", "prompt", "output_structure", "classes", "api_key", "model_version",
        "reasoning_effort", "max_tokens", "temperature", "max_concurrent_requests"]


def test_the_choices_and_model_tables_are_the_reference_s() -> None:
    meta = {field.name: field for field in CATALOGUE[META].fields}
    xai = {field.name: field for field in CATALOGUE[XAI].fields}
    assert catalogue.META_MODELS == {"Muse Spark 1.1": "meta/muse-spark-1.1", "Muse Spark 1.2": "meta/muse-spark-1.2",
                                     "Muse Glimmer": "meta/muse-glimmer-30b"}
    assert meta["model_version"].choices == ("Muse Spark 1.1", "Muse Spark 1.2", "Muse Glimmer")
    assert meta["reasoning_effort"].choices == ("low", "medium", "high")
    assert meta["reasoning_effort"].kinds == (), "a literal only, as the manifest's"
    assert meta["privacy_level"].choices == ("allow", "deny", "zdr")
    assert xai["model_version"].choices == ("grok-4.6", "grok-4.5")
    assert xai["reasoning_effort"].choices == ("low", "high")
    assert xai["reasoning_effort"].kinds == (kinds.STRING,)
    for fields in (meta, xai):
        assert fields["task_type"].choices == NINE_TASKS
        assert fields["api_key"].kinds == (kinds.STRING, kinds.SECRET)
        assert fields["model_version"].kinds == (kinds.STRING,)
        assert fields["temperature"].kinds == (kinds.FLOAT,)


def test_defaults_follow_the_manifests() -> None:
    meta = compile_step(minimal(META))
    assert {name: meta[name] for name in ("task_type", "model_version", "reasoning_effort", "max_tokens",
                                          "temperature", "privacy_level", "max_concurrent_requests",
                                          "output_structure", "classes")} == {
        "task_type": "unconstrained", "model_version": "Muse Spark 1.2", "reasoning_effort": "low",
        "max_tokens": 2048, "temperature": None, "privacy_level": "deny", "max_concurrent_requests": None,
        "output_structure": None, "classes": None}
    xai = compile_step(minimal(XAI))
    assert {name: xai[name] for name in ("task_type", "model_version", "reasoning_effort", "max_tokens",
                                         "temperature", "max_concurrent_requests", "output_structure",
                                         "classes")} == {
        "task_type": "unconstrained", "model_version": "grok-4.6", "reasoning_effort": None, "max_tokens": None,
        "temperature": None, "max_concurrent_requests": None, "output_structure": None, "classes": None}


@BOTH
@pytest.mark.parametrize(("task", "field"), [
    ("unconstrained", "prompt"), ("visual-question-answering", "prompt"), ("classification", "classes"),
    ("multi-label-classification", "classes"), ("object-detection", "classes"),
    ("structured-answering", "output_structure"),
])
def test_each_task_type_requires_its_field(block: str, task: str, field: str) -> None:
    step = minimal(block, task_type=task)
    del step["prompt"]
    refused(step, f"field '{STEP}.{field}' is required for task_type '{re.escape(task)}'")


@BOTH
def test_a_selector_counts_as_given_and_ocr_needs_nothing(block: str) -> None:
    params = compile_step({"type": block, "task_type": "object-detection", "api_key": KEYS[block],
                           "classes": "$inputs.classes"}, classes=["cat", "dog"])
    assert (params["task_type"], params["classes"]) == ("object-detection", ["cat", "dog"])
    assert compile_step({"type": block, "task_type": "ocr", "api_key": KEYS[block]})["prompt"] is None


@pytest.mark.parametrize(("step", "match"), [
    (minimal(META, model_version="Muse Spark 2"), r"'Muse Spark 2' is not one of 'Muse Spark 1.1'"),
    (minimal(META, model_version="meta/muse-spark-1.2"), r"'meta/muse-spark-1.2' is not one of"),
    (minimal(META, reasoning_effort="none"), rf"'{STEP}.reasoning_effort'.*'none' is not one of 'low', 'medium'"),
    (minimal(META, reasoning_effort="$inputs.effort"), rf"'{STEP}.reasoning_effort'"),  # no selector
    (minimal(META, max_tokens=1), rf"'{STEP}.max_tokens'.*an integer greater than 1"),
    (minimal(META, max_tokens="$inputs.tokens"), rf"'{STEP}.max_tokens'"),
    (minimal(META, temperature=2.5), rf"'{STEP}.temperature'.*a number from 0.0 to 2.0"),
    (minimal(META, privacy_level="none"), rf"'{STEP}.privacy_level'.*'none' is not one of 'allow', 'deny', 'zdr'"),
    (minimal(XAI, model_version="grok-4"), r"'grok-4' is not one of 'grok-4.6', 'grok-4.5'"),
    (minimal(XAI, model_version=123), rf"'{STEP}.model_version'"),
    (minimal(XAI, reasoning_effort="medium"), rf"'{STEP}.reasoning_effort'.*'medium' is not one of 'low', 'high'"),
    (minimal(XAI, max_tokens=15), rf"'{STEP}.max_tokens'.*an integer >= 16 or null"),
    (minimal(XAI, temperature=-0.1), rf"'{STEP}.temperature'.*a number from 0.0 to 2.0"),
    (minimal(XAI, task_type="structured-answering", output_structure={"n": 3}),
     r"an object of field names to descriptions \(strings\) or null"),
    (minimal(XAI, task_type="segmentation"), rf"'{STEP}.task_type'.*'segmentation' is not one of"),
])
def test_bad_literals_are_refused_with_their_path(step: dict[str, Any], match: str) -> None:
    refused(step, match)


def test_what_the_manifests_accept() -> None:
    nulls = compile_step(minimal(META, max_tokens=None, reasoning_effort=None))  # null: the default, as absent
    assert (nulls["max_tokens"], nulls["reasoning_effort"]) == (2048, "low")
    assert compile_step(minimal(META, max_tokens=2, temperature=2.0, reasoning_effort="high",
                                privacy_level="zdr"))["max_tokens"] == 2
    assert compile_step(minimal(XAI, max_tokens=16, temperature=0.0))["max_tokens"] == 16
    params = compile_step(minimal(XAI, reasoning_effort="$inputs.effort", model_version="$inputs.grok"),
                          effort="high", grok="grok-4.5")
    assert (params["reasoning_effort"], params["model_version"]) == ("high", "grok-4.5")
    with pytest.raises(InvalidPayloadError, match=r"'grok-3' is not one of"):
        compile_step(minimal(XAI, model_version="$inputs.grok"), grok="grok-3")
    with pytest.raises(InvalidPayloadError, match=r"'Muse' is not one of"):
        compile_step(minimal(META, model_version="$inputs.muse"), muse="Muse")


def test_spacexai_requires_a_key_of_the_user_s_own() -> None:
    refused({"type": XAI, "prompt": "hi"}, rf"'{STEP}.api_key'")


def test_meta_s_default_key_is_roboflow_s_proxy_and_is_refused_naming_the_field() -> None:
    step = minimal(META)
    del step["api_key"]
    refused(step, rf"field '{STEP}.api_key': an api_key of the form 'rf_key:...' asks for Roboflow's API proxy, "
                  r"which this manager does not have; give your own OpenRouter API key")


@BOTH
@pytest.mark.parametrize("key", ["rf_key:account", "rf_key:user:42"])
def test_a_roboflow_proxy_key_is_refused(block: str, key: str) -> None:
    refused(minimal(block, api_key=key), rf"field '{STEP}.api_key': .*Roboflow's API proxy.*; give your own "
                                         rf"{PROVIDERS[block]} API key")
    refused(minimal(block, api_key="$inputs.key"), rf"field '{STEP}.api_key': .*Roboflow's API proxy", key=key)


@BOTH
def test_a_secret_feeds_the_key(block: str) -> None:
    definition = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
                   "variables_storing_secrets": ["VLM_KEY"]},
                  {**minimal(block, api_key="$steps.vault.vlm_key"), "name": "llm", "images": "$inputs.image"}],
        "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.llm.output"}],
    }
    assert compile_workflow(definition).step("llm").params["api_key"] == "$steps.vault.vlm_key"


def test_meta_s_thinking_output_may_be_selected() -> None:
    definition = definition_of({**minimal(META), "name": "muse", "images": "$inputs.image"})
    definition["outputs"].append({"type": "JsonField", "name": "thinking", "selector": "$steps.muse.thinking"})
    assert compile_workflow(definition).step("muse").type == META
    definition = definition_of({**minimal(XAI), "name": "grok", "images": "$inputs.image"})
    definition["outputs"].append({"type": "JsonField", "name": "thinking", "selector": "$steps.grok.thinking"})
    with pytest.raises(InvalidPayloadError, match="thinking"):
        compile_workflow(definition)


# The reference's integration test of meta_vlm@v1
# (roboflow/inference/tests/workflows/integration_tests/execution/test_workflow_with_meta_vlm_v1.py), as written
# there: its runtime parameters become INIT's workflows_parameters here.
REFERENCE_MUSE_DETECTION_WORKFLOW = {
    "version": "1.0",
    "inputs": [
        {"type": "WorkflowImage", "name": "image"},
        {"type": "WorkflowParameter", "name": "api_key"},
        {"type": "WorkflowParameter", "name": "classes"},
    ],
    "steps": [
        {
            "type": "roboflow_core/meta_vlm@v1",
            "name": "muse",
            "images": "$inputs.image",
            "model_version": "Muse Spark 1.2",
            "task_type": "object-detection",
            "classes": "$inputs.classes",
            "api_key": "$inputs.api_key",
        },
        {
            "type": "roboflow_core/vlm_as_detector@v2",
            "name": "parser",
            "vlm_output": "$steps.muse.output",
            "image": "$inputs.image",
            "classes": "$steps.muse.classes",
            "model_type": "muse",
            "task_type": "object-detection",
        },
    ],
    "outputs": [
        {
            "type": "JsonField",
            "name": "muse_result",
            "selector": "$steps.muse.output",
        },
        {
            "type": "JsonField",
            "name": "parsed_prediction",
            "selector": "$steps.parser.predictions",
        },
    ],
}


def test_the_reference_s_muse_detection_workflow_compiles_as_written() -> None:
    plan = compile_workflow(REFERENCE_MUSE_DETECTION_WORKFLOW,
                            parameters={"api_key": "sk-or-v1-x", "classes": ["cat", "dog"]})
    muse, parser = plan.step("muse"), plan.step("parser")
    assert (muse.type, parser.type) == (META, "roboflow_core/vlm_as_detector@v2")
    assert {name: muse.params[name] for name in ("model_version", "task_type", "classes", "api_key",
                                                 "reasoning_effort", "max_tokens", "privacy_level")} == {
        "model_version": "Muse Spark 1.2", "task_type": "object-detection", "classes": ["cat", "dog"],
        "api_key": "sk-or-v1-x", "reasoning_effort": "low", "max_tokens": 2048, "privacy_level": "deny"}
    assert (parser.params["model_type"], parser.params["task_type"]) == ("muse", "object-detection")
    with pytest.raises(InvalidPayloadError, match=r"steps\[0\]\.api_key': .*Roboflow's API proxy"):
        compile_workflow(REFERENCE_MUSE_DETECTION_WORKFLOW,
                         parameters={"api_key": "rf_key:account", "classes": ["cat", "dog"]})


# The step definitions of the reference's manifest tests, as written there
# (roboflow/inference/tests/workflows/unit_tests/core_steps/models/foundation/test_meta_vlm_v1.py and
# test_spacexai.py in the same folder), each with what the reference's manifest says of it. meta_vlm's there takes
# the default key, Roboflow's proxy: valid in the reference, refused here naming api_key.
MUSE_MANIFEST_STEP = {"type": "roboflow_core/meta_vlm@v1", "name": "muse", "images": "$inputs.image",
                      "task_type": "caption"}


def xai_manifest_step(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/spacexai@v1", "name": "step_1", "images": "$inputs.image", **fields}


def test_the_reference_s_meta_manifest_step_is_refused_only_for_its_proxy_key() -> None:
    refused(MUSE_MANIFEST_STEP, rf"field '{STEP}.api_key': an api_key of the form 'rf_key:...'")
    params = compile_step({**MUSE_MANIFEST_STEP, "api_key": "sk-or-v1-x"})
    assert (params["model_version"], params["max_tokens"], params["temperature"], params["reasoning_effort"],
            params["privacy_level"]) == ("Muse Spark 1.2", 2048, None, "low", "deny")


@pytest.mark.parametrize(("step", "parameters", "expected"), [
    (xai_manifest_step(task_type="unconstrained", prompt="$inputs.prompt", api_key="$inputs.xai_api_key"),
     {"prompt": "Describe", "xai_api_key": "xai-k"}, {"task_type": "unconstrained", "prompt": "Describe"}),
    (xai_manifest_step(task_type="caption", api_key="xxx-xxx", model_version="grok-4.5"), {},
     {"model_version": "grok-4.5"}),
    (xai_manifest_step(task_type="caption", api_key="xxx-xxx", model_version="grok-4.6"), {},
     {"model_version": "grok-4.6"}),
    (xai_manifest_step(task_type="caption", api_key="xxx-xxx", model_version="$inputs.model"),
     {"model": "grok-4.5"}, {"model_version": "grok-4.5"}),
], ids=["valid", "grok-4.5", "grok-4.6", "model-selector"])
def test_the_reference_s_valid_spacexai_manifest_steps_compile(step: dict[str, Any], parameters: dict[str, Any],
                                                               expected: dict[str, Any]) -> None:
    params = compile_step(step, **parameters)
    assert {name: params[name] for name in expected} == expected


@pytest.mark.parametrize(("step", "match"), [
    (xai_manifest_step(task_type="caption"), rf"'{STEP}.api_key'"),
    (xai_manifest_step(task_type="caption", api_key="xxx-xxx", model_version="invalid-model"),
     r"'invalid-model' is not one of"),
    (xai_manifest_step(task_type="caption", api_key="xxx-xxx", model_version=123), rf"'{STEP}.model_version'"),
    (xai_manifest_step(task_type="unconstrained", api_key="xxx-xxx"), rf"'{STEP}.prompt' is required"),
    (xai_manifest_step(task_type="object-detection", api_key="xxx-xxx"), rf"'{STEP}.classes' is required"),
], ids=["no-key", "invalid-model", "model-123", "no-prompt", "no-classes"])
def test_the_reference_s_invalid_spacexai_manifest_steps_are_refused(step: dict[str, Any], match: str) -> None:
    refused(step, match)
