"""meta_vlm@v1 against a fake OpenRouter and spacexai@v1 against a fake of xAI's Responses API, both on 127.0.0.1:
the request each task type sends (the reference's texts, word for word), each model's slug, the reasoning effort,
Muse's image-first single text and xAI's lossless PNG for object detection, the answers read (Muse's reasoning as
``thinking``), a refused reasoning config asked once more without it, and every failure as a step error naming the
provider, never the key."""

import base64
import logging
import re
import threading
import time
from typing import Any

import cv2
import numpy as np
import pytest

from services.core.workflows.compiler import compile_workflow
from services.worker.settings import WorkerSettings
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment, SinkSettings
from services.worker.workflows.blocks.llm import meta
from services.worker.workflows.blocks.llm.client import ProviderError
from services.worker.workflows.blocks.llm.meta import MetaVlmBlock
from services.worker.workflows.blocks.llm.xai import SpaceXaiBlock
from services.worker.workflows.blocks.vlm_parsers import upload_size
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import WorkflowImage
from tests.support.llm_providers import FakeLlmApis
from tests.worker.workflows.hosted_support import TASK_FIELDS, build_step, make_env, orange_block_frame
from tests.worker.workflows.visualization_support import workflow_image

META = "roboflow_core/meta_vlm@v1"
XAI = "roboflow_core/spacexai@v1"
KEYS = {META: "sk-or-v1-muse-0123456789-secret", XAI: "xai-grok-0123456789abcdef-secret"}
CLASSES_TEXT = "List of all classes to be recognised by model: cat, dog"

# The reference's texts (roboflow/inference: core_steps/models/foundation/meta_vlm/v1.py and spacexai/v1.py), word
# for word.
NO_DISCUSSION = " You cannot discuss the result, you are only allowed to return JSON document."
OCR = ("You act as OCR model. Your task is to read text from the image and return it in paragraphs representing the "
       "structure of texts in the image. You should only return recognised text, nothing else.")
VQA = ("You act as Visual Question Answering model. Your task is to provide answer to question submitted by user. If "
       "this is open-question - answer with few sentences, for ABCD question, return only the indicator of the "
       "answer.")
CAPTION = "You act as image caption model. Your task is to provide description of the image. Caption should be "
CLASSIFICATION = (
    "You act as single-class classification model. You must provide reasonable predictions. You are only allowed to "
    "produce JSON document in Markdown ```json [...]``` markers. Expected structure of json: {\"class_name\": "
    "\"class-name\", \"confidence\": 0.4}. `class-name` must be one of the class names defined by user. You are only "
    "allowed to return single JSON document, even if there are potentially multiple classes. You are not allowed to "
    "return list.")
MULTI_LABEL = (
    "You act as multi-label classification model. You must provide reasonable predictions. You are only allowed to "
    "produce JSON document in Markdown ```json``` markers. Expected structure of json: {\"predicted_classes\": "
    "[{\"class\": \"class-name-1\", \"confidence\": 0.9}, {\"class\": \"class-name-2\", \"confidence\": 0.7}]}. "
    "`class-name-X` must be one of the class names defined by user and `confidence` is a float value in range "
    "0.0-1.0 that represent how sure you are that the class is present in the image. Only return class names that "
    "are visible.")
STRUCTURED = (
    "You are supposed to produce responses in JSON wrapped in Markdown markers: ```json\nyour-response\n```. User is "
    "to provide you dictionary with keys and values. Each key must be present in your response. Values in user "
    "dictionary represent descriptions for JSON fields to be generated. Provide only JSON Markdown in response.")
STRUCTURE_TEXT = 'Specification of requirements regarding output fields: \n{\n    "count": "how many people"\n}'
MUSE_DETECTION = (
    "You are an object grounding expert. Detect all objects in this image matching these labels: cat, dog. Ensure "
    "the objects accurately match the request and do not miss any objects. For each object, answer in the format "
    '{"label": "<name>", "x_min": <int>, "y_min": <int>, "x_max": <int>, "y_max": <int>}. The coordinates should be '
    "in the 0-1000 range. Return a JSON array of results. If you cannot find an object, omit it from the results.")
