"""open_ai@v4 and open_ai@v5 against a fake of OpenAI's Responses API on 127.0.0.1: the request each task type sends
(the reference's instructions and texts, the frame as a JPEG or, for v5's object detection, a scaled-down PNG),
reasoning effort per model, max_output_tokens, temperature, the text read from the answer's message items, every
failure as a step error naming OpenAI and never the key, and a batch's crops asked max_concurrent_requests at a
time."""

import base64
import json
import logging
import re
import threading
import time
from typing import Any

import cv2
import numpy as np
import pytest

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.llm.client import ProviderError
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import WorkflowImage
from tests.support.llm_providers import FakeLlmApis
from tests.worker.workflows.hosted_support import build_step, make_env, orange_block_frame
from tests.worker.workflows.visualization_support import workflow_image

V4 = "roboflow_core/open_ai@v4"
V5 = "roboflow_core/open_ai@v5"
BOTH = pytest.mark.parametrize("block", [V4, V5])
KEY = "sk-test-responses-0123456789-secret"
CLASSES_TEXT = "List of all classes to be recognised by model: cat, dog"

# The reference's texts (roboflow/inference: core_steps/models/foundation/openai/v4.py and v5.py), word for word.
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
VQA = ("You act as Visual Question Answering model. Your task is to provide answer to question submitted by user. If "
       "this is open-question - answer with few sentences, for ABCD question, return only the indicator of the "
       "answer.")
OCR = ("You act as OCR model. Your task is to read text from the image and return it in paragraphs representing the "
       "structure of texts in the image. You should only return recognised text, nothing else.")
CAPTION = "You act as image caption model. Your task is to provide description of the image. Caption should be "
STRUCTURED = (
    "You are supposed to produce responses in JSON wrapped in Markdown markers: ```json\nyour-response\n```. User is "
    "to provide you dictionary with keys and values. Each key must be present in your response. Values in user "
    "dictionary represent descriptions for JSON fields to be generated. Provide only JSON Markdown in response.")
DETECTION = (
    "You act as object-detection model. You must provide reasonable predictions. You are only allowed to produce JSON "
    "document. Expected structure of json: {\"detections\": [{\"x_min\": 0.1, \"y_min\": 0.2, \"x_max\": 0.3, "
    "\"y_max\": 0.4, \"class_name\": \"my-class-X\", \"confidence\": 0.7}]}. `my-class-X` must be one of the class "
    "names defined by user. All coordinates must be in range 0.0-1.0, representing percentage of image dimensions. "
    "`confidence` is a value in range 0.0-1.0 representing your confidence in prediction. You should detect all "
    "instances of classes provided by user.")
PLAIN_DETECTION = (
    "Detect all objects in this image. Output a JSON list where each entry contains the 2D bounding box in the key "
    "\"box_2d\" and the text label in the key \"label\". The \"box_2d\" value must be [x_min, y_min, x_max, y_max]: "
    "the top-left and bottom-right corners in absolute pixel coordinates of the {size} pixel image. Return only the "
    "JSON list, with no extra text. Only use these labels: cat, dog")
STRUCTURED_DETECTION = (
    "Detect all objects in this image. Output JSON with the key \"detections\" holding a list where each entry "
    "contains the 2D bounding box in the key \"box_2d\" and the text label in the key \"label\". The \"box_2d\" "
    "value must be [x_min, y_min, x_max, y_max]: the top-left and bottom-right corners in absolute pixel coordinates "
    "of the {size} pixel image. Only use these labels: cat, dog")
DETECTIONS_SCHEMA = {"format": {"type": "json_schema", "name": "detections", "strict": True, "schema": {
    "type": "object",
    "properties": {"detections": {"type": "array", "items": {
        "type": "object",
        "properties": {"label": {"type": "string"},
                       "box_2d": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4}},
        "required": ["label", "box_2d"], "additionalProperties": False}}},
    "required": ["detections"], "additionalProperties": False}}}


@pytest.fixture
def env(apis: FakeLlmApis) -> BlockEnvironment:
    return make_env(apis)


@pytest.fixture
def frame() -> WorkflowImage:
    return orange_block_frame()


