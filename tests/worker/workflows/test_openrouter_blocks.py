"""The OpenRouter blocks (llama_3_2_vision@v1, llama_vision@v2, openrouter@v1, kimi_openrouter v1/v2,
qwen3_5/qwen3_6_openrouter@v1) against a fake OpenRouter on 127.0.0.1: the chat completions request each task type
sends (the reference's prompt texts, word for word), each manifest name's OpenRouter slug, the privacy level's
provider preferences, the key in the Authorization header only, and every failure as a step error naming
OpenRouter and the status with the provider's own words, never the key."""

import base64
import json
import logging
import re
from typing import Any

import cv2
import pytest

from services.core.networks import DestinationRefusedError, NetworkPolicy
from services.worker.settings import WorkerSettings
from services.worker.workflows.blocks.base import BlockEnvironment, SinkSettings
from services.worker.workflows.blocks.llm.client import ProviderError
from services.worker.workflows.values import WorkflowImage
from tests.support.llm_providers import FakeLlmApis
from tests.worker.workflows.hosted_support import TASK_FIELDS, build_step, make_env, orange_block_frame

KEY = "sk-or-v1-test-0123456789abcdef-secret"
LLAMA_V1 = "roboflow_core/llama_3_2_vision@v1"
LLAMA_V2 = "roboflow_core/llama_vision@v2"
OPENROUTER = "roboflow_core/openrouter@v1"
KIMI_V1 = "roboflow_core/kimi_openrouter@v1"
KIMI_V2 = "roboflow_core/kimi_openrouter@v2"
QWEN35 = "roboflow_core/qwen3_5_openrouter@v1"
QWEN36 = "roboflow_core/qwen3_6_openrouter@v1"
ALL = (LLAMA_V1, LLAMA_V2, OPENROUTER, KIMI_V1, KIMI_V2, QWEN35, QWEN36)
SECOND_GENERATION = (LLAMA_V2, OPENROUTER, KIMI_V2)

# The reference's prompts (inference/core/workflows/core_steps/common/openrouter.py and the first generation's own
# copies): system instruction, and the text sent before the image (None: the image alone).
NO_DISCUSSION = " You cannot discuss the result, you are only allowed to return JSON document."
CLASSES_TEXT = "List of all classes to be recognised by model: cat, dog"
REFERENCE_PROMPTS: dict[str, tuple[str | None, str | None]] = {
    "unconstrained": (None, "How many people?"),
    "ocr": ("You act as OCR model. Your task is to read text from the image and return it in paragraphs representing "
            "the structure of texts in the image. You should only return recognised text, nothing else.", None),
    "visual-question-answering": (
        "You act as Visual Question Answering model. Your task is to provide answer to question submitted by user. "
        "If this is open-question - answer with few sentences, for ABCD question, return only the indicator of the "
        "answer.", "Question: How many people?"),
    "caption": ("You act as image caption model. Your task is to provide description of the image. Caption should be "
                "short.", None),
    "detailed-caption": ("You act as image caption model. Your task is to provide description of the image. Caption "
                         "should be extensive.", None),
    "classification": (
        "You act as single-class classification model. You must provide reasonable predictions. You are only allowed "
        "to produce JSON document in Markdown ```json [...]``` markers. Expected structure of json: {\"class_name\": "
        "\"class-name\", \"confidence\": 0.4}. `class-name` must be one of the class names defined by user. You are "
        "only allowed to return single JSON document, even if there are potentially multiple classes. You are not "
        "allowed to return list." + NO_DISCUSSION, CLASSES_TEXT),
    "multi-label-classification": (
        "You act as multi-label classification model. You must provide reasonable predictions. You are only allowed "
        "to produce JSON document in Markdown ```json``` markers. Expected structure of json: {\"predicted_classes\": "
        "[{\"class\": \"class-name-1\", \"confidence\": 0.9}, {\"class\": \"class-name-2\", \"confidence\": 0.7}]}. "
        "`class-name-X` must be one of the class names defined by user and `confidence` is a float value in range "
        "0.0-1.0 that represent how sure you are that the class is present in the image. Only return class names "
        "that are visible." + NO_DISCUSSION, CLASSES_TEXT),
    "structured-answering": (
        "You are supposed to produce responses in JSON wrapped in Markdown markers: ```json\nyour-response\n```. User "
        "is to provide you dictionary with keys and values. Each key must be present in your response. Values in user "
        "dictionary represent descriptions for JSON fields to be generated. Provide only JSON Markdown in response.",
        'Specification of requirements regarding output fields: \n{\n    "count": "how many people"\n}'),
    "object-detection": (
        "You act as object-detection model. You must provide reasonable predictions. You are only allowed to produce "
        "JSON document in Markdown ```json``` markers. Expected structure of json: {\"detections\": [{\"x_min\": 0.1, "
        "\"y_min\": 0.2, \"x_max\": 0.3, \"y_max\": 0.4, \"class_name\": \"my-class-X\", \"confidence\": 0.7}]}. "
        "`my-class-X` must be one of the class names defined by user. All coordinates must be in range 0.0-1.0, "
        "representing percentage of image dimensions. `confidence` is a value in range 0.0-1.0 representing your "
        "confidence in prediction. You should detect all instances of classes provided by user." + NO_DISCUSSION,
        CLASSES_TEXT),
}
# The first generation's copies keep a typo the shared prompts corrected.
FIRST_GENERATION_VQA = REFERENCE_PROMPTS["visual-question-answering"][0].replace(  # type: ignore[union-attr]
    "question submitted", "questionsubmitted")


