"""anthropic_claude@v3, google_gemini@v3 and google_gemini@v4 with the user's own key, against a fake of each
provider's API on 127.0.0.1: the request each task type and option sends (model ids, token limits, thinking budgets
and levels, the code execution tool, v4's detection schema), the prompt texts word for word as the reference's, the
answer read out of its parts (thinking blocks, thought summaries and code parts skipped), and failures (stop
reasons, HTTP errors with the provider's own body, a proxy key from a selector) naming the provider, never the
key."""

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.llm.client import ProviderError
from services.worker.workflows.values import WorkflowImage
from tests.support.llm_providers import FakeLlmApis
from tests.worker.workflows.hosted_support import build_step, make_env, orange_block_frame
from tests.worker.workflows.test_llm_blocks import decoded, jpeg_of

KEY = "sk-own-0123456789abcdef-secret"
CLAUDE_V3 = "roboflow_core/anthropic_claude@v3"
GEMINI_V3 = "roboflow_core/google_gemini@v3"
GEMINI_V4 = "roboflow_core/google_gemini@v4"
CLASSES_TEXT = "List of all classes to be recognised by model: cat, dog"
JSON_ONLY = "You are only allowed to produce JSON document. "
# The reference's system prompts (anthropic_claude/v3.py, google_gemini/v3.py and v4.py), word for word.
OCR = ("You act as OCR model. Your task is to read text from the image and return it in paragraphs representing the "
       "structure of texts in the image. You should only return recognised text, nothing else.")
VQA = ("You act as Visual Question Answering model. Your task is to provide answer to questionsubmitted by user. If "
       "this is open-question - answer with few sentences, for ABCD question, return only the indicator of the "
       "answer.")
CAPTION = "You act as image caption model. Your task is to provide description of the image. Caption should be "
CLASSIFICATION = (
    "You act as single-class classification model. You must provide reasonable predictions. " + JSON_ONLY +
    'Expected structure of json: {"class_name": "class-name", "confidence": 0.4}. `class-name` must be one of the '
    "class names defined by user. You are only allowed to return single JSON document, even if there are potentially "
    "multiple classes. You are not allowed to return list.")
MULTI_LABEL = (
    "You act as multi-label classification model. You must provide reasonable predictions. " + JSON_ONLY +
    'Expected structure of json: {"predicted_classes": [{"class": "class-name-1", "confidence": 0.9}, '
    '{"class": "class-name-2", "confidence": 0.7}]}.{gap}`class-name-X` must be one of the class names defined by '
    "user and `confidence` is a float value in range 0.0-1.0 that represents how sure you are that the class is "
    "present in the image. Only return class names that are visible.")
STRUCTURED = (
    "You are supposed to produce responses in JSON. User is to provide you dictionary with keys and values. Each key "
    "must be present in your response. Values in user dictionary represent descriptions for JSON fields to be "
    "generated. Provide only JSON in response.")
DETECTION = (
    "You act as object-detection model. You must provide reasonable predictions. " + JSON_ONLY +
    'Expected structure of json: {"detections": [{"x_min": 0.1, "y_min": 0.2, "x_max": 0.3, "y_max": 0.4, '
    '"class_name": "my-class-X", "confidence": 0.7}]}{close}`my-class-X` must be one of the class names defined by '
    "user. All coordinates must be in range 0.0-1.0, representing percentage of image dimensions. `confidence` is a "
    "value in range 0.0-1.0 representing your confidence in prediction. You should detect all instances of classes "
    "provided by user.")
GEMINI_V4_DETECTION = (
    'Detect all objects in this image. Output a JSON list where each entry contains the 2D bounding box in the key '
    '"box_2d" and the text label in the key "label". The "box_2d" value must be [y_min, x_min, y_max, x_max]: '
    "integers between 0 and 1000, normalized to the image height and width. Return only the JSON list, with no extra "
    "text. Only use these labels: cat, dog")
