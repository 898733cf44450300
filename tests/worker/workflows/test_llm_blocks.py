"""open_ai v2/v3, anthropic_claude v1/v2 and google_gemini v1/v2 against a fake of each provider's API on 127.0.0.1:
the request each task type sends (model, prompt texts, the frame as a base64 JPEG, limits, the key's header), the
outputs, and every failure (HTTP errors, a timeout, malformed JSON) as a step error naming the provider and the
status, never the key."""

import base64
import json
import logging
import re
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import pytest

from services.core.networks import DestinationRefusedError, NetworkPolicy
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.llm.client import ProviderError
from services.worker.workflows.values import WorkflowImage
from tests.support.llm_providers import FakeLlmApis, LlmRequest
from tests.worker.workflows.hosted_support import build_step, make_env, orange_block_frame

KEY = "sk-test-0123456789abcdef-secret"
OPENAI_CLASSIFICATION = (
    "You act as single-class classification model. You must provide reasonable predictions. You are only allowed to "
    "produce JSON document in Markdown ```json [...]``` markers. Expected structure of json: {\"class_name\": "
    "\"class-name\", \"confidence\": 0.4}. `class-name` must be one of the class names defined by user. You are only "
    "allowed to return single JSON document, even if there are potentially multiple classes. You are not allowed to "
    "return list.")
CLASSES_TEXT = "List of all classes to be recognised by model: cat, dog"
PROVIDERS = {"openai": ("roboflow_core/open_ai@v2", "OpenAI"),
             "anthropic": ("roboflow_core/anthropic_claude@v1", "Anthropic"),
             "gemini": ("roboflow_core/google_gemini@v1", "Google Gemini")}


@pytest.fixture
def env(apis: FakeLlmApis) -> BlockEnvironment:
    return make_env(apis)


@pytest.fixture
def frame() -> WorkflowImage:
    return orange_block_frame()


def build(step: dict[str, Any], env: BlockEnvironment, **parameters: Any) -> tuple[Any, dict[str, Any]]:
    return build_step({"images": "$inputs.image", **step}, env, **parameters)


def run(step: dict[str, Any], env: BlockEnvironment, frame: WorkflowImage, **values: Any) -> dict[str, Any]:
    block, params = build({"api_key": KEY, **step}, env)
    result: dict[str, Any] = block.run(**{**params, "images": frame, **values})
    return result


def decoded(data: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "a JPEG"
    return image


def jpeg_of(frame: WorkflowImage) -> str:
    return base64.b64encode(cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()).decode()


# ----------------------------------------------------------------------------- OpenAI


def test_openai_v2_classification_sends_the_frame_the_classes_and_the_bearer_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.text["openai"] = '```json\n{"class_name": "cat", "confidence": 0.9}\n```'
    result = run({"type": "roboflow_core/open_ai@v2", "task_type": "classification", "classes": ["cat", "dog"]},
                 env, frame)

    assert result == {"output": apis.text["openai"], "classes": ["cat", "dog"]}
    [request] = apis.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "gpt-4o", "max_tokens": 450,
        "messages": [{"role": "system", "content": OPENAI_CLASSIFICATION},
                     {"role": "user", "content": [
                         {"type": "text", "text": CLASSES_TEXT},
                         {"type": "image_url",
                          "image_url": {"url": f"data:image/jpeg;base64,{jpeg_of(frame)}", "detail": "auto"}}]}]}
    assert KEY in env.secrets, "the executor redacts it from step errors"