XAI_DETECTION = (
    'Detect all objects in this image. Output a JSON list where each entry contains the text label in the key "label" '
    'and the 2D bounding box in the key "box_2d". The "box_2d" value must be [x_min, y_min, x_max, y_max] as '
    "percentages of image width and height (floats between 0 and 100). Return only the JSON list, with no extra "
    "text. Only use these labels: cat, dog")
# Muse: one user text after the image (the instruction and the text joined by a blank line).
MUSE_TEXTS = {
    "unconstrained": "How many people?",
    "ocr": OCR,
    "visual-question-answering": f"{VQA}\n\nQuestion: How many people?",
    "caption": CAPTION + "short.",
    "detailed-caption": CAPTION + "extensive.",
    "classification": f"{CLASSIFICATION}{NO_DISCUSSION}\n\n{CLASSES_TEXT}",
    "multi-label-classification": f"{MULTI_LABEL}{NO_DISCUSSION}\n\n{CLASSES_TEXT}",
    "structured-answering": f"{STRUCTURED}\n\n{STRUCTURE_TEXT}",
    "object-detection": MUSE_DETECTION,
}
# xAI: (instructions, the text before the image; None: none).
XAI_PROMPTS: dict[str, tuple[str | None, str | None]] = {
    "unconstrained": (None, "How many people?"),
    "ocr": (OCR, None),
    "visual-question-answering": (VQA, "Question: How many people?"),
    "caption": (CAPTION + "short.", None),
    "detailed-caption": (CAPTION + "extensive.", None),
    "classification": (CLASSIFICATION, CLASSES_TEXT),
    "multi-label-classification": (MULTI_LABEL, CLASSES_TEXT),
    "structured-answering": (STRUCTURED, STRUCTURE_TEXT),
}


@pytest.fixture
def env(apis: FakeLlmApis) -> BlockEnvironment:
    return make_env(apis)


@pytest.fixture
def frame() -> WorkflowImage:
    return orange_block_frame()


def run(step: dict[str, Any], env: BlockEnvironment, frame: WorkflowImage, **values: Any) -> dict[str, Any]:
    block, params = build_step({"images": "$inputs.image", "api_key": KEYS[step["type"]], **step}, env)
    result: dict[str, Any] = block.run(**{**params, "images": frame, **values})
    return result


def jpeg_of(frame: WorkflowImage) -> str:
    return base64.b64encode(cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()).decode()


def decoded(data_url: str) -> np.ndarray:
    data = data_url.split(";base64,", 1)[1]
    return cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)


def muse_image(frame: WorkflowImage) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{jpeg_of(frame)}"}}


def xai_image(frame: WorkflowImage) -> dict[str, Any]:
    return {"type": "input_image", "image_url": f"data:image/jpeg;base64,{jpeg_of(frame)}", "detail": "auto"}