STRUCTURE = {"count": "how many people"}
STRUCTURE_TEXT = 'Specification of requirements regarding output fields: \n{\n    "count": "how many people"\n}'
# task type -> its fields, and what Claude / Gemini are asked: (system instruction, the text beside the image).
TASKS: dict[str, dict[str, Any]] = {
    "unconstrained": {"prompt": "How many people?"},
    "ocr": {},
    "structured-answering": {"output_structure": STRUCTURE},
    "classification": {"classes": ["cat", "dog"]},
    "multi-label-classification": {"classes": ["cat", "dog"]},
    "visual-question-answering": {"prompt": "Is the door open?"},
    "caption": {},
    "detailed-caption": {},
    "object-detection": {"classes": ["cat", "dog"]},
}
CLAUDE_ASKS: dict[str, tuple[str | None, str | None]] = {
    "unconstrained": (None, "How many people?"),
    "ocr": (OCR, None),
    "structured-answering": (STRUCTURED, STRUCTURE_TEXT),
    "classification": (CLASSIFICATION, CLASSES_TEXT),
    "multi-label-classification": (MULTI_LABEL.replace("{gap}", ""), CLASSES_TEXT),
    "visual-question-answering": (VQA, "Question: Is the door open?"),
    "caption": (CAPTION + "short.", None),
    "detailed-caption": (CAPTION + "extensive.", None),
    "object-detection": (DETECTION.replace("{close}", " - remember to close top-level dictionary at the end. "),
                         CLASSES_TEXT),
}
GEMINI_ASKS: dict[str, tuple[str | None, str]] = {
    "unconstrained": (None, "How many people?"),
    "ocr": (OCR, "Read the text"),
    "structured-answering": (STRUCTURED, STRUCTURE_TEXT),
    "classification": (CLASSIFICATION, CLASSES_TEXT),
    "multi-label-classification": (MULTI_LABEL.replace("{gap}", " "), CLASSES_TEXT),
    "visual-question-answering": (VQA, "Question: Is the door open?"),
    "caption": (CAPTION + "short.", "Caption the image"),
    "detailed-caption": (CAPTION + "extensive.", "Caption the image"),
    "object-detection": (DETECTION.replace("{close}", ". "), CLASSES_TEXT),
}
JSON_TASKS = {"structured-answering", "classification", "multi-label-classification", "object-detection"}


@pytest.fixture
def apis() -> Iterator[FakeLlmApis]:
    """Anthropic's and Gemini's APIs of our own (and the others'), closed after the test."""
    server = FakeLlmApis()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def env(apis: FakeLlmApis) -> BlockEnvironment:
    """A worker's environment whose provider URLs are the fake's."""
    return make_env(apis)


@pytest.fixture
def frame() -> WorkflowImage:
    """640x480, an orange block on black."""
    return orange_block_frame()


def run(step: dict[str, Any], env: BlockEnvironment, frame: WorkflowImage, **values: Any) -> dict[str, Any]:
    """The step built with the user's own key (unless it names one), run on ``frame`` (``values``: what selectors
    would give)."""
    block, params = build_step({"images": "$inputs.image", "api_key": KEY, **step}, env)
    result: dict[str, Any] = block.run(**{**params, "images": frame, **values})
    return result


def gemini_answer(parts: list[dict[str, Any]], finish: str = "STOP") -> bytes:
    return json.dumps({"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish,
                                       "index": 0}]}).encode()


# ----------------------------------------------------------------------------- Claude v3


def test_claude_v3_sends_v2_s_request_to_anthropic_with_the_own_key(apis: FakeLlmApis, env: BlockEnvironment,
                                                                   frame: WorkflowImage) -> None:
    result = run({"type": CLAUDE_V3, "task_type": "object-detection", "classes": ["cat", "dog"],
                  "model_version": "claude-haiku-4-5", "max_image_size": 320, "temperature": 0.5}, env, frame)

    assert result == {"output": "claude says hi", "classes": ["cat", "dog"]}
    [request] = apis.requests
    assert request.path == "/v1/messages"
    assert (request.headers["x-api-key"], request.headers["anthropic-version"]) == (KEY, "2023-06-01")
    body = request.json()
    assert {name: body[name] for name in ("model", "max_tokens", "temperature")} == {
        "model": "claude-haiku-4-5-20251001", "max_tokens": 64000, "temperature": 0.5}, "the model's most tokens"
    assert "thinking" not in body
    image, text = body["messages"][0]["content"]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/jpeg"
    assert decoded(image["source"]["data"]).shape == (240, 320, 3), "640x480 fitted into 320x320"
    assert text == {"type": "text", "text": CLASSES_TEXT}
    assert KEY in env.secrets, "the executor redacts it from step errors"