@pytest.fixture
def env(apis: FakeLlmApis) -> BlockEnvironment:
    return make_env(apis)


@pytest.fixture
def frame() -> WorkflowImage:
    return orange_block_frame()


def build(step: dict[str, Any], env: BlockEnvironment, **parameters: Any) -> tuple[Any, dict[str, Any]]:
    return build_step({"images": "$inputs.image", **step}, env, **parameters)


def run(step: dict[str, Any], env: BlockEnvironment, frame: WorkflowImage, **values: Any) -> dict[str, Any]:
    if step["type"] == OPENROUTER:
        step = {"model_id": "qwen/qwen3.6-27b", **step}
    block, params = build({"api_key": KEY, **step}, env)
    result: dict[str, Any] = block.run(**{**params, "images": frame, **values})
    return result


def jpeg_of(frame: WorkflowImage) -> str:
    return base64.b64encode(cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()).decode()


def image_part(frame: WorkflowImage) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{jpeg_of(frame)}"}}


# ----------------------------------------------------------------------------- requests


def test_kimi_v2_classification_sends_openai_s_chat_with_the_bearer_key_and_no_data_collection(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.text["openrouter"] = '```json\n{"class_name": "cat", "confidence": 0.9}\n```'
    result = run({"type": KIMI_V2, "task_type": "classification", "classes": ["cat", "dog"]}, env, frame)

    assert result == {"output": apis.text["openrouter"], "classes": ["cat", "dog"]}
    [request] = apis.requests
    assert (request.provider, request.path) == ("openrouter", "/api/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "moonshotai/kimi-k2.6", "max_tokens": 500, "temperature": 0.1,
        "provider": {"data_collection": "deny"},
        "messages": [{"role": "system", "content": REFERENCE_PROMPTS["classification"][0]},
                     {"role": "user", "content": [{"type": "text", "text": CLASSES_TEXT}, image_part(frame)]}]}
    assert KEY not in request.body.decode(), "only in the header"
    assert KEY in env.secrets, "the executor redacts it from step errors"


@pytest.mark.parametrize("block", [LLAMA_V2, KIMI_V2, OPENROUTER, KIMI_V1, QWEN35, QWEN36])
@pytest.mark.parametrize("task", list(REFERENCE_PROMPTS))
def test_each_task_type_sends_the_reference_s_prompt(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                     block: str, task: str) -> None:
    run({"type": block, "task_type": task, **TASK_FIELDS.get(task, {})}, env, frame)

    system, text = REFERENCE_PROMPTS[task]
    if task == "visual-question-answering" and block not in SECOND_GENERATION:
        system = FIRST_GENERATION_VQA
    user = {"role": "user", "content": [*([{"type": "text", "text": text}] if text else []), image_part(frame)]}
    expected = [{"role": "system", "content": system}, user] if system else [user]
    assert apis.requests[0].json()["messages"] == expected


@pytest.mark.parametrize("task", [t for t in REFERENCE_PROMPTS if t != "object-detection"])
def test_llama_v1_sends_the_first_generation_s_prompts(apis: FakeLlmApis, env: BlockEnvironment,
                                                       frame: WorkflowImage, task: str) -> None:
    result = run({"type": LLAMA_V1, "task_type": task, **TASK_FIELDS.get(task, {})}, env, frame)

    assert result["output"] == "openrouter says hi"
    body = apis.requests[0].json()
    system = FIRST_GENERATION_VQA if task == "visual-question-answering" else REFERENCE_PROMPTS[task][0]
    assert (body["messages"][0]["content"] if system else None) == system
    assert body["messages"][-1]["content"][-1] == image_part(frame)
    assert "provider" not in body, "the first generation sends no provider preferences"


@pytest.mark.parametrize(("block", "name", "slug"), [
    (LLAMA_V1, "11B (Free) - OpenRouter", "meta-llama/llama-3.2-11b-vision-instruct:free"),
    (LLAMA_V1, "11B (Regular) - OpenRouter", "meta-llama/llama-3.2-11b-vision-instruct"),
    (LLAMA_V1, "90B (Free) - OpenRouter", "meta-llama/llama-3.2-90b-vision-instruct:free"),
    (LLAMA_V1, "90B (Regular) - OpenRouter", "meta-llama/llama-3.2-90b-vision-instruct"),
    (LLAMA_V2, "11B - OpenRouter", "meta-llama/llama-3.2-11b-vision-instruct"),
    (KIMI_V1, "Kimi K2.5 - OpenRouter", "moonshotai/kimi-k2.5"),
    (KIMI_V2, "Kimi K2.6 - OpenRouter", "moonshotai/kimi-k2.6"),
    (QWEN35, "Qwen 3.5 9B - OpenRouter", "qwen/qwen3.5-9b"),
    (QWEN35, "Qwen 3.5 Flash 02-23 - OpenRouter", "qwen/qwen3.5-flash-02-23"),
    (QWEN35, "Qwen 3.5 Plus 20260420 - OpenRouter", "qwen/qwen3.5-plus-20260420"),
    (QWEN36, "Qwen 3.6 35B A3B - OpenRouter", "qwen/qwen3.6-35b-a3b"),
    (QWEN36, "Qwen 3.6 Max Preview - OpenRouter", "qwen/qwen3.6-max-preview"),
])
def test_the_model_name_is_sent_as_openrouter_s_slug(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                      block: str, name: str, slug: str) -> None:
    run({"type": block, "task_type": "ocr", "model_version": name, "max_tokens": 64, "temperature": 0.7}, env, frame)

    body = apis.requests[0].json()
    assert (body["model"], body["max_tokens"], body["temperature"]) == (slug, 64, 0.7)


@pytest.mark.parametrize(("block", "level", "provider"), [
    (LLAMA_V2, "deny", {"data_collection": "deny"}),
    (KIMI_V2, "zdr", {"data_collection": "deny", "zdr": True}),
    (OPENROUTER, "allow", None),
    (OPENROUTER, "zdr", {"data_collection": "deny", "zdr": True}),
])
def test_the_privacy_level_becomes_openrouter_s_provider_preferences(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str, level: str,
        provider: dict[str, Any] | None) -> None:
    run({"type": block, "task_type": "caption", "privacy_level": level}, env, frame)

    assert apis.requests[0].json().get("provider") == provider


def test_openrouter_v1_sends_its_model_id_as_given(apis: FakeLlmApis, env: BlockEnvironment,
                                                   frame: WorkflowImage) -> None:
    block, params = build({"type": OPENROUTER, "model_id": "$inputs.slug", "api_key": KEY, "prompt": "Describe"},
                          env, slug="anthropic/claude-3.5-sonnet")
    block.run(**{**params, "images": frame})

    body = apis.requests[0].json()
    assert (body["model"], body["provider"]) == ("anthropic/claude-3.5-sonnet", {"data_collection": "deny"})
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Describe"},
                                                             image_part(frame)]}]