def test_openai_v3_sends_max_completion_tokens_and_the_temperature(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    run({"type": "roboflow_core/open_ai@v3", "prompt": "How many people?", "model_version": "gpt-4.1",
         "image_detail": "low", "max_tokens": 100, "temperature": 0.2}, env, frame)

    body = apis.requests[0].json()
    assert (body["model"], body["max_completion_tokens"], body["temperature"]) == ("gpt-4.1", 100, 0.2)
    assert "max_tokens" not in body
    [message] = body["messages"]  # unconstrained: no system instruction, the prompt first
    assert message["content"][0] == {"type": "text", "text": "How many people?"}
    assert message["content"][1]["image_url"]["detail"] == "low"


@pytest.mark.parametrize(("task", "fields", "system_start", "text"), [
    ("ocr", {}, "You act as OCR model.", None),
    ("visual-question-answering", {"prompt": "Is the door open?"}, "You act as Visual Question Answering model. "
     "Your task is to provide answer to questionsubmitted by user.", "Question: Is the door open?"),
    ("caption", {}, "You act as image caption model. Your task is to provide description of the image. Caption "
     "should be short.", None),
    ("detailed-caption", {}, "You act as image caption model.", None),
    ("multi-label-classification", {"classes": ["cat", "dog"]}, "You act as multi-label classification model.",
     CLASSES_TEXT),
    ("structured-answering", {"output_structure": {"count": "how many people"}}, "You are supposed to produce "
     "responses in JSON wrapped in Markdown markers: ```json\nyour-response\n```.",
     'Specification of requirements regarding output fields: \n{\n    "count": "how many people"\n}'),
])
def test_each_openai_task_type_sends_its_instruction(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                     task: str, fields: dict[str, Any], system_start: str,
                                                     text: str | None) -> None:
    run({"type": "roboflow_core/open_ai@v2", "task_type": task, **fields}, env, frame)

    system, user = apis.requests[0].json()["messages"]
    assert system["role"] == "system" and system["content"].startswith(system_start)
    texts = [part["text"] for part in user["content"] if part["type"] == "text"]
    assert texts == ([text] if text else [])
    if task == "detailed-caption":
        assert system["content"].endswith("Caption should be extensive.")


# ----------------------------------------------------------------------------- Anthropic


def test_claude_v1_sends_a_downscaled_image_block_then_the_text(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    result = run({"type": "roboflow_core/anthropic_claude@v1", "task_type": "object-detection",
                  "classes": ["cat", "dog"], "model_version": "claude-3-5-haiku", "max_image_size": 320,
                  "temperature": 0.5}, env, frame)

    assert result == {"output": "claude says hi", "classes": ["cat", "dog"]}
    [request] = apis.requests
    assert request.path == "/v1/messages"
    assert (request.headers["x-api-key"], request.headers["anthropic-version"]) == (KEY, "2023-06-01")
    assert "authorization" not in request.headers
    body = request.json()
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("claude-3-5-haiku-20241022", 450, 0.5)
    assert body["system"].startswith("You act as object-detection model.")
    assert "- remember to close top-level dictionary at the end. `my-class-X`" in body["system"]
    image, text = body["messages"][0]["content"]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/jpeg"
    assert decoded(image["source"]["data"]).shape == (240, 320, 3), "640x480 fitted into 320x320"
    assert text == {"type": "text", "text": CLASSES_TEXT}


def test_claude_v2_defaults_to_the_model_s_most_tokens_and_thinks_without_temperature(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.stop = "thinking"  # a thinking block first: the text block is the answer
    result = run({"type": "roboflow_core/anthropic_claude@v2", "prompt": "Describe", "extended_thinking": True},
                 env, frame, temperature=0.3)

    assert result["output"] == "claude says hi"
    body = apis.requests[0].json()
    assert (body["model"], body["max_tokens"]) == ("claude-sonnet-4-5-20250929", 64000)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 32000}
    assert "temperature" not in body and "system" not in body
    assert decoded(body["messages"][0]["content"][0]["source"]["data"]).shape == (480, 640, 3), "not larger: as is"


def test_claude_v2_fails_the_step_when_the_answer_was_cut(apis: FakeLlmApis, env: BlockEnvironment,
                                                          frame: WorkflowImage) -> None:
    apis.stop = "max_tokens"
    with pytest.raises(ProviderError, match="Anthropic API stopped the answer at the max_tokens limit"):
        run({"type": "roboflow_core/anthropic_claude@v2", "task_type": "ocr", "max_tokens": 20}, env, frame)


# ----------------------------------------------------------------------------- Gemini


def test_gemini_v1_sends_inline_data_and_the_key_in_a_header(apis: FakeLlmApis, env: BlockEnvironment,
                                                             frame: WorkflowImage) -> None:
    result = run({"type": "roboflow_core/google_gemini@v1", "task_type": "classification", "classes": ["cat", "dog"],
                  "temperature": 0.1}, env, frame)

    assert result == {"output": "gemini hi", "classes": ["cat", "dog"]}
    [request] = apis.requests
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent", "no key in the URL"
    assert request.headers["x-goog-api-key"] == KEY
    body = request.json()
    assert body["contents"] == {"role": "user", "parts": [{"inline_data": {"mime_type": "image/jpeg",
                                                                           "data": jpeg_of(frame)}},
                                                          {"text": CLASSES_TEXT}]}
    assert body["systemInstruction"]["parts"][0]["text"].startswith("You act as single-class classification model. "
                                                                    "You must provide reasonable predictions. You are "
                                                                    "only allowed to produce JSON document. Expected")
    assert body["generationConfig"] == {"max_output_tokens": 450, "response_mime_type": "application/json",
                                        "candidate_count": 1, "temperature": 0.1}


@pytest.mark.parametrize(("model", "sent", "config"), [
    ("gemini-3.1-pro-preview", "gemini-3.1-pro-preview",
     {"response_mime_type": "text/plain", "candidate_count": 1, "thinking_config": {"thinking_level": "low"}}),
    ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro",
     {"response_mime_type": "text/plain", "candidate_count": 1, "temperature": 0.7}),
])
def test_gemini_v2_thinks_on_gemini_3_and_takes_a_temperature_on_older_models(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, model: str, sent: str,
        config: dict[str, Any]) -> None:
    run({"type": "roboflow_core/google_gemini@v2", "task_type": "ocr", "model_version": model,
         "thinking_level": "low", "temperature": 0.7}, env, frame)

    body = apis.requests[0].json()
    assert apis.requests[0].path == f"/v1beta/models/{sent}:generateContent"
    assert body["generationConfig"] == config
    assert body["contents"]["parts"][1] == {"text": "Read the text"}


def test_gemini_v2_fails_the_step_on_a_safety_stop(apis: FakeLlmApis, env: BlockEnvironment,
                                                   frame: WorkflowImage) -> None:
    apis.stop = "SAFETY"
    with pytest.raises(ProviderError, match="Google Gemini API stopped the answer: finish reason 'SAFETY'"):
        run({"type": "roboflow_core/google_gemini@v2", "task_type": "caption"}, env, frame)


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize(("status", "reason"), [(401, "Unauthorized"), (429, "Too Many Requests"),
                                                (500, "Internal Server Error")])
def test_an_http_error_names_the_provider_and_status_never_the_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, provider: str, status: int, reason: str,
        caplog: pytest.LogCaptureFixture) -> None:
    block_type, name = PROVIDERS[provider]
    apis.status = status
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as failure:
        run({"type": block_type, "task_type": "ocr"}, env, frame)

    message = str(failure.value)
    assert message.startswith(f"{name} API answered HTTP {status} {reason}"), message
    assert KEY not in message and KEY not in caplog.text
    if status == 401:  # the provider's own explanation, which echoed the key
        assert message.endswith(": Incorrect API key provided: ***")


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_a_malformed_answer_and_a_timeout_are_step_errors(apis: FakeLlmApis, frame: WorkflowImage,
                                                          provider: str) -> None:
    block_type, name = PROVIDERS[provider]
    env = make_env(apis, llm_api_timeout=0.3)
    apis.raw = b'{"choices": [ {"oops"'
    with pytest.raises(ProviderError, match=f"^{name} API answered HTTP 200 with something other than JSON$"):
        run({"type": block_type, "task_type": "ocr"}, env, frame)
    apis.raw, apis.delay = None, 3.0
    with pytest.raises(ProviderError, match=f"^{name} API did not answer within 0.3 s$"):
        run({"type": block_type, "task_type": "ocr"}, env, frame)


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_an_answer_without_text_is_a_step_error(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                provider: str) -> None:
    block_type, name = PROVIDERS[provider]
    apis.raw = b"{}"
    with pytest.raises(ProviderError, match=f"^{name} API answered"):
        run({"type": block_type, "task_type": "ocr"}, env, frame)


