"""anthropic_claude@v3, google_gemini@v3 and google_gemini@v4 at INIT: names, fields, defaults and choices as the
reference's manifests, what each task type requires, the reference's bounds, Roboflow's proxy (their default
``api_key``) refused with its JSON path, and the reference's definitions compiled as written: verbatim in
definitions/claude_gemini_current/ (``OBJECT_DETECTION_WORKFLOW_GEMINI_V4`` of
roboflow/inference/tests/workflows/integration_tests/execution/test_workflow_with_gemini_models.py, and
roboflow/inference/docs/static/lpr-workflow.json), and the steps of the reference's manifest tests
(roboflow/inference/tests/workflows/unit_tests/core_steps/dependent_resources/test_anthropic_claude.py and
test_google_gemini.py there)."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow
from tests.core.workflows.test_llm_catalogue import compile_step

STEP = re.escape("workflow.steps[0]")
CLAUDE_V3 = "roboflow_core/anthropic_claude@v3"
GEMINI_V3 = "roboflow_core/google_gemini@v3"
GEMINI_V4 = "roboflow_core/google_gemini@v4"
ALL = (CLAUDE_V3, GEMINI_V3, GEMINI_V4)
PROVIDER = {CLAUDE_V3: "Anthropic", GEMINI_V3: "Google Gemini", GEMINI_V4: "Google Gemini"}
NINE_TASKS = ("unconstrained", "ocr", "structured-answering", "classification", "multi-label-classification",
              "visual-question-answering", "caption", "detailed-caption", "object-detection")
# The reference's manifests' model ids, in their order.
CLAUDE_MODELS = ("claude-fable-5", "claude-opus-4-7", "claude-opus-4-6", "claude-sonnet-4-6", "claude-sonnet-4-5",
                 "claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4", "claude-opus-4-1", "claude-opus-4")
GEMINI_MODELS = ("gemini-3.7-flash", "gemini-3.6-flash", "gemini-3.5-flash", "gemini-3.5-flash-lite",
                 "gemini-3.1-pro-preview", "gemini-3.1-flash-lite", "gemini-3-flash-preview", "gemini-2.5-pro",
                 "gemini-2.5-flash", "gemini-2.5-flash-lite")
GEMINI_ALIASES = ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro-preview-05-06", "gemini-2.5-pro-preview-03-25")
# What each task type needs (the manifests' validators).
REQUIRED = {"unconstrained": "prompt", "visual-question-answering": "prompt", "classification": "classes",
            "multi-label-classification": "classes", "object-detection": "classes",
            "structured-answering": "output_structure"}
DEFINITIONS = Path(__file__).parent / "definitions" / "claude_gemini_current"
OWN_KEY = "sk-own-key"


def refused(step: dict[str, Any], match: str, **parameters: Any) -> None:
    with pytest.raises(InvalidPayloadError, match=match):
        compile_step(step, **parameters)


def proxy_refusal(path: str, provider: str) -> str:
    return (rf"^field '{path}\.api_key': an api_key of the form 'rf_key:\.\.\.' asks for Roboflow's API proxy, "
            rf"which this manager does not have; give your own {provider} API key")


# ----------------------------------------------------------------------------- the manifests


def test_the_blocks_are_named_as_the_manifests_with_their_fields_and_outputs() -> None:
    common = ["images", "task_type", "prompt", "output_structure", "classes", "api_key", "model_version"]
    expected = {
        CLAUDE_V3: [*common, "extended_thinking", "thinking_budget_tokens", "max_tokens", "temperature",
                    "max_image_size", "max_concurrent_requests"],
        GEMINI_V3: [*common, "thinking_level", "temperature", "max_tokens", "google_code_execution",
                    "max_concurrent_requests"],
    }
    expected[GEMINI_V4] = expected[GEMINI_V3]
    for block in ALL:
        spec = CATALOGUE[block]
        assert (spec.name, spec.family) == (block, "llm")
        assert [field.name for field in spec.fields] == expected[block]
        assert spec.outputs == {"output": (kinds.STRING, kinds.LANGUAGE_MODEL_OUTPUT),
                                "classes": (kinds.LIST_OF_VALUES,)}
        key = spec.field("api_key")
        assert key is not None and key.default == "rf_key:account" and key.kinds == (kinds.STRING, kinds.SECRET)


def test_defaults_follow_the_manifests() -> None:
    claude = compile_step({"type": CLAUDE_V3, "prompt": "hi", "api_key": OWN_KEY})
    assert {name: claude[name] for name in ("task_type", "model_version", "extended_thinking",
                                            "thinking_budget_tokens", "max_tokens", "temperature", "max_image_size",
                                            "max_concurrent_requests", "output_structure", "classes")} == {
        "task_type": "unconstrained", "model_version": "claude-sonnet-4-5", "extended_thinking": None,
        "thinking_budget_tokens": None, "max_tokens": None, "temperature": None, "max_image_size": 1024,
        "max_concurrent_requests": None, "output_structure": None, "classes": None}
    for block in (GEMINI_V3, GEMINI_V4):
        gemini = compile_step({"type": block, "prompt": "hi", "api_key": OWN_KEY})
        assert {name: gemini[name] for name in ("task_type", "model_version", "thinking_level", "temperature",
                                                "max_tokens", "google_code_execution", "max_concurrent_requests")} \
            == {"task_type": "unconstrained", "model_version": "gemini-3.1-pro-preview", "thinking_level": None,
                "temperature": None, "max_tokens": None, "google_code_execution": False,
                "max_concurrent_requests": None}


def test_choices_follow_the_manifests() -> None:
    def choices(block: str, name: str) -> tuple[Any, ...]:
        field = CATALOGUE[block].field(name)
        assert field is not None
        return field.choices

    assert choices(CLAUDE_V3, "model_version") == CLAUDE_MODELS
    for block in ALL:
        assert choices(block, "task_type") == NINE_TASKS
    for block in (GEMINI_V3, GEMINI_V4):
        assert choices(block, "model_version") == (*GEMINI_MODELS, *GEMINI_ALIASES)
        assert choices(block, "thinking_level") == ("low", "high")


@pytest.mark.parametrize("block", ALL)
@pytest.mark.parametrize("task", list(REQUIRED))
def test_each_task_type_requires_its_field(block: str, task: str) -> None:
    refused({"type": block, "task_type": task, "api_key": OWN_KEY},
            f"field '{STEP}.{REQUIRED[task]}' is required for task_type '{re.escape(task)}'")


@pytest.mark.parametrize("block", ALL)
def test_ocr_and_captions_need_nothing_but_a_key(block: str) -> None:
    for task in ("ocr", "caption", "detailed-caption"):
        assert compile_step({"type": block, "task_type": task, "api_key": OWN_KEY})["task_type"] == task


@pytest.mark.parametrize(("step", "match"), [
    ({"type": CLAUDE_V3, "temperature": 1.5}, r"from 0.0 to 1.0 or null"),
    ({"type": CLAUDE_V3, "model_version": "claude-3-haiku"}, r"'claude-3-haiku' is not one of"),
    ({"type": CLAUDE_V3, "thinking_budget_tokens": 1000}, r"an integer >= 1024 or null"),
    ({"type": CLAUDE_V3, "max_tokens": 0}, r"a positive integer or null"),
    ({"type": CLAUDE_V3, "extended_thinking": True, "temperature": 0.5},
     rf"field '{STEP}.temperature' cannot be used when extended_thinking is enabled"),
    ({"type": CLAUDE_V3, "extended_thinking": True, "thinking_budget_tokens": 4096, "max_tokens": 4096},
     rf"field '{STEP}.thinking_budget_tokens': 4096 must be less than max_tokens \(4096\)"),
    ({"type": GEMINI_V3, "thinking_level": "medium"}, r"'medium' is not one of 'low', 'high'"),
    ({"type": GEMINI_V4, "model_version": "gemini-3-pro-preview"}, r"'gemini-3-pro-preview' is not one of"),
    ({"type": GEMINI_V4, "temperature": 2.5}, r"a number from 0.0 to 2.0 or null"),
    ({"type": GEMINI_V3, "google_code_execution": "yes"}, rf"'{STEP}.google_code_execution'.*true, false or null"),
    ({"type": GEMINI_V4, "max_tokens": -5}, r"a positive integer or null"),
])
def test_literals_are_checked_with_their_path(step: dict[str, Any], match: str) -> None:
    refused({"prompt": "p", "api_key": OWN_KEY, **step}, match)


def test_thinking_without_temperature_and_a_budget_under_max_tokens_compile() -> None:
    claude = compile_step({"type": CLAUDE_V3, "prompt": "p", "api_key": OWN_KEY, "extended_thinking": True,
                           "thinking_budget_tokens": 2048, "max_tokens": 4096})
    assert (claude["extended_thinking"], claude["thinking_budget_tokens"]) == (True, 2048)
    gemini = compile_step({"type": GEMINI_V4, "prompt": "p", "api_key": OWN_KEY, "model_version": "gemini-3.7-flash",
                           "thinking_level": "low", "google_code_execution": "$inputs.run_code"}, run_code=True)
    assert (gemini["model_version"], gemini["thinking_level"], gemini["google_code_execution"]) == (
        "gemini-3.7-flash", "low", True)


# ----------------------------------------------------------------------------- Roboflow's proxy


@pytest.mark.parametrize("block", ALL)
def test_the_default_key_is_roboflow_s_proxy_and_is_refused_naming_the_field(block: str) -> None:
    refused({"type": block, "prompt": "p"}, proxy_refusal(STEP, PROVIDER[block]))
    refused({"type": block, "prompt": "p", "api_key": "rf_key:user:42"}, proxy_refusal(STEP, PROVIDER[block]))
    refused({"type": block, "prompt": "p", "api_key": "$inputs.key"}, proxy_refusal(STEP, PROVIDER[block]),
            key="rf_key:account")
    assert compile_step({"type": block, "prompt": "p", "api_key": "$inputs.key"}, key=OWN_KEY)["api_key"] == OWN_KEY


@pytest.mark.parametrize("block", ALL)
def test_a_key_from_environment_secrets_store_is_accepted(block: str) -> None:
    definition = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
                   "variables_storing_secrets": ["PROVIDER_KEY"]},
                  {"type": block, "name": "llm", "images": "$inputs.image", "task_type": "structured-answering",
                   "output_structure": {"count": "how many people"}, "api_key": "$steps.vault.provider_key"},
                  {"type": "roboflow_core/json_parser@v1", "name": "parse", "raw_json": "$steps.llm.output",
                   "expected_fields": ["count"]}],
        "outputs": [{"type": "JsonField", "name": "count", "selector": "$steps.parse.count"}],
    }
    assert compile_workflow(definition).step("llm").params["api_key"] == "$steps.vault.provider_key"


# ----------------------------------------------------------------------------- the reference's definitions


def test_the_reference_s_gemini_v4_detection_definition_compiles_with_an_own_key_and_not_with_the_proxy() -> None:
    written = json.loads((DEFINITIONS / "object_detection_workflow_gemini_v4.json").read_text())
    compiled = compile_workflow(written, parameters={"api_key": OWN_KEY, "classes": ["cat", "dog"]})
    assert compiled.step("gemini").type == GEMINI_V4
    gemini = compiled.step("gemini").params
    assert (gemini["task_type"], gemini["classes"], gemini["api_key"]) == ("object-detection", ["cat", "dog"],
                                                                         OWN_KEY)
    assert compiled.step("parser").params["model_type"] == "google-gemini"
    with pytest.raises(InvalidPayloadError, match=proxy_refusal(re.escape("workflow.steps[0]"), "Google Gemini")):
        compile_workflow(written, parameters={"api_key": "rf_key:account", "classes": ["cat", "dog"]})


def test_the_reference_s_lpr_workflow_is_refused_for_the_proxy_default_only() -> None:
    written = json.loads((DEFINITIONS / "lpr-workflow.json").read_text())
    [index] = [i for i, step in enumerate(written["steps"]) if step["type"] == GEMINI_V3]
    assert "api_key" not in written["steps"][index], "it relies on the proxy's default key"
    with pytest.raises(InvalidPayloadError, match=proxy_refusal(re.escape(f"workflow.steps[{index}]"),
                                                                "Google Gemini")):
        compile_workflow(written)

    own = copy.deepcopy(written)
    own["steps"][index]["api_key"] = OWN_KEY
    gemini = compile_workflow(own).step("google_gemini").params
    assert {name: gemini[name] for name in written["steps"][index] if name not in ("type", "name")} == {
        name: value for name, value in written["steps"][index].items() if name not in ("type", "name")}
    assert (gemini["google_code_execution"], gemini["max_tokens"]) == (False, None)


@pytest.mark.parametrize(("block", "model_version", "expected"), [
    (CLAUDE_V3, None, "claude-sonnet-4-5"),
    (CLAUDE_V3, "claude-haiku-4-5", "claude-haiku-4-5"),
    (CLAUDE_V3, "$inputs.model", "claude-opus-4-7"),
    (GEMINI_V3, None, "gemini-3.1-pro-preview"),
    (GEMINI_V3, "gemini-3.6-flash", "gemini-3.6-flash"),
    (GEMINI_V3, "$inputs.model", "gemini-2.5-flash"),
])
def test_the_reference_s_manifest_test_steps_need_an_own_key(block: str, model_version: str | None,
                                                             expected: str) -> None:
    step: dict[str, Any] = {"type": block, "prompt": "What is in the image?"}
    if model_version is not None:
        step["model_version"] = model_version
    parameters = {"model": expected} if model_version == "$inputs.model" else {}
    refused(step, proxy_refusal(STEP, PROVIDER[block]), **parameters)
    assert compile_step({**step, "api_key": OWN_KEY}, **parameters)["model_version"] == expected