def run(step: dict[str, Any], env: BlockEnvironment, frame: WorkflowImage, **values: Any) -> dict[str, Any]:
    """``step`` built with the key at INIT and called on ``frame``; ``values`` stand for what selectors give."""
    block, params = build_step({"images": "$inputs.image", "api_key": KEY, **step}, env)
    result: dict[str, Any] = block.run(**{**params, "images": frame, **values})
    return result


def jpeg_url(frame: WorkflowImage) -> str:
    data = base64.b64encode(cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()).decode()
    return f"data:image/jpeg;base64,{data}"


def png_of(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    data = base64.b64decode(url.removeprefix("data:image/png;base64,"))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def body_of(apis: FakeLlmApis) -> dict[str, Any]:
    [request] = apis.requests
    assert request.provider == "openai_responses" and request.path == "/v1/responses"
    body: dict[str, Any] = request.json()
    return body


# ----------------------------------------------------------------------------- requests


@BOTH
def test_classification_sends_instructions_the_classes_then_the_frame_with_the_bearer_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str) -> None:
    apis.text["openai_responses"] = '```json\n{"class_name": "cat", "confidence": 0.9}\n```'
    result = run({"type": block, "task_type": "classification", "classes": ["cat", "dog"]}, env, frame)

    assert result == {"output": apis.text["openai_responses"], "classes": ["cat", "dog"]}
    assert apis.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert body_of(apis) == {  # nothing the step left null: no max_output_tokens, temperature or reasoning
        "model": "gpt-5.1", "instructions": CLASSIFICATION,
        "input": [{"role": "user", "content": [
            {"type": "input_text", "text": CLASSES_TEXT},
            {"type": "input_image", "image_url": jpeg_url(frame), "detail": "auto"}]}]}
    assert KEY in env.secrets, "the executor and the logs redact it"
    assert KEY not in json.dumps(body_of(apis)), "only in the header"


@BOTH
@pytest.mark.parametrize(("task", "fields", "instructions", "text"), [
    ("unconstrained", {"prompt": "How many people?"}, None, "How many people?"),
    ("ocr", {}, OCR, None),
    ("visual-question-answering", {"prompt": "Is the door open?"}, VQA, "Question: Is the door open?"),
    ("caption", {}, CAPTION + "short.", None),
    ("detailed-caption", {}, CAPTION + "extensive.", None),
    ("multi-label-classification", {"classes": ["cat", "dog"]}, MULTI_LABEL, CLASSES_TEXT),
    ("structured-answering", {"output_structure": {"count": "how many people"}}, STRUCTURED,
     'Specification of requirements regarding output fields: \n{\n    "count": "how many people"\n}'),
])
def test_each_task_type_sends_the_reference_s_instructions_and_text(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str, task: str,
        fields: dict[str, Any], instructions: str | None, text: str | None) -> None:
    run({"type": block, "task_type": task, "image_detail": "low", **fields}, env, frame)

    body = body_of(apis)
    assert body.get("instructions") == instructions
    assert ("instructions" in body) is (instructions is not None)
    [message] = body["input"]
    picture = {"type": "input_image", "image_url": jpeg_url(frame), "detail": "low"}
    assert message == {"role": "user", "content": ([{"type": "input_text", "text": text}] if text else []) + [picture]}