@pytest.mark.parametrize("task", list(TASKS))
def test_claude_v3_asks_each_task_as_the_reference(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                   task: str) -> None:
    run({"type": CLAUDE_V3, "task_type": task, **TASKS[task]}, env, frame)

    body = apis.requests[0].json()
    system, text = CLAUDE_ASKS[task]
    assert body.get("system") == system
    [message] = body["messages"]
    assert message["content"][0]["type"] == "image"
    assert message["content"][1:] == ([{"type": "text", "text": text}] if text is not None else [])


@pytest.mark.parametrize(("fields", "max_tokens", "budget"), [
    ({"model_version": "claude-opus-4-1"}, 32000, 16000),  # half the model's most
    ({"model_version": "claude-fable-5"}, 128000, 64000),
    ({"thinking_budget_tokens": 2048, "max_tokens": 4096}, 4096, 2048),
])
def test_claude_v3_extended_thinking_sends_a_budget_and_no_temperature(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, fields: dict[str, Any], max_tokens: int,
        budget: int) -> None:
    apis.stop = "thinking"  # a thinking block first: the text block after it is the answer
    result = run({"type": CLAUDE_V3, "prompt": "Describe", "extended_thinking": True, **fields}, env, frame,
                 temperature=0.3)

    assert result["output"] == "claude says hi"
    body = apis.requests[0].json()
    assert (body["max_tokens"], body["thinking"]) == (max_tokens, {"type": "enabled", "budget_tokens": budget})
    assert "temperature" not in body


@pytest.mark.parametrize(("stop", "message"), [
    ("max_tokens", "Anthropic API stopped the answer at the max_tokens limit: raise max_tokens"),
    ("refusal", "Anthropic API stopped the answer for an unexpected reason: 'refusal'"),
])
def test_claude_v3_fails_the_step_when_the_answer_did_not_end(apis: FakeLlmApis, env: BlockEnvironment,
                                                              frame: WorkflowImage, stop: str, message: str) -> None:
    apis.stop = stop
    with pytest.raises(ProviderError, match=message):
        run({"type": CLAUDE_V3, "task_type": "ocr"}, env, frame)


# ----------------------------------------------------------------------------- Gemini v3 / v4


@pytest.mark.parametrize(("block", "task"), [  # v4's detection: test_gemini_v4_asks_for_box_2d_detections_with_a_schema
    *((GEMINI_V3, task) for task in TASKS), *((GEMINI_V4, task) for task in TASKS if task != "object-detection")])
def test_gemini_asks_each_task_as_the_reference(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                block: str, task: str) -> None:
    result = run({"type": block, "task_type": task, **TASKS[task]}, env, frame)

    assert result == {"output": "gemini hi", "classes": TASKS[task].get("classes")}
    [request] = apis.requests
    assert request.path == "/v1beta/models/gemini-3.1-pro-preview:generateContent", "no key in the URL"
    assert request.headers["x-goog-api-key"] == KEY
    body = request.json()
    system, text = GEMINI_ASKS[task]
    assert body.get("systemInstruction") == (None if system is None else {"role": "system",
                                                                          "parts": [{"text": system}]})
    assert body["contents"] == {"role": "user", "parts": [
        {"inline_data": {"mime_type": "image/jpeg", "data": jpeg_of(frame)}}, {"text": text}]}
    assert body["generationConfig"] == {
        "response_mime_type": "application/json" if task in JSON_TASKS else "text/plain", "candidate_count": 1}
    assert "tools" not in body


