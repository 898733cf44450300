"""The hosted LLM blocks' manifests at INIT: defaults, choices, what each task type requires, the reference's bounds,
and Roboflow's proxy keys refused with their JSON path."""

import re
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.compiler import compile_workflow

STEP = re.escape("workflow.steps[0]")


def compile_step(step: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    inputs = [{"type": "WorkflowImage", "name": "image"},
              *({"type": "WorkflowParameter", "name": name} for name in parameters)]
    definition = {"version": "1.0", "inputs": inputs, "steps": [{"name": "llm", "images": "$inputs.image", **step}],
                  "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.llm.output"},
                              {"type": "JsonField", "name": "classes", "selector": "$steps.llm.classes"}]}
    return dict(compile_workflow(definition, parameters=parameters).step("llm").params)


def refused(step: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidPayloadError, match=match):
        compile_step(step)


def test_defaults_follow_the_manifests() -> None:
    openai = compile_step({"type": "roboflow_core/open_ai@v2", "prompt": "hi", "api_key": "sk-1"})
    assert {k: openai[k] for k in ("task_type", "model_version", "image_detail", "max_tokens", "temperature")} == {
        "task_type": "unconstrained", "model_version": "gpt-4o", "image_detail": "auto", "max_tokens": 450,
        "temperature": None}
    assert compile_step({"type": "roboflow_core/open_ai@v3", "prompt": "hi", "api_key": "sk-1"})["model_version"] == \
        "gpt-5"
    claude = compile_step({"type": "roboflow_core/anthropic_claude@v1", "prompt": "hi", "api_key": "k"})
    assert (claude["model_version"], claude["max_tokens"], claude["max_image_size"]) == ("claude-sonnet-4-5", 450, 1024)
    claude2 = compile_step({"type": "roboflow_core/anthropic_claude@v2", "prompt": "hi", "api_key": "k"})
    assert (claude2["max_tokens"], claude2["extended_thinking"], claude2["thinking_budget_tokens"]) == (None,) * 3
    assert compile_step({"type": "roboflow_core/google_gemini@v1", "prompt": "hi", "api_key": "k"})[
        "model_version"] == "gemini-2.5-flash"
    gemini2 = compile_step({"type": "roboflow_core/google_gemini@v2", "prompt": "hi", "api_key": "k"})
    assert (gemini2["model_version"], gemini2["max_tokens"], gemini2["thinking_level"]) == (
        "gemini-3.1-pro-preview", None, None)


@pytest.mark.parametrize(("block", "task", "field"), [
    ("roboflow_core/open_ai@v2", "unconstrained", "prompt"),
    ("roboflow_core/open_ai@v3", "visual-question-answering", "prompt"),
    ("roboflow_core/anthropic_claude@v1", "classification", "classes"),
    ("roboflow_core/anthropic_claude@v2", "object-detection", "classes"),
    ("roboflow_core/google_gemini@v1", "multi-label-classification", "classes"),
    ("roboflow_core/google_gemini@v2", "structured-answering", "output_structure"),
])
def test_each_task_type_requires_its_field(block: str, task: str, field: str) -> None:
    refused({"type": block, "task_type": task, "api_key": "k"},
            f"field '{STEP}.{field}' is required for task_type '{re.escape(task)}'")


def test_a_selector_counts_as_given_and_ocr_needs_nothing() -> None:
    params = compile_step({"type": "roboflow_core/open_ai@v2", "task_type": "classification", "api_key": "k",
                           "classes": "$inputs.classes"}, classes=["a", "b"])
    assert params["classes"] == ["a", "b"]
    ocr = compile_step({"type": "roboflow_core/google_gemini@v1", "task_type": "ocr", "api_key": "k"})
    assert ocr["prompt"] is None


@pytest.mark.parametrize(("step", "match"), [
    ({"type": "roboflow_core/open_ai@v2", "task_type": "object-detection", "classes": ["a"]},
     r"'object-detection' is not one of 'unconstrained'"),
    ({"type": "roboflow_core/open_ai@v2", "prompt": "p", "model_version": "o3"}, r"'o3' is not one of"),
    ({"type": "roboflow_core/open_ai@v2", "prompt": "p", "image_detail": "max"}, r"'max' is not one of 'auto'"),
    ({"type": "roboflow_core/open_ai@v2", "prompt": "p", "temperature": 2.5}, r"a number from 0.0 to 2.0 or null"),
    ({"type": "roboflow_core/anthropic_claude@v2", "prompt": "p", "temperature": 1.5}, r"from 0.0 to 1.0 or null"),
    ({"type": "roboflow_core/anthropic_claude@v2", "prompt": "p", "model_version": "claude-3-haiku"},
     r"'claude-3-haiku' is not one of"),
    ({"type": "roboflow_core/anthropic_claude@v2", "prompt": "p", "thinking_budget_tokens": 100},
     r"an integer >= 1024 or null"),
    ({"type": "roboflow_core/anthropic_claude@v2", "prompt": "p", "extended_thinking": True, "temperature": 0.5},
     rf"field '{STEP}.temperature' cannot be used when extended_thinking is enabled"),
    ({"type": "roboflow_core/anthropic_claude@v2", "prompt": "p", "extended_thinking": True,
      "thinking_budget_tokens": 2048, "max_tokens": 2048}, r"2048 must be less than max_tokens \(2048\)"),
    ({"type": "roboflow_core/google_gemini@v2", "prompt": "p", "thinking_level": "medium"}, r"'medium' is not one"),
    ({"type": "roboflow_core/google_gemini@v1", "task_type": "structured-answering", "output_structure": {"a": 1}},
     r"an object of field names to descriptions \(strings\) or null"),
    ({"type": "roboflow_core/open_ai@v2", "prompt": "p", "max_tokens": 0}, r"a positive integer"),
])
def test_literals_are_checked_with_their_path(step: dict[str, Any], match: str) -> None:
    refused({"api_key": "k", **step}, match)


@pytest.mark.parametrize("block", ["roboflow_core/open_ai@v2", "roboflow_core/anthropic_claude@v1",
                                   "roboflow_core/google_gemini@v2"])
def test_a_roboflow_proxy_key_is_refused(block: str) -> None:
    refused({"type": block, "prompt": "p", "api_key": "rf_key:account"},
            rf"field '{STEP}.api_key': an api_key of the form 'rf_key:...' asks for Roboflow's API proxy")


def test_open_ai_v3_needs_a_key_because_its_default_is_the_proxy() -> None:
    refused({"type": "roboflow_core/open_ai@v3", "prompt": "p"}, rf"field '{STEP}.api_key': .*give your own OpenAI")


def test_a_key_from_a_parameter_is_checked_too_and_a_step_s_secret_is_accepted() -> None:
    with pytest.raises(InvalidPayloadError, match="Roboflow's API proxy"):
        compile_step({"type": "roboflow_core/open_ai@v2", "prompt": "p", "api_key": "$inputs.key"},
                     key="rf_key:user:7")
    definition = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
                   "variables_storing_secrets": ["OPENAI_KEY"]},
                  {"type": "roboflow_core/open_ai@v2", "name": "llm", "images": "$inputs.image", "prompt": "p",
                   "api_key": "$steps.vault.openai_key"},
                  {"type": "roboflow_core/json_parser@v1", "name": "parse", "raw_json": "$steps.llm.output",
                   "expected_fields": ["count"]}],
        "outputs": [{"type": "JsonField", "name": "count", "selector": "$steps.parse.count"}],
    }
    assert compile_workflow(definition).step("llm").params["api_key"] == "$steps.vault.openai_key"