def test_v4_object_detection_asks_for_fractions_with_the_frame_as_a_jpeg(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    run({"type": V4, "task_type": "object-detection", "classes": ["cat", "dog"], "model_version": "gpt-5.6-sol",
         "image_detail": "high"}, env, frame)

    body = body_of(apis)
    assert body["instructions"] == DETECTION and "text" not in body
    assert body["input"][0]["content"] == [{"type": "input_text", "text": CLASSES_TEXT},
                                           {"type": "input_image", "image_url": jpeg_url(frame), "detail": "high"}]


@pytest.mark.parametrize("model", ["gpt-5.6-sol", "gpt-5.5", "gpt-5.4-mini", "gpt-5.2"])
def test_v5_structured_absolute_detection_sends_the_png_then_the_text_and_a_json_schema(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, model: str) -> None:
    run({"type": V5, "task_type": "object-detection", "classes": ["cat", "dog"], "model_version": model,
         "image_detail": "high"}, env, frame)

    body = body_of(apis)
    assert "instructions" not in body
    assert body["text"] == DETECTIONS_SCHEMA
    picture, asking = body["input"][0]["content"]
    assert set(picture) == {"type", "image_url"}, "no detail hint"
    assert np.array_equal(png_of(picture["image_url"]), frame.image), "lossless, not scaled (640 px)"
    assert asking == {"type": "input_text", "text": STRUCTURED_DETECTION.format(size="640x480")}


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-nano", "gpt-5.4-nano"])
def test_v5_plain_absolute_detection_asks_for_a_bare_list(apis: FakeLlmApis, env: BlockEnvironment,
                                                           frame: WorkflowImage, model: str) -> None:
    run({"type": V5, "task_type": "object-detection", "classes": ["cat", "dog"], "model_version": model}, env, frame)

    body = body_of(apis)
    assert "instructions" not in body and "text" not in body
    picture, asking = body["input"][0]["content"]
    assert picture["type"] == "input_image" and "detail" not in picture
    assert asking == {"type": "input_text", "text": PLAIN_DETECTION.format(size="640x480")}


@pytest.mark.parametrize("model", ["gpt-5.1", "gpt-5", "gpt-5-mini", "gpt-5-nano"])
def test_v5_normalized_legacy_detection_keeps_v4_s_instructions_with_a_png(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, model: str) -> None:
    run({"type": V5, "task_type": "object-detection", "classes": ["cat", "dog"], "model_version": model}, env, frame)

    body = body_of(apis)
    assert body["instructions"] == DETECTION and "text" not in body
    asking, picture = body["input"][0]["content"]
    assert asking == {"type": "input_text", "text": CLASSES_TEXT}
    assert set(picture) == {"type", "image_url"} and np.array_equal(png_of(picture["image_url"]), frame.image)


def test_v5_asks_a_model_it_does_not_list_in_the_newest_style(apis: FakeLlmApis, env: BlockEnvironment,
                                                               frame: WorkflowImage) -> None:
    run({"type": V5, "task_type": "object-detection", "classes": ["cat", "dog"]}, env, frame,
        model_version="gpt-7-hypothetical")  # a step's output may name any model

    body = body_of(apis)
    assert body["model"] == "gpt-7-hypothetical" and body["text"] == DETECTIONS_SCHEMA


def test_v5_scales_a_large_frame_down_to_a_2048_px_long_side_and_says_so(apis: FakeLlmApis, env: BlockEnvironment
                                                                         ) -> None:
    pixels = np.zeros((1000, 2100, 3), np.uint8)
    cv2.circle(pixels, (1050, 500), 300, (40, 180, 250), -1)
    run({"type": V5, "task_type": "object-detection", "classes": ["cat", "dog"], "model_version": "gpt-4.1"}, env,
        workflow_image(pixels))

    picture, asking = body_of(apis)["input"][0]["content"]
    sent = png_of(picture["image_url"])
    assert sent.shape == (975, 2048, 3), "1000 * 2048 / 2100 = 975.2"
    assert np.array_equal(sent, cv2.resize(pixels, (2048, 975), interpolation=cv2.INTER_LANCZOS4))
    assert "of the 2048x975 pixel image" in asking["text"]


# ----------------------------------------------------------------------------- reasoning, tokens, temperature


@BOTH
@pytest.mark.parametrize(("model", "effort", "sent"), [
    ("gpt-5.1", "high", {"effort": "high"}),
    ("gpt-5.1", "none", {"effort": "none"}),
    ("gpt-5", "minimal", {"effort": "minimal"}),
    ("gpt-5.6-terra", "xhigh", {"effort": "xhigh"}),
    ("gpt-4o", "high", None),  # does not reason: not sent
    ("gpt-4.1-mini", "minimal", None),
    ("gpt-5.1", None, None),
])
def test_reasoning_effort_is_sent_to_the_models_that_reason(apis: FakeLlmApis, env: BlockEnvironment,
                                                            frame: WorkflowImage, block: str, model: str,
                                                            effort: str | None, sent: dict[str, str] | None) -> None:
    run({"type": block, "task_type": "caption", "model_version": model, "reasoning_effort": effort}, env, frame)

    body = body_of(apis)
    assert body["model"] == model
    assert body.get("reasoning") == sent and ("reasoning" in body) is (sent is not None)


@BOTH
def test_an_effort_a_step_gives_is_checked_on_each_frame(apis: FakeLlmApis, env: BlockEnvironment,
                                                         frame: WorkflowImage, block: str) -> None:
    with pytest.raises(ValueError, match=re.escape("model 'gpt-5.1' does not take reasoning_effort 'minimal' (it "
                                                   "takes none, low, medium, high)")):
        run({"type": block, "task_type": "ocr"}, env, frame, reasoning_effort="minimal")
    with pytest.raises(ValueError, match="reasoning_effort must be a string or null, got int"):
        run({"type": block, "task_type": "ocr"}, env, frame, reasoning_effort=3)
    assert apis.requests == []
    run({"type": block, "task_type": "ocr"}, env, frame, model_version="gpt-7-hypothetical", reasoning_effort="ultra")
    assert "reasoning" not in body_of(apis), "a model the manifest does not list: not sent, as the reference"


@BOTH
def test_max_tokens_becomes_max_output_tokens_and_the_temperature_is_sent(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str) -> None:
    run({"type": block, "task_type": "ocr", "model_version": "gpt-4.1", "max_tokens": 16, "temperature": 0.3}, env,
        frame)

    body = body_of(apis)
    assert (body["max_output_tokens"], body["temperature"]) == (16, 0.3)
    assert "max_tokens" not in body and "max_completion_tokens" not in body


@BOTH
@pytest.mark.parametrize(("values", "expected"), [
    ({"max_tokens": 15}, "max_tokens must be an integer >= 16 or null, got 15"),
    ({"temperature": 2.5}, "temperature must be a number from 0.0 to 2"),
    ({"image_detail": "ultra"}, "image_detail must be one of auto, high, low"),
    ({"classes": []}, "classes must name at least one class for task_type 'classification'"),
    ({"model_version": ""}, "model_version must be a non-empty string"),
    ({"api_key": "rf_key:user:42"}, "Roboflow's API proxy, which this manager does not have; give your own OpenAI "
                                    "API key"),
])
def test_values_are_checked_before_anything_is_sent(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                                    block: str, values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        run({"type": block, "task_type": "classification", "classes": ["cat"]}, env, frame, **values)
    assert apis.requests == []


# ----------------------------------------------------------------------------- answers


@BOTH
def test_the_answer_is_the_message_s_output_text_parts_joined(apis: FakeLlmApis, env: BlockEnvironment,
                                                              frame: WorkflowImage, block: str) -> None:
    apis.text["openai_responses"], apis.stop = "Part 1 and Part 2", "split"  # after a reasoning item
    assert run({"type": block, "task_type": "ocr"}, env, frame)["output"] == "Part 1 and Part 2"


@BOTH
@pytest.mark.parametrize(("stop", "expected"), [
    ("max_output_tokens", "OpenAI API stopped the answer at the max_tokens limit: raise max_tokens for a complete "
                          "answer"),
    ("content_filter", "OpenAI API answered incompletely: content_filter"),
    ("failed", "OpenAI API request failed: server_error: The model failed"),
])
def test_an_unfinished_answer_fails_the_step(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                             block: str, stop: str, expected: str) -> None:
    apis.stop = stop
    with pytest.raises(ProviderError, match=f"^{re.escape(expected)}$"):
        run({"type": block, "task_type": "ocr", "max_tokens": 16}, env, frame)


@pytest.mark.parametrize(("answer", "expected"), [
    ({"status": "cancelled", "output": []}, "OpenAI API request was cancelled"),
    ({"status": "expired", "output": []}, "OpenAI API answered with an unexpected status: expired"),
    ({"status": "completed", "output": []}, "OpenAI API answered with no text content"),
    ({"status": "completed"}, "OpenAI API answered with no text content"),
    ({"status": "completed", "output": [{"type": "message", "content": [
        {"type": "refusal", "refusal": "I can't help with that."}]}]}, "OpenAI API answered with no text content"),
    ({"status": "completed", "output": [{"type": "reasoning", "summary": [{"type": "output_text", "text": "x"}]}]},
     "OpenAI API answered with no text content"),
    ({"status": "incomplete", "incomplete_details": None}, "OpenAI API answered incompletely: None"),
])
def test_answers_without_text_are_step_errors(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                              answer: dict[str, Any], expected: str) -> None:
    apis.raw = json.dumps(answer).encode()
    with pytest.raises(ProviderError, match=f"^{re.escape(expected)}$"):
        run({"type": V4, "task_type": "ocr"}, env, frame)


def test_a_message_without_status_is_read_as_the_reference_reads_it(apis: FakeLlmApis, env: BlockEnvironment,
                                                                    frame: WorkflowImage) -> None:
    apis.raw = json.dumps({"output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}]}
                          ).encode()
    assert run({"type": V5, "task_type": "ocr"}, env, frame)["output"] == "hi"


@BOTH
@pytest.mark.parametrize(("status", "reason"), [(401, "Unauthorized"), (429, "Too Many Requests"),
                                                (500, "Internal Server Error")])
def test_an_http_error_names_openai_and_the_status_never_the_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str, status: int, reason: str,
        caplog: pytest.LogCaptureFixture) -> None:
    apis.status = status
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as failure:
        run({"type": block, "task_type": "ocr"}, env, frame)

    message = str(failure.value)
    assert message.startswith(f"OpenAI API answered HTTP {status} {reason}"), message
    assert KEY not in message and KEY not in caplog.text
    if status == 401:  # OpenAI's own explanation, which echoed the key
        assert message.endswith(": Incorrect API key provided: ***")


def test_a_failed_answer_echoing_the_key_is_redacted(apis: FakeLlmApis, env: BlockEnvironment,
                                                     frame: WorkflowImage) -> None:
    apis.raw = json.dumps({"status": "failed", "error": {"code": "invalid_api_key",
                                                         "message": f"key {KEY} was revoked"}}).encode()
    with pytest.raises(ProviderError) as failure:
        run({"type": V4, "task_type": "ocr"}, env, frame)
    assert str(failure.value) == "OpenAI API request failed: invalid_api_key: key *** was revoked"


def test_a_malformed_answer_and_a_timeout_are_step_errors(apis: FakeLlmApis, frame: WorkflowImage) -> None:
    env = make_env(apis, llm_api_timeout=0.3)
    apis.raw = b'{"output": [ {"oops"'
    with pytest.raises(ProviderError, match=r"^OpenAI API answered HTTP 200 with something other than JSON$"):
        run({"type": V5, "task_type": "ocr"}, env, frame)
    apis.raw, apis.delay = None, 3.0
    with pytest.raises(ProviderError, match=r"^OpenAI API did not answer within 0\.3 s$"):
        run({"type": V5, "task_type": "ocr"}, env, frame)


def test_the_operator_s_url_is_called_under_the_outbound_policy(apis: FakeLlmApis, frame: WorkflowImage) -> None:
    with pytest.raises(ValueError, match="is not among the hosts sinks may reach"):
        run({"type": V4, "task_type": "ocr"}, make_env(apis, allowed_hosts=("api.openai.com",)), frame)
    assert apis.requests == []
    run({"type": V4, "task_type": "ocr"}, make_env(apis, openai_api_url=f"{apis.url}/v1/"), frame)
    assert apis.requests[0].path == "/v1/responses"


# ----------------------------------------------------------------------------- in a workflow


def slicing_workflow(block: str, concurrency: int | None) -> dict[str, Any]:
    return {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"},
                                         {"type": "WorkflowParameter", "name": "key"}],
            "steps": [{"type": "roboflow_core/image_slicer@v1", "name": "slicer", "image": "$inputs.image",
                       "slice_width": 320, "slice_height": 240, "overlap_ratio_width": 0.0,
                       "overlap_ratio_height": 0.0},
                      {"type": block, "name": "ask", "images": "$steps.slicer.slices", "task_type": "caption",
                       "api_key": "$inputs.key", "max_concurrent_requests": concurrency}],
            "outputs": [{"type": "JsonField", "name": "answers", "selector": "$steps.ask.output"}]}


def ask_in_flight(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, block: str,
                  concurrency: int) -> int:
    """The four crops asked with ``max_concurrent_requests`` = ``concurrency``: how many requests were in flight
    before the first answer (each answer waits 1.5 s)."""
    apis.requests.clear()
    apis.delay = 1.5
    executor = WorkflowExecutor(compile_workflow(slicing_workflow(block, concurrency), parameters={"key": KEY}),
                                REGISTRY, env)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(executor.run(frame)), daemon=True)
    started = time.monotonic()
    worker.start()
    apis.wait_for(min(concurrency, 4), timeout=1.4)
    time.sleep(max(0.0, 1.2 - (time.monotonic() - started)))
    in_flight = len(apis.requests)
    worker.join(10)
    [(outputs, errors)] = results
    assert errors == [] and outputs == {"answers": ["responses says hi"] * 4}
    assert len(apis.requests) == 4
    return in_flight