def test_gemini_v4_asks_for_box_2d_detections_with_a_schema(apis: FakeLlmApis, env: BlockEnvironment,
                                                            frame: WorkflowImage) -> None:
    apis.text["gemini"] = '[{"box_2d": [100, 200, 300, 400], "label": "dog"}]'
    result = run({"type": GEMINI_V4, "task_type": "object-detection", "classes": ["cat", "dog"],
                  "model_version": "gemini-2.5-flash", "max_tokens": 2000, "temperature": 0.2}, env, frame)

    assert result == {"output": apis.text["gemini"], "classes": ["cat", "dog"]}
    body = apis.requests[0].json()
    assert "systemInstruction" not in body
    assert body["contents"]["parts"][1] == {"text": GEMINI_V4_DETECTION}
    assert body["generationConfig"] == {
        "response_mime_type": "application/json", "candidate_count": 1, "max_output_tokens": 2000,
        "temperature": 0.2,
        "response_schema": {"type": "ARRAY", "items": {
            "type": "OBJECT",
            "properties": {"box_2d": {"type": "ARRAY", "items": {"type": "INTEGER", "minimum": 0, "maximum": 1000},
                                      "minItems": 4, "maxItems": 4},
                           "label": {"type": "STRING", "enum": ["cat", "dog"]}},
            "required": ["box_2d", "label"], "propertyOrdering": ["box_2d", "label"]}}}


@pytest.mark.parametrize("block", [GEMINI_V3, GEMINI_V4])
@pytest.mark.parametrize(("model", "sent", "config"), [
    ("gemini-3.7-flash", "gemini-3.7-flash", {"thinking_config": {"thinking_level": "high"}}),
    ("gemini-3.5-flash-lite", "gemini-3.5-flash-lite", {"thinking_config": {"thinking_level": "high"}}),
    ("gemini-2.5-flash", "gemini-2.5-flash", {"temperature": 0.7}),
    ("gemini-2.5-pro-preview-03-25", "gemini-2.5-pro", {"temperature": 0.7}),
])
def test_gemini_thinks_on_gemini_3_and_takes_a_temperature_on_older_models(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str, model: str, sent: str,
        config: dict[str, Any]) -> None:
    run({"type": block, "task_type": "caption", "model_version": model, "thinking_level": "high",
         "temperature": 0.7, "max_tokens": 300}, env, frame)

    assert apis.requests[0].path == f"/v1beta/models/{sent}:generateContent"
    assert apis.requests[0].json()["generationConfig"] == {
        "response_mime_type": "text/plain", "candidate_count": 1, "max_output_tokens": 300, **config}


@pytest.mark.parametrize("block", [GEMINI_V3, GEMINI_V4])
def test_google_code_execution_sends_the_tool_to_the_models_that_run_code(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str) -> None:
    apis.raw = gemini_answer([{"text": "Let me count.", "thought": True},
                              {"executableCode": {"language": "PYTHON", "code": "print(2 + 2)"}},
                              {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "4\n"}},
                              {"text": "There are 4 people."}, {"text": "Done."}])
    result = run({"type": block, "prompt": "Count the people", "model_version": "gemini-3-flash-preview",
                  "google_code_execution": True}, env, frame)

    assert result["output"] == "There are 4 people.", "the first text part, a thought summary skipped"
    assert apis.requests[0].json()["tools"] == [{"code_execution": {}}]
    run({"type": block, "prompt": "Count the people", "model_version": "gemini-2.5-pro",
         "google_code_execution": True}, env, frame)
    run({"type": block, "prompt": "Count the people", "model_version": "gemini-3-flash-preview"}, env, frame,
        google_code_execution=None)
    assert ["tools" in request.json() for request in apis.requests] == [True, False, False]