def test_a_key_from_a_parameter_is_a_secret_of_the_step(apis: FakeLlmApis, env: BlockEnvironment,
                                                        frame: WorkflowImage) -> None:
    block, params = build({"type": QWEN36, "task_type": "ocr", "api_key": "$inputs.openrouter_key"}, env,
                          openrouter_key=KEY)
    assert KEY in env.secrets, "registered as the step is built"
    block.run(**{**params, "images": frame})
    assert apis.wait_for(1)[0].headers["authorization"] == f"Bearer {KEY}"


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("block", [LLAMA_V1, KIMI_V2, OPENROUTER])
def test_a_refused_key_names_openrouter_and_the_status_never_the_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str,
        caplog: pytest.LogCaptureFixture) -> None:
    apis.status = 401
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as failure:
        run({"type": block, "task_type": "ocr"}, env, frame)

    assert str(failure.value) == "OpenRouter API answered HTTP 401 Unauthorized: Incorrect API key provided: ***"
    assert KEY not in caplog.text


@pytest.mark.parametrize(("status", "reason"), [(429, "Too Many Requests"), (502, "Bad Gateway")])
def test_an_upstream_provider_s_error_is_surfaced_in_its_own_words(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, status: int, reason: str) -> None:
    apis.status = status
    with pytest.raises(ProviderError) as failure:
        run({"type": QWEN35, "task_type": "ocr"}, env, frame)

    assert str(failure.value) == (f"OpenRouter API answered HTTP {status} {reason}: Provider returned error "
                                  f"(Alibaba says: upstream says {status} for key ***)")