def test_the_api_must_be_on_an_allowed_network(apis: FakeLlmApis, frame: WorkflowImage) -> None:
    only_elsewhere = NetworkPolicy.parse(("10.0.0.0/8",), "WORKER_WORKFLOW_ALLOWED_NETWORKS")
    with pytest.raises(DestinationRefusedError, match=re.escape("127.0.0.1")):
        run({"type": "roboflow_core/open_ai@v2", "task_type": "ocr"}, make_env(apis, allowed_networks=only_elsewhere),
            frame)
    with pytest.raises(ValueError, match="is not among the hosts sinks may reach"):
        run({"type": "roboflow_core/open_ai@v2", "task_type": "ocr"},
            make_env(apis, allowed_hosts=("api.openai.com",)), frame)
    assert apis.requests == []


def test_a_roboflow_proxy_key_from_a_selector_fails_the_step(apis: FakeLlmApis, env: BlockEnvironment,
                                                             frame: WorkflowImage) -> None:
    with pytest.raises(ValueError, match="Roboflow's API proxy, which this manager does not have; give your own "
                                         "OpenAI API key"):
        run({"type": "roboflow_core/open_ai@v3", "task_type": "ocr"}, env, frame, api_key="rf_key:user:42")
    assert apis.requests == []


@pytest.mark.parametrize(("values", "expected"), [
    ({"classes": []}, "classes must name at least one class for task_type 'classification'"),
    ({"classes": "cat"}, "classes must be a list of class names"),
    ({"temperature": 3}, "temperature must be a number from 0.0 to 2"),
    ({"image_detail": "ultra"}, "image_detail must be one of auto, high, low"),
])
def test_selector_values_are_checked_on_each_frame(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                   values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        run({"type": "roboflow_core/open_ai@v2", "task_type": "classification", "classes": ["cat"]}, env, frame,
            **values)
    assert apis.requests == []


def test_the_key_from_a_parameter_is_a_secret_of_the_step(apis: FakeLlmApis, env: BlockEnvironment,
                                                          frame: WorkflowImage) -> None:
    block, params = build({"type": "roboflow_core/google_gemini@v1", "task_type": "ocr",
                           "api_key": "$inputs.google_key"}, env, google_key=KEY)
    assert KEY in env.secrets, "registered as the step is built"
    block.run(**{**params, "images": frame})
    requests: list[LlmRequest] = apis.wait_for(1)
    assert requests[0].headers["x-goog-api-key"] == KEY
    assert json.dumps(replace(requests[0], headers={}).json()).count(KEY) == 0, "only in the header"