def chat(content: str | None, reasoning: Any = None, finish: str = "stop") -> dict[str, Any]:
    """An OpenRouter answer whose message has ``content`` and, when given, ``reasoning``."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning"] = reasoning
    return {"id": "gen-1", "choices": [{"index": 0, "finish_reason": finish, "message": message}]}


def test_both_blocks_keep_the_concurrency_field_the_executor_reads() -> None:
    assert MetaVlmBlock.concurrency_field == SpaceXaiBlock.concurrency_field == "max_concurrent_requests"
    assert (MetaVlmBlock.provider, SpaceXaiBlock.provider) == ("OpenRouter", "xAI")
    assert (REGISTRY[META], REGISTRY[XAI]) == (MetaVlmBlock, SpaceXaiBlock)


# ----------------------------------------------------------------------------- meta_vlm@v1: requests


def test_muse_classification_sends_the_image_then_one_text_with_a_low_reasoning_effort(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.text["openrouter"] = '```json\n{"class_name": "cat", "confidence": 0.9}\n```'
    result = run({"type": META, "task_type": "classification", "classes": ["cat", "dog"]}, env, frame)

    assert result == {"output": apis.text["openrouter"], "classes": ["cat", "dog"], "thinking": ""}
    [request] = apis.requests
    assert (request.provider, request.path) == ("openrouter", "/api/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEYS[META]}"
    assert request.json() == {
        "model": "meta/muse-spark-1.2", "max_tokens": 2048, "reasoning": {"effort": "low"},
        "provider": {"data_collection": "deny"},
        "messages": [{"role": "user", "content": [muse_image(frame),
                                                  {"type": "text", "text": MUSE_TEXTS["classification"]}]}]}
    assert KEYS[META] not in request.body.decode(), "only in the header"
    assert KEYS[META] in env.secrets, "the executor redacts it from step errors"


@pytest.mark.parametrize("task", list(MUSE_TEXTS))
def test_each_task_type_sends_the_reference_s_muse_text(apis: FakeLlmApis, env: BlockEnvironment,
                                                        frame: WorkflowImage, task: str) -> None:
    run({"type": META, "task_type": task, **TASK_FIELDS.get(task, {})}, env, frame)

    [message] = apis.requests[0].json()["messages"]
    assert message == {"role": "user", "content": [muse_image(frame), {"type": "text", "text": MUSE_TEXTS[task]}]}


@pytest.mark.parametrize(("name", "slug"), [("Muse Spark 1.1", "meta/muse-spark-1.1"),
                                            ("Muse Spark 1.2", "meta/muse-spark-1.2"),
                                            ("Muse Glimmer", "meta/muse-glimmer-30b")])
def test_the_muse_name_is_sent_as_openrouter_s_slug_with_the_step_s_options(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, name: str, slug: str) -> None:
    run({"type": META, "task_type": "ocr", "model_version": name, "reasoning_effort": "high", "max_tokens": 8192,
         "temperature": 0.7, "privacy_level": "zdr"}, env, frame)

    body = apis.requests[0].json()
    assert (body["model"], body["reasoning"], body["max_tokens"], body["temperature"], body["provider"]) == (
        slug, {"effort": "high"}, 8192, 0.7, {"data_collection": "deny", "zdr": True})


def test_privacy_level_allow_sends_no_provider_preferences(apis: FakeLlmApis, env: BlockEnvironment,
                                                           frame: WorkflowImage) -> None:
    run({"type": META, "task_type": "caption", "privacy_level": "allow", "reasoning_effort": "medium"}, env, frame)

    body = apis.requests[0].json()
    assert "provider" not in body and "temperature" not in body
    assert body["reasoning"] == {"effort": "medium"}


def test_a_frame_too_large_for_openrouter_is_scaled_down_a_tenth_at_a_time(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, monkeypatch: pytest.MonkeyPatch) -> None:
    run({"type": META, "task_type": "ocr"}, env, frame)
    sent = apis.requests[0].json()["messages"][0]["content"][0]["image_url"]["url"]
    assert sent == f"data:image/jpeg;base64,{jpeg_of(frame)}", "within the limit: the frame as it is"

    limit = len(jpeg_of(frame)) // 3
    monkeypatch.setattr(meta, "MAX_BASE64_CHARS", limit)
    run({"type": META, "task_type": "ocr"}, env, frame)
    data = apis.requests[1].json()["messages"][0]["content"][0]["image_url"]["url"].split(",", 1)[1]
    sizes, size = [], (640, 480)
    while size[0] > 1:
        size = upload_size(*size, max(int(max(size) * 0.9), 1))
        sizes.append(size)
    height, width = decoded(f"x;base64,{data}").shape[:2]
    assert len(data) <= limit and (width, height) in sizes[1:], "a few tenths smaller"


# ----------------------------------------------------------------------------- meta_vlm@v1: answers


@pytest.mark.parametrize(("reasoning", "thinking"), [("The cat is on the left.", "The cat is on the left."),
                                                     (None, ""), ({"not": "text"}, "")])
def test_muse_s_reasoning_is_its_thinking_output(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                 reasoning: Any, thinking: str) -> None:
    apis.replies.append((200, chat('[{"label": "cat", "x_min": 1, "y_min": 2, "x_max": 3, "y_max": 4}]', reasoning)))
    result = run({"type": META, "task_type": "object-detection", "classes": ["cat"]}, env, frame)

    assert result == {"output": '[{"label": "cat", "x_min": 1, "y_min": 2, "x_max": 3, "y_max": 4}]',
                      "classes": ["cat"], "thinking": thinking}


@pytest.mark.parametrize("refusal", ['reasoning.effort: Invalid option: expected one of "max"|"xhigh"',
                                     "Reasoning is mandatory for this endpoint and cannot be disabled."])
def test_a_refused_reasoning_config_is_asked_once_more_without_it(apis: FakeLlmApis, env: BlockEnvironment,
                                                                  frame: WorkflowImage, refusal: str) -> None:
    apis.replies.append((400, {"error": {"code": 400, "message": refusal}}))
    result = run({"type": META, "task_type": "caption", "reasoning_effort": "medium"}, env, frame)

    assert result["output"] == "openrouter says hi"
    first, second = (request.json() for request in apis.requests)
    assert first["reasoning"] == {"effort": "medium"} and "reasoning" not in second
    assert {k: v for k, v in first.items() if k != "reasoning"} == second


@pytest.mark.parametrize(("status", "message"), [
    (400, "Invalid image: the file is not an image"),  # no "reasoning"
    (429, "Rate limited while reasoning"),  # no refusal marker
    (502, "reasoning.effort: Invalid option"),  # a server error: never asked twice
])
def test_other_errors_are_not_asked_again(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                          status: int, message: str) -> None:
    apis.replies.append((status, {"error": {"code": status, "message": message}}))
    with pytest.raises(ProviderError, match=rf"^OpenRouter API answered HTTP {status} .*: {re.escape(message)}$"):
        run({"type": META, "task_type": "caption"}, env, frame)
    assert len(apis.requests) == 1


def test_a_refused_key_names_openrouter_and_the_status_never_the_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, caplog: pytest.LogCaptureFixture) -> None:
    apis.status = 401
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as failure:
        run({"type": META, "task_type": "ocr"}, env, frame)

    assert str(failure.value) == "OpenRouter API answered HTTP 401 Unauthorized: Incorrect API key provided: ***"
    assert failure.value.status == 401 and len(apis.requests) == 1
    assert KEYS[META] not in caplog.text


def test_muse_answers_without_text_fail_the_step(apis: FakeLlmApis, env: BlockEnvironment,
                                                 frame: WorkflowImage) -> None:
    apis.replies.append((200, {"error": {"code": 502, "message": f"Upstream failed for {KEYS[META]}"}}))
    with pytest.raises(ProviderError, match=r"^OpenRouter API answered without a completion .*: Upstream failed for "
                                            r"\*\*\*$"):
        run({"type": META, "task_type": "ocr"}, env, frame)
    apis.replies.append((200, chat(None, "thinking until the end", finish="length")))
    with pytest.raises(ProviderError, match=r"^OpenRouter API answered with no text .*raise max_tokens"):
        run({"type": META, "task_type": "ocr", "max_tokens": 16}, env, frame)


@pytest.mark.parametrize(("values", "expected"), [
    ({"api_key": "rf_key:account"}, "Roboflow's API proxy, which this manager does not have; give your own "
                                    "OpenRouter API key"),
    ({"model_version": "Muse Spark 2"}, "model_version must be one of Muse Spark 1.1, Muse Spark 1.2, Muse Glimmer, "
                                        "got 'Muse Spark 2'"),
    ({"reasoning_effort": "none"}, "reasoning_effort must be one of low, medium, high, got 'none'"),
    ({"privacy_level": "none"}, "privacy_level must be one of allow, deny, zdr, got 'none'"),
    ({"temperature": 2.5}, "temperature must be a number from 0.0 to 2, got 2.5"),
    ({"max_tokens": 1}, "max_tokens must be an integer greater than 1, got 1"),
    ({"classes": []}, "classes must name at least one class for task_type 'classification'"),
])
def test_muse_values_are_checked_before_anything_is_sent(apis: FakeLlmApis, env: BlockEnvironment,
                                                         frame: WorkflowImage, values: dict[str, Any],
                                                         expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        run({"type": META, "task_type": "classification", "classes": ["cat"]}, env, frame, **values)
    assert apis.requests == []


# ----------------------------------------------------------------------------- spacexai@v1: requests


def test_grok_classification_sends_instructions_the_classes_then_the_frame_with_the_bearer_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.text["xai"] = '```json\n{"class_name": "dog", "confidence": 0.8}\n```'
    result = run({"type": XAI, "task_type": "classification", "classes": ["cat", "dog"]}, env, frame)

    assert result == {"output": apis.text["xai"], "classes": ["cat", "dog"]}
    [request] = apis.requests
    assert (request.provider, request.path) == ("xai", "/xai/v1/responses")
    assert request.headers["authorization"] == f"Bearer {KEYS[XAI]}"
    assert request.json() == {
        "model": "grok-4.6", "instructions": CLASSIFICATION, "store": False,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": CLASSES_TEXT}, xai_image(frame)]}]}
    assert KEYS[XAI] not in request.body.decode(), "only in the header"
    assert KEYS[XAI] in env.secrets


@pytest.mark.parametrize("task", list(XAI_PROMPTS))
def test_each_task_type_sends_the_reference_s_grok_instructions_and_text(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, task: str) -> None:
    run({"type": XAI, "task_type": task, **TASK_FIELDS.get(task, {})}, env, frame)

    body = apis.requests[0].json()
    instructions, text = XAI_PROMPTS[task]
    assert body.get("instructions") == instructions
    assert body["input"] == [{"role": "user", "content": [
        *([{"type": "input_text", "text": text}] if text else []), xai_image(frame)]}]


def test_grok_object_detection_sends_the_frame_as_it_is_in_a_lossless_png_then_the_percent_prompt(
        apis: FakeLlmApis, env: BlockEnvironment) -> None:
    rng = np.random.default_rng(7)
    large = workflow_image(rng.integers(0, 256, (2100, 3000, 3), np.uint8))  # never scaled down
    run({"type": XAI, "task_type": "object-detection", "classes": ["cat", "dog"]}, env, large)

    body = apis.requests[0].json()
    assert "instructions" not in body
    [message] = body["input"]
    picture, text = message["content"]
    assert text == {"type": "input_text", "text": XAI_DETECTION}
    assert picture["detail"] == "high" and picture["image_url"].startswith("data:image/png;base64,")
    assert np.array_equal(decoded(picture["image_url"]), large.image), "lossless, at its own size"


def test_grok_options_are_sent_only_when_given(apis: FakeLlmApis, env: BlockEnvironment,
                                               frame: WorkflowImage) -> None:
    run({"type": XAI, "task_type": "ocr", "model_version": "grok-4.5", "reasoning_effort": "high",
         "max_tokens": 4096, "temperature": 0.3}, env, frame)
    run({"type": XAI, "task_type": "ocr"}, env, frame, model_version="grok-5-preview")  # a step's output: as given

    given, plain = (request.json() for request in apis.requests)
    assert (given["model"], given["reasoning"], given["max_output_tokens"], given["temperature"], given["store"]) == (
        "grok-4.5", {"effort": "high"}, 4096, 0.3, False)
    assert plain["model"] == "grok-5-preview"
    assert not {"reasoning", "max_output_tokens", "temperature"} & set(plain)


def test_a_refused_reasoning_effort_is_asked_once_more_without_it(apis: FakeLlmApis, env: BlockEnvironment,
                                                                  frame: WorkflowImage) -> None:
    refusal = {"code": "Client specified an invalid argument", "error": "Argument not supported: reasoning.effort"}
    apis.replies.append((400, refusal))
    assert run({"type": XAI, "task_type": "caption", "reasoning_effort": "low"}, env, frame)["output"] == \
        "grok says hi"
    first, second = (request.json() for request in apis.requests)
    assert first["reasoning"] == {"effort": "low"} and "reasoning" not in second
    assert {k: v for k, v in first.items() if k != "reasoning"} == second

    apis.requests.clear()
    apis.replies.append((400, refusal))  # no effort was sent: nothing to leave out
    with pytest.raises(ProviderError, match=r"^xAI API answered HTTP 400 Bad Request: Argument not supported"):
        run({"type": XAI, "task_type": "caption"}, env, frame)
    assert len(apis.requests) == 1


# ----------------------------------------------------------------------------- spacexai@v1: answers and failures


def test_grok_s_answer_is_its_message_s_output_text_parts_joined(apis: FakeLlmApis, env: BlockEnvironment,
                                                                 frame: WorkflowImage) -> None:
    apis.text["xai"], apis.stop = '[{"label": "cat", "box_2d": [10, 20, 30, 40]}]', "split"
    assert run({"type": XAI, "task_type": "ocr"}, env, frame)["output"] == \
        '[{"label": "cat", "box_2d": [10, 20, 30, 40]}]'


@pytest.mark.parametrize(("stop", "expected"), [
    ("max_output_tokens", "xAI API stopped the answer at the max_tokens limit: raise max_tokens for a complete "
                          "answer"),
    ("content_filter", "xAI API answered incompletely: content_filter"),
    ("failed", "xAI API request failed: server_error: The model failed"),
])
def test_an_unfinished_grok_answer_fails_the_step(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                  stop: str, expected: str) -> None:
    apis.stop = stop
    with pytest.raises(ProviderError, match=f"^{re.escape(expected)}$"):
        run({"type": XAI, "task_type": "ocr", "max_tokens": 16}, env, frame)


@pytest.mark.parametrize(("answer", "expected"), [
    ({"status": "cancelled", "output": []}, "xAI API request was cancelled"),
    ({"status": "completed", "output": []}, "xAI API answered with no text content"),
    ({"status": "expired"}, "xAI API answered with an unexpected status: expired"),
    ({"status": "failed", "error": {"code": "invalid_api_key", "message": f"key {KEYS[XAI]} was revoked"}},
     "xAI API request failed: invalid_api_key: key *** was revoked"),
])
def test_grok_answers_without_text_are_step_errors(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                   answer: dict[str, Any], expected: str) -> None:
    apis.replies.append((200, answer))
    with pytest.raises(ProviderError, match=f"^{re.escape(expected)}$"):
        run({"type": XAI, "task_type": "ocr"}, env, frame)


@pytest.mark.parametrize(("status", "reason", "detail"), [
    (401, "Unauthorized", ": Incorrect API key provided: ***"), (429, "Too Many Requests", ": error 429"),
    (500, "Internal Server Error", ": error 500")])
def test_an_http_error_names_xai_and_the_status_in_its_own_words_never_the_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, status: int, reason: str, detail: str,
        caplog: pytest.LogCaptureFixture) -> None:
    apis.status = status
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as failure:
        run({"type": XAI, "task_type": "ocr", "reasoning_effort": "low"}, env, frame)

    assert str(failure.value) == f"xAI API answered HTTP {status} {reason}{detail}"
    assert len(apis.requests) == 1 and KEYS[XAI] not in caplog.text


def test_a_malformed_grok_answer_and_a_timeout_are_step_errors(apis: FakeLlmApis, frame: WorkflowImage) -> None:
    env = make_env(apis, llm_api_timeout=0.3)
    apis.raw = b'{"output": [ {"oops"'
    with pytest.raises(ProviderError, match=r"^xAI API answered HTTP 200 with something other than JSON$"):
        run({"type": XAI, "task_type": "ocr"}, env, frame)
    apis.raw, apis.delay = None, 3.0
    with pytest.raises(ProviderError, match=r"^xAI API did not answer within 0\.3 s$") as failure:
        run({"type": XAI, "task_type": "ocr", "reasoning_effort": "high"}, env, frame)
    assert failure.value.status is None


@pytest.mark.parametrize(("values", "expected"), [
    ({"api_key": "rf_key:user:7"}, "Roboflow's API proxy, which this manager does not have; give your own xAI API "
                                   "key"),
    ({"model_version": ""}, "model_version must be a non-empty string"),
    ({"reasoning_effort": "medium"}, "reasoning_effort must be one of low, high or null, got 'medium'"),
    ({"max_tokens": 8}, "max_tokens must be an integer >= 16 or null, got 8"),
    ({"temperature": 3}, "temperature must be a number from 0.0 to 2, got 3"),
    ({"task_type": "segmentation"}, "task_type 'segmentation' is not one of"),
])
def test_grok_values_are_checked_before_anything_is_sent(apis: FakeLlmApis, env: BlockEnvironment,
                                                         frame: WorkflowImage, values: dict[str, Any],
                                                         expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        run({"type": XAI, "task_type": "classification", "classes": ["cat"]}, env, frame, **values)
    assert apis.requests == []


# ----------------------------------------------------------------------------- the operator's addresses


def test_each_is_called_at_the_operator_s_url_under_the_outbound_policy(apis: FakeLlmApis,
                                                                        frame: WorkflowImage) -> None:
    for block, host in ((META, "openrouter.ai"), (XAI, "api.x.ai")):
        with pytest.raises(ValueError, match="is not among the hosts sinks may reach"):
            run({"type": block, "task_type": "ocr"}, make_env(apis, allowed_hosts=(host,)), frame)
    assert apis.requests == []
    run({"type": XAI, "task_type": "ocr"}, make_env(apis, xai_api_url=f"{apis.url}/xai/v1/"), frame)
    assert apis.requests[0].path == "/xai/v1/responses"
    assert SinkSettings().xai_api_url == "https://api.x.ai/v1"


def test_the_xai_url_is_the_operator_s_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings().workflow_xai_api_url == "https://api.x.ai/v1"
    monkeypatch.setenv("WORKER_WORKFLOW_XAI_API_URL", "http://gateway.internal:8080/xai/v1/")
    assert WorkerSettings().workflow_xai_api_url == "http://gateway.internal:8080/xai/v1"
    monkeypatch.setenv("WORKER_WORKFLOW_XAI_API_URL", "api.x.ai/v1")
    with pytest.raises(ValueError, match="WORKER_WORKFLOW_XAI_API_URL must be an http:// or https:// URL"):
        WorkerSettings()


# ----------------------------------------------------------------------------- in a workflow


def test_both_detections_reach_vlm_as_detector_and_a_failure_names_the_provider_not_the_key(
        apis: FakeLlmApis, env: BlockEnvironment, caplog: pytest.LogCaptureFixture) -> None:
    apis.text["openrouter"] = '[{"label": "dog", "x_min": 250, "y_min": 500, "x_max": 500, "y_max": 1000}]'
    apis.text["xai"] = '[{"label": "cat", "box_2d": [10, 20, 30, 40]}]'
    definition = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "or_key"},
                   {"type": "WorkflowParameter", "name": "xai_key"}],
        "steps": [{"type": META, "name": "muse", "images": "$inputs.image", "task_type": "object-detection",
                   "classes": ["cat", "dog"], "api_key": "$inputs.or_key"},
                  {"type": "roboflow_core/vlm_as_detector@v2", "name": "muse_boxes", "image": "$inputs.image",
                   "vlm_output": "$steps.muse.output", "classes": "$steps.muse.classes", "model_type": "muse",
                   "task_type": "object-detection"},
                  {"type": XAI, "name": "grok", "images": "$inputs.image", "task_type": "object-detection",
                   "classes": ["cat", "dog"], "api_key": "$inputs.xai_key"},
                  {"type": "roboflow_core/vlm_as_detector@v2", "name": "grok_boxes", "image": "$inputs.image",
                   "vlm_output": "$steps.grok.output", "classes": "$steps.grok.classes", "model_type": "spacexai",
                   "task_type": "object-detection"}],
        "outputs": [{"type": "JsonField", "name": "muse", "selector": "$steps.muse_boxes.predictions"},
                    {"type": "JsonField", "name": "grok", "selector": "$steps.grok_boxes.predictions"},
                    {"type": "JsonField", "name": "thinking", "selector": "$steps.muse.thinking"}],
    }
    keys = {"or_key": KEYS[META], "xai_key": KEYS[XAI]}
    executor = WorkflowExecutor(compile_workflow(definition, parameters=keys), REGISTRY, env)
    outputs, errors = executor.run(workflow_image(np.zeros((400, 1000, 3), np.uint8)))

    assert errors == [] and outputs["thinking"] == ""
    [dog] = outputs["muse"]["predictions"]  # 0-1000 of 1000x400
    assert (dog["class"], dog["class_id"], dog["x"], dog["y"], dog["width"], dog["height"]) == (
        "dog", 1, 375.0, 300.0, 250.0, 200.0)
    [cat] = outputs["grok"]["predictions"]  # percent of 1000x400
    assert (cat["class"], cat["class_id"], cat["x"], cat["y"], cat["width"], cat["height"]) == (
        "cat", 0, 200.0, 120.0, 200.0, 80.0)

    apis.status = 401
    caplog.set_level(logging.DEBUG)
    outputs, errors = executor.run(workflow_image(np.zeros((400, 1000, 3), np.uint8)))
    assert {(e.step, e.error_type) for e in errors} == {("muse", "ProviderError"), ("grok", "ProviderError")}
    assert {e.error_message for e in errors} == {
        "OpenRouter API answered HTTP 401 Unauthorized: Incorrect API key provided: ***",
        "xAI API answered HTTP 401 Unauthorized: Incorrect API key provided: ***"}
    assert not [key for key in KEYS.values() if key in caplog.text]


@pytest.mark.parametrize("block", [META, XAI])
def test_a_batch_s_crops_are_asked_max_concurrent_requests_at_a_time(apis: FakeLlmApis, env: BlockEnvironment,
                                                                      frame: WorkflowImage, block: str) -> None:
    definition = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/image_slicer@v1", "name": "slicer", "image": "$inputs.image",
                   "slice_width": 320, "slice_height": 240, "overlap_ratio_width": 0.0, "overlap_ratio_height": 0.0},
                  {"type": block, "name": "ask", "images": "$steps.slicer.slices", "task_type": "caption",
                   "api_key": KEYS[block], "max_concurrent_requests": 2}],
        "outputs": [{"type": "JsonField", "name": "answers", "selector": "$steps.ask.output"}]}
    apis.delay = 1.5
    executor = WorkflowExecutor(compile_workflow(definition), REGISTRY, env)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(executor.run(frame)), daemon=True)
    started = time.monotonic()
    worker.start()
    apis.wait_for(2, timeout=1.4)
    time.sleep(max(0.0, 1.2 - (time.monotonic() - started)))
    in_flight = len(apis.requests)
    worker.join(10)
    [(outputs, errors)] = results
    answer = "openrouter says hi" if block == META else "grok says hi"
    assert errors == [] and outputs == {"answers": [answer] * 4}
    assert in_flight == 2 and len(apis.requests) == 4