@BOTH
@pytest.mark.parametrize("concurrency", [4, 2])
def test_a_batch_s_crops_are_asked_max_concurrent_requests_at_a_time(apis: FakeLlmApis, env: BlockEnvironment,
                                                                      frame: WorkflowImage, block: str,
                                                                      concurrency: int) -> None:
    assert ask_in_flight(apis, env, frame, block, concurrency) == concurrency


@BOTH
def test_a_failing_step_s_error_names_openai_not_the_key(apis: FakeLlmApis, env: BlockEnvironment,
                                                         frame: WorkflowImage, block: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    apis.status = 401
    caplog.set_level(logging.DEBUG)
    executor = WorkflowExecutor(compile_workflow(slicing_workflow(block, None), parameters={"key": KEY}), REGISTRY,
                                env)
    outputs, errors = executor.run(frame)

    assert outputs == {"answers": [None] * 4} and len(errors) == 4
    assert {(e.step, e.error_type) for e in errors} == {("ask", "ProviderError")}
    assert all(e.error_message == "OpenAI API answered HTTP 401 Unauthorized: Incorrect API key provided: ***"
               for e in errors)
    assert KEY not in caplog.text


def test_v5_s_detections_reach_vlm_as_detector_in_the_frame_s_pixels(apis: FakeLlmApis, env: BlockEnvironment
                                                                      ) -> None:
    """The structured-absolute answer is in pixels of the 2048 px image sent; the parser maps it back."""
    apis.text["openai_responses"] = json.dumps({"detections": [{"label": "dog", "box_2d": [512, 243, 1024, 487]}]})
    definition = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": V5, "name": "gpt", "images": "$inputs.image", "task_type": "object-detection",
                   "classes": ["cat", "dog"], "api_key": KEY, "model_version": "gpt-5.5"},
                  {"type": "roboflow_core/vlm_as_detector@v2", "name": "parser", "image": "$inputs.image",
                   "vlm_output": "$steps.gpt.output", "classes": "$steps.gpt.classes", "model_type": "openai",
                   "task_type": "object-detection"}],
        "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.parser.predictions"},
                    {"type": "JsonField", "name": "error", "selector": "$steps.parser.error_status"}],
    }
    outputs, errors = WorkflowExecutor(compile_workflow(definition), REGISTRY, env).run(
        workflow_image(np.zeros((1000, 2100, 3), np.uint8)))

    assert errors == [] and outputs["error"] is False
    [prediction] = outputs["predictions"]["predictions"]
    assert (prediction["class"], prediction["class_id"]) == ("dog", 1)
    # [512, 243, 1024, 487] of 2048x975 -> [525, 249, 1050, 499.5] of 2100x1000: centre and size, whole pixels
    assert prediction["x"] == pytest.approx(787.5, abs=1) and prediction["width"] == pytest.approx(525, abs=1)
    assert prediction["y"] == pytest.approx(374.5, abs=1) and prediction["height"] == pytest.approx(251, abs=1)
    assert "png" in apis.requests[0].json()["input"][0]["content"][0]["image_url"][:20]