def test_an_answer_with_an_error_and_no_choice_fails_the_step_with_openrouter_s_message(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.raw = json.dumps({"error": {"code": 502, "message": f"Upstream timed out for {KEY}"}}).encode()
    with pytest.raises(ProviderError, match=r"^OpenRouter API answered without a completion .*: Upstream timed out "
                                            r"for \*\*\*$"):
        run({"type": LLAMA_V1, "task_type": "ocr"}, env, frame)
    apis.raw = b'{"id": "gen-1", "choices": []}'
    with pytest.raises(ProviderError, match=r"^OpenRouter API answered without a completion \(.*\)$"):
        run({"type": KIMI_V1, "task_type": "ocr"}, env, frame)


@pytest.mark.parametrize(("finish", "hint"), [("length", True), ("stop", False)])
def test_an_answer_without_text_fails_the_step_with_the_reasoning_hint_when_cut(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, finish: str, hint: bool) -> None:
    message = {"role": "assistant", "content": None, "reasoning": "hmm"}
    apis.raw = json.dumps({"choices": [{"index": 0, "finish_reason": finish, "message": message}]}).encode()
    with pytest.raises(ProviderError) as failure:
        run({"type": QWEN36, "task_type": "caption", "max_tokens": 16}, env, frame)

    assert str(failure.value).startswith("OpenRouter API answered with no text")
    assert ("raise max_tokens" in str(failure.value)) is hint


def test_a_malformed_answer_and_a_timeout_are_step_errors(apis: FakeLlmApis, frame: WorkflowImage) -> None:
    env = make_env(apis, llm_api_timeout=0.3)
    apis.raw = b'{"choices": [ {"oops"'
    with pytest.raises(ProviderError, match=r"^OpenRouter API answered HTTP 200 with something other than JSON$"):
        run({"type": KIMI_V2, "task_type": "ocr"}, env, frame)
    apis.raw, apis.delay = None, 3.0
    with pytest.raises(ProviderError, match=r"^OpenRouter API did not answer within 0.3 s$"):
        run({"type": KIMI_V2, "task_type": "ocr"}, env, frame)


def test_openrouter_is_reached_only_at_the_operator_s_allowed_address(apis: FakeLlmApis,
                                                                      frame: WorkflowImage) -> None:
    only_elsewhere = NetworkPolicy.parse(("10.0.0.0/8",), "WORKER_WORKFLOW_ALLOWED_NETWORKS")
    with pytest.raises(DestinationRefusedError, match=re.escape("127.0.0.1")):
        run({"type": LLAMA_V2, "task_type": "ocr"}, make_env(apis, allowed_networks=only_elsewhere), frame)
    with pytest.raises(ValueError, match="is not among the hosts sinks may reach"):
        run({"type": LLAMA_V2, "task_type": "ocr"}, make_env(apis, allowed_hosts=("openrouter.ai",)), frame)
    assert SinkSettings().openrouter_api_url == "https://openrouter.ai/api/v1"
    assert apis.requests == []


@pytest.mark.parametrize("block", [LLAMA_V2, KIMI_V1])
def test_a_roboflow_proxy_key_from_a_selector_fails_the_step(apis: FakeLlmApis, env: BlockEnvironment,
                                                             frame: WorkflowImage, block: str) -> None:
    with pytest.raises(ValueError, match="Roboflow's API proxy, which this manager does not have; give your own "
                                         "OpenRouter API key"):
        run({"type": block, "task_type": "ocr"}, env, frame, api_key="rf_key:account")
    assert apis.requests == []


@pytest.mark.parametrize(("block", "values", "expected"), [
    (KIMI_V1, {"model_version": "Kimi K3 - OpenRouter"},
     "model_version must be one of Kimi K2.5 - OpenRouter, Kimi K2.6 - OpenRouter, got 'Kimi K3 - OpenRouter'"),
    (LLAMA_V1, {"task_type": "object-detection"}, "task_type 'object-detection' is not one of"),
    (OPENROUTER, {"model_id": ""}, "model_id must be a non-empty string"),
    (KIMI_V2, {"privacy_level": "none"}, "privacy_level must be one of allow, deny, zdr, got 'none'"),
    (QWEN35, {"temperature": 2.5}, "temperature must be a number from 0.0 to 2, got 2.5"),
    (QWEN36, {"max_tokens": 1}, "max_tokens must be an integer greater than 1, got 1"),
    (LLAMA_V2, {"classes": []}, "classes must name at least one class for task_type 'classification'"),
])
def test_selector_values_are_checked_on_each_frame(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                   block: str, values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        run({"type": block, "task_type": "classification", "classes": ["cat"]}, env, frame, **values)
    assert apis.requests == []


def test_the_openrouter_url_is_the_operator_s_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings().workflow_openrouter_api_url == "https://openrouter.ai/api/v1"
    monkeypatch.setenv("WORKER_WORKFLOW_OPENROUTER_API_URL", "http://gateway.internal:8080/openrouter/api/v1/")
    assert WorkerSettings().workflow_openrouter_api_url == "http://gateway.internal:8080/openrouter/api/v1"
    monkeypatch.setenv("WORKER_WORKFLOW_OPENROUTER_API_URL", "openrouter.ai/api/v1")
    with pytest.raises(ValueError, match="WORKER_WORKFLOW_OPENROUTER_API_URL must be an http:// or https:// URL"):
        WorkerSettings()