@pytest.mark.parametrize(("values", "expected"), [
    ({"google_code_execution": "yes"}, "google_code_execution must be true, false or null, got 'yes'"),
    ({"thinking_level": "medium"}, "thinking_level must be one of low, high, got 'medium'"),
    ({"temperature": 2.5}, "temperature must be a number from 0.0 to 2"),
    ({"max_tokens": 0}, "max_tokens must be a positive integer, got 0"),
])
def test_selector_values_are_checked_on_each_frame(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                   values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        run({"type": GEMINI_V4, "task_type": "ocr"}, env, frame, **values)
    assert apis.requests == []


@pytest.mark.parametrize(("finish", "message"), [
    ("MAX_TOKENS", "Google Gemini API stopped the answer at the max_tokens limit: raise max_tokens"),
    ("SAFETY", "Google Gemini API stopped the answer: finish reason 'SAFETY'"),
])
def test_gemini_fails_the_step_when_the_answer_did_not_end(apis: FakeLlmApis, env: BlockEnvironment,
                                                           frame: WorkflowImage, finish: str, message: str) -> None:
    apis.stop = finish
    with pytest.raises(ProviderError, match=message):
        run({"type": GEMINI_V3, "task_type": "ocr"}, env, frame)


@pytest.mark.parametrize("parts", [[], [{"executableCode": {"code": "x"}}], [{"text": "hmm", "thought": True}]])
def test_gemini_answering_no_text_part_is_a_step_error(apis: FakeLlmApis, env: BlockEnvironment,
                                                       frame: WorkflowImage, parts: list[dict[str, Any]]) -> None:
    apis.raw = gemini_answer(parts)
    with pytest.raises(ProviderError, match=r"^Google Gemini API answered with no text in its candidate$"):
        run({"type": GEMINI_V4, "task_type": "ocr"}, env, frame)


# ----------------------------------------------------------------------------- keys and errors


@pytest.mark.parametrize(("block", "name"), [(CLAUDE_V3, "Anthropic"), (GEMINI_V3, "Google Gemini"),
                                             (GEMINI_V4, "Google Gemini")])
@pytest.mark.parametrize(("status", "reason"), [(401, "Unauthorized"), (429, "Too Many Requests"),
                                                (503, "Service Unavailable")])
def test_an_http_error_names_the_provider_and_status_never_the_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str, name: str, status: int,
        reason: str, caplog: pytest.LogCaptureFixture) -> None:
    apis.status = status
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as failure:
        run({"type": block, "task_type": "ocr"}, env, frame)

    message = str(failure.value)
    assert message.startswith(f"{name} API answered HTTP {status} {reason}: "), message
    assert KEY not in message and KEY not in caplog.text
    assert message.endswith(": Incorrect API key provided: ***" if status == 401 else f": error {status}")


@pytest.mark.parametrize(("block", "name"), [(CLAUDE_V3, "Anthropic"), (GEMINI_V4, "Google Gemini")])
@pytest.mark.parametrize("key", ["rf_key:account", "rf_key:user:42"])
def test_a_roboflow_proxy_key_from_a_selector_fails_the_step_before_any_request(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str, name: str, key: str) -> None:
    with pytest.raises(ValueError, match=f"Roboflow's API proxy, which this manager does not have; give your own "
                                         f"{name} API key"):
        run({"type": block, "task_type": "ocr"}, env, frame, api_key=key)
    assert apis.requests == []


@pytest.mark.parametrize(("block", "header"), [(CLAUDE_V3, "x-api-key"), (GEMINI_V3, "x-goog-api-key")])
def test_the_key_from_a_parameter_is_a_secret_sent_only_in_its_header(apis: FakeLlmApis, env: BlockEnvironment,
                                                                      frame: WorkflowImage, block: str,
                                                                      header: str) -> None:
    step, params = build_step({"type": block, "images": "$inputs.image", "task_type": "ocr",
                               "api_key": "$inputs.provider_key"}, env, provider_key=KEY)
    assert KEY in env.secrets, "registered as the step is built"
    step.run(**{**params, "images": frame})

    [request] = apis.wait_for(1)
    assert request.headers[header] == KEY
    assert KEY not in request.path and KEY not in request.body.decode()
