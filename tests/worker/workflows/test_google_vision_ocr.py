"""google_vision_ocr@v1 against a fake of Google Cloud Vision's images:annotate on 127.0.0.1
(tests/support/llm_providers.py, its answers written by tests/support/google_vision.py): the request (the image as
a base64 JPEG, the feature of ocr_type, the language hints, the key in a header only), the answer read into text,
language and detections in the API's order with their boxes, an image without text, the API's errors as step errors
naming it and never the key, and the detections through the blocks that take a detector's."""

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
from services.core.workflows.compiler import compile_workflow
from services.worker.settings import WorkerSettings
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment, SinkSettings
from services.worker.workflows.blocks.llm.client import ProviderError
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import (
    CLASS_NAME,
    IMAGE_DIMENSIONS,
    IMAGE_SIZE,
    PARENT_ID,
    PREDICTION_TYPE,
    ROOT_PARENT_ID,
    WorkflowImage,
    to_root_coordinates,
)
from tests.support.google_vision import TextBlock, annotate_response
from tests.support.llm_providers import FakeLlmApis
from tests.worker.workflows.hosted_support import build_step, make_env
from tests.worker.workflows.visualization_support import workflow_image

KEY = "AIza-test-0123456789-secret"
TYPE = "roboflow_core/google_vision_ocr@v1"
PLATE = TextBlock.box("KX 4821", (100, 300, 260, 340))
CORNER = TextBlock.box("EXIT", (0, 0, 80, 30))  # its top-left vertex is {} in the API's JSON
# A tilted block of two paragraphs: the box is the extent of its four corners.
TILTED = TextBlock((("NO", "PARKING"), ("AT", "ANY", "TIME")), ((400, 100), (600, 140), (590, 200), (390, 160)))


@pytest.fixture
def env(apis: FakeLlmApis) -> BlockEnvironment:
    return make_env(apis)


@pytest.fixture
def frame() -> WorkflowImage:
    pixels = np.full((480, 640, 3), 40, np.uint8)
    cv2.putText(pixels, "KX 4821", (105, 335), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
    return workflow_image(pixels)


def build(step: dict[str, Any], env: BlockEnvironment, **parameters: Any) -> tuple[Any, dict[str, Any]]:
    return build_step({"type": TYPE, "image": "$inputs.image", **step}, env, "vision", "text", **parameters)


def run(step: dict[str, Any], env: BlockEnvironment, picture: WorkflowImage, **values: Any) -> dict[str, Any]:
    block, params = build({"api_key": KEY, "ocr_type": "text_detection", **step}, env)
    result: dict[str, Any] = block.run(**{**params, "image": picture, **values})
    return result


def jpeg_of(image: WorkflowImage, quality: int) -> str:
    return base64.b64encode(cv2.imencode(".jpg", image.image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
                            .tobytes()).decode()


# ----------------------------------------------------------------------------- the request


def test_text_detection_sends_the_image_and_the_feature_with_the_key_in_a_header_only(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    run({}, env, frame)

    [request] = apis.requests
    assert request.path == "/v1/images:annotate", "no key in the URL"
    assert request.headers["x-goog-api-key"] == KEY
    assert request.json() == {"requests": [{"image": {"content": jpeg_of(frame, 95)},
                                            "features": [{"type": "TEXT_DETECTION"}]}]}
    sent = cv2.imdecode(np.frombuffer(base64.b64decode(request.json()["requests"][0]["image"]["content"]), np.uint8),
                        cv2.IMREAD_COLOR)
    assert sent.shape == frame.image.shape, "the image's own size: the boxes come back in its pixels"
    assert json.dumps(request.json()).count(KEY) == 0
    assert KEY in env.secrets, "the executor redacts it from step errors"


def test_document_text_detection_sends_the_language_hints(apis: FakeLlmApis, env: BlockEnvironment,
                                                          frame: WorkflowImage) -> None:
    run({"ocr_type": "ocr_text_detection", "language_hints": ["en", "de"]}, env, frame)

    [request] = apis.requests[0].json()["requests"]
    assert request["features"] == [{"type": "DOCUMENT_TEXT_DETECTION"}]
    assert request["imageContext"] == {"languageHints": ["en", "de"]}


def test_no_language_hints_no_image_context_and_an_empty_list_is_sent_as_given(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    run({"language_hints": None}, env, frame)
    run({"language_hints": []}, env, frame)

    first, second = (request.json()["requests"][0] for request in apis.requests)
    assert "imageContext" not in first
    assert second["imageContext"] == {"languageHints": []}


# ----------------------------------------------------------------------------- the answer


def test_the_answer_is_read_into_text_language_and_a_detection_per_block_in_the_api_s_order(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.vision = annotate_response([PLATE, CORNER, TILTED], locale="en")

    result = run({}, env, frame)

    assert set(result) == {"text", "language", "predictions"}
    assert result["text"] == "KX 4821\nEXIT\nNO PARKING\nAT ANY TIME\n"
    assert result["language"] == "en"
    predictions = result["predictions"]
    assert predictions.xyxy.tolist() == [[100, 300, 260, 340], [0, 0, 80, 30], [390, 100, 600, 200]]
    assert list(predictions.data[CLASS_NAME]) == ["KX 4821", "EXIT", "NO PARKING AT ANY TIME"]
    assert predictions.class_id.tolist() == [0, 1, 2], "each block its own class id, as the reference's"
    assert predictions.confidence.tolist() == [1.0, 1.0, 1.0], "TEXT_DETECTION gives no confidence"
    assert list(predictions.data[PREDICTION_TYPE]) == ["ocr"] * 3
    assert list(predictions.data[PARENT_ID]) == [frame.parent_id] * 3
    assert predictions.data[IMAGE_DIMENSIONS].tolist() == [[480, 640]] * 3
    assert len(set(predictions.data["detection_id"])) == 3
    serialised = serialise(predictions)
    assert serialised["image"] == {"width": 640, "height": 480}
    assert [(p["class"], p["class_id"], p["x"], p["y"], p["width"], p["height"]) for p in
            serialised["predictions"]] == [("KX 4821", 0, 180, 320, 160, 40), ("EXIT", 1, 40, 15, 80, 30),
                                           ("NO PARKING AT ANY TIME", 2, 495, 150, 210, 100)]


def test_document_blocks_keep_their_confidence_and_their_order(apis: FakeLlmApis, env: BlockEnvironment,
                                                               frame: WorkflowImage) -> None:
    apis.vision = annotate_response([TextBlock.box("LOW", (10, 10, 50, 30), 0.62),
                                     TextBlock.box("HIGH", (10, 60, 50, 80), 0.97)], locale="de")

    result = run({"ocr_type": "ocr_text_detection"}, env, frame)

    predictions = result["predictions"]
    assert list(predictions.data[CLASS_NAME]) == ["LOW", "HIGH"], "not sorted by confidence"
    assert predictions.confidence.tolist() == pytest.approx([0.62, 0.97])
    assert (result["text"], result["language"]) == ("LOW\nHIGH\n", "de")


def test_an_image_without_text_gives_empty_text_and_no_detections(apis: FakeLlmApis, env: BlockEnvironment,
                                                                  frame: WorkflowImage) -> None:
    apis.vision = annotate_response([])  # the API's {"responses": [{}]}

    result = run({}, env, frame)

    assert (result["text"], result["language"], len(result["predictions"])) == ("", "", 0)
    assert result["predictions"].metadata[IMAGE_SIZE] == (480, 640), "empty detections keep their image's size"
    assert serialise(result["predictions"]) == {"image": {"width": 640, "height": 480}, "predictions": []}


def test_a_text_annotation_without_locale_or_pages_reads_as_far_as_it_goes(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.vision = {"responses": [{"textAnnotations": [{"description": "KX 4821\n"}]}]}

    result = run({}, env, frame)

    assert (result["text"], result["language"], len(result["predictions"])) == ("KX 4821\n", "", 0)


def test_on_a_crop_the_boxes_are_the_crop_s_and_carry_its_place_in_the_frame(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    crop = frame.crop(80, 280, 300, 360, crop_id="plate-crop")
    apis.vision = annotate_response([TextBlock.box("KX 4821", (20, 20, 180, 60))], width=220, height=80)

    result = run({}, env, crop)

    sent = apis.requests[0].json()["requests"][0]["image"]["content"]
    assert sent == jpeg_of(crop, 95), "the crop's pixels only"
    predictions = result["predictions"]
    assert predictions.xyxy.tolist() == [[20, 20, 180, 60]]
    assert (predictions.data[PARENT_ID][0], predictions.data[ROOT_PARENT_ID][0]) == ("plate-crop", frame.parent_id)
    assert to_root_coordinates(predictions).xyxy.tolist() == [[100, 300, 260, 340]]


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize(("status", "reason"), [(400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden"),
                                                (429, "Too Many Requests"), (500, "Internal Server Error")])
def test_an_http_error_names_the_api_and_status_never_the_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, status: int, reason: str,
        caplog: pytest.LogCaptureFixture) -> None:
    apis.status = status
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as failure:
        run({}, env, frame)

    message = str(failure.value)
    assert message.startswith(f"Google Cloud Vision API answered HTTP {status} {reason}"), message
    assert KEY not in message and KEY not in caplog.text
    if status == 401:  # Google's own explanation, which echoed the key
        assert message.endswith(": Incorrect API key provided: ***")


def test_an_error_the_api_reports_for_the_image_fails_the_step(apis: FakeLlmApis, env: BlockEnvironment,
                                                               frame: WorkflowImage) -> None:
    apis.vision = {"responses": [{"error": {"code": 3, "message": f"Bad image data (key {KEY})."}}]}

    with pytest.raises(ProviderError) as failure:
        run({}, env, frame)

    assert str(failure.value) == ("Google Cloud Vision API could not annotate the image (error code 3): Bad image "
                                  "data (key ***).")


@pytest.mark.parametrize(("raw", "match"), [
    (b'{"responses": [ {"oops"', "^Google Cloud Vision API answered HTTP 200 with something other than JSON$"),
    (b"{}", "^Google Cloud Vision API answered with no responses$"),
    (b'{"responses": []}', "^Google Cloud Vision API answered with no responses$"),
    (b'{"responses": [{"textAnnotations": [{"description": "A"}], "fullTextAnnotation": {"pages": [{"blocks": '
     b'[{"paragraphs": []}]}]}}]}', "^Google Cloud Vision API answered with a text block without a bounding box$"),
    (b'{"responses": [{"textAnnotations": [{"description": "A"}], "fullTextAnnotation": {"pages": ["A"]}}]}',
     "^Google Cloud Vision API answered with a full text annotation it does not write that way$"),
])
def test_an_answer_that_is_not_the_api_s_is_a_step_error(apis: FakeLlmApis, env: BlockEnvironment,
                                                         frame: WorkflowImage, raw: bytes, match: str) -> None:
    apis.raw = raw
    with pytest.raises(ProviderError, match=match):
        run({}, env, frame)


def test_a_timeout_is_a_step_error(apis: FakeLlmApis, frame: WorkflowImage) -> None:
    apis.delay = 3.0
    with pytest.raises(ProviderError, match=r"^Google Cloud Vision API did not answer within 0\.3 s$"):
        run({}, make_env(apis, llm_api_timeout=0.3), frame)


def test_the_api_must_be_on_an_allowed_network(apis: FakeLlmApis, frame: WorkflowImage) -> None:
    only_elsewhere = NetworkPolicy.parse(("10.0.0.0/8",), "WORKER_WORKFLOW_ALLOWED_NETWORKS")
    with pytest.raises(DestinationRefusedError, match=re.escape("127.0.0.1")):
        run({}, make_env(apis, allowed_networks=only_elsewhere), frame)
    assert apis.requests == []


def test_the_url_is_the_operator_s(apis: FakeLlmApis, frame: WorkflowImage) -> None:
    with pytest.raises(ProviderError, match=r"^Google Cloud Vision API answered HTTP 404 Not Found"):
        run({}, make_env(apis, google_vision_api_url=f"{apis.url}/elsewhere"), frame)
    assert [request.path for request in apis.requests] == ["/elsewhere/v1/images:annotate"]


@pytest.mark.parametrize("key", ["rf_key:account", "rf_key:user:42"])
def test_a_roboflow_proxy_key_from_a_selector_fails_the_step(apis: FakeLlmApis, env: BlockEnvironment,
                                                             frame: WorkflowImage, key: str) -> None:
    with pytest.raises(ValueError, match="Roboflow's API proxy, which this manager does not have; give your own "
                                         "Google Cloud Vision API key"):
        run({}, env, frame, api_key=key)
    assert apis.requests == []


@pytest.mark.parametrize(("values", "expected"), [
    ({"api_key": None}, "api_key must be a non-empty string, got NoneType"),
    ({"language_hints": "en"}, "language_hints must be a list of language codes (strings) or null, got 'en'"),
    ({"ocr_type": "handwriting"}, "ocr_type must be one of text_detection, ocr_text_detection, got 'handwriting'"),
    ({"image": "not an image"}, "image must be an image, got str"),
])
def test_values_are_checked_before_any_request(apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage,
                                               values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        run({}, env, frame, **values)
    assert apis.requests == []


def test_the_key_from_a_parameter_is_a_secret_of_the_step(apis: FakeLlmApis, env: BlockEnvironment,
                                                          frame: WorkflowImage) -> None:
    block, params = build({"ocr_type": "text_detection", "api_key": "$inputs.google_key"}, env, google_key=KEY)
    assert KEY in env.secrets, "registered as the step is built"
    block.run(**{**params, "image": frame})
    [request] = apis.wait_for(1)
    assert request.headers["x-goog-api-key"] == KEY
    assert json.dumps(replace(request, headers={}).json()).count(KEY) == 0 and KEY not in request.path


# ----------------------------------------------------------------------------- in a workflow


def test_the_detections_feed_a_filter_stitching_counting_and_drawing(apis: FakeLlmApis, env: BlockEnvironment,
                                                                     frame: WorkflowImage) -> None:
    # Two words of one plate as two blocks (right one first), and a low-confidence smudge.
    apis.vision = annotate_response([TextBlock.box("4821", (190, 300, 260, 340), 0.96),
                                     TextBlock.box("KX", (100, 300, 170, 340), 0.93),
                                     TextBlock.box("~", (500, 50, 520, 70), 0.2)])
    definition = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "key"}],
        "steps": [
            {"type": TYPE, "name": "vision", "image": "$inputs.image", "ocr_type": "ocr_text_detection",
             "api_key": "$inputs.key"},
            {"type": "roboflow_core/detections_filter@v1", "name": "confident",
             "predictions": "$steps.vision.predictions",
             "operations": [{"type": "DetectionsFilter", "filter_operation": {
                 "type": "StatementGroup", "statements": [{
                     "type": "BinaryStatement",
                     "left_operand": {"type": "DynamicOperand", "operations": [
                         {"type": "ExtractDetectionProperty", "property_name": "confidence"}]},
                     "comparator": {"type": "(Number) >="},
                     "right_operand": {"type": "StaticOperand", "value": 0.5}}]}}]},
            {"type": "roboflow_core/stitch_ocr_detections@v1", "name": "plate",
             "predictions": "$steps.confident.predictions", "reading_direction": "left_to_right",
             "delimiter": " "},
            {"type": "roboflow_core/property_definition@v1", "name": "count", "data": "$steps.vision.predictions",
             "operations": [{"type": "SequenceLength"}]},
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.confident.predictions"},
            {"type": "roboflow_core/label_visualization@v1", "name": "labels", "image": "$steps.boxes.image",
             "predictions": "$steps.confident.predictions"},
        ],
        "outputs": [{"type": "JsonField", "name": name, "selector": selector} for name, selector in (
            ("text", "$steps.vision.text"), ("plate", "$steps.plate.ocr_text"), ("count", "$steps.count.output"),
            ("drawn", "$steps.labels.image"))],
    }
    executor = WorkflowExecutor(compile_workflow(definition, parameters={"key": KEY}), REGISTRY, env)

    result, errors = executor.run(frame)

    assert errors == []
    assert (result["text"], result["plate"], result["count"]) == ("4821\nKX\n~\n", "KX 4821", 3)
    drawn = result["drawn"].pixels
    assert not np.array_equal(drawn[295:345, 95:265], frame.image[295:345, 95:265]), "the plate's words boxed"
    assert np.array_equal(drawn[40:80, 490:530], frame.image[40:80, 490:530]), "the smudge was filtered out"


def test_a_step_error_in_a_workflow_never_shows_the_key(apis: FakeLlmApis, env: BlockEnvironment,
                                                        frame: WorkflowImage) -> None:
    apis.status = 401
    definition = {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
                  "steps": [{"type": TYPE, "name": "vision", "image": "$inputs.image", "ocr_type": "text_detection",
                             "api_key": KEY}],
                  "outputs": [{"type": "JsonField", "name": "text", "selector": "$steps.vision.text"}]}
    executor = WorkflowExecutor(compile_workflow(definition), REGISTRY, env)

    result, [error] = executor.run(frame)

    assert result["text"] is None
    assert error.step == "vision" and "Google Cloud Vision API answered HTTP 401" in str(error.as_dict())
    assert KEY not in json.dumps(error.as_dict())


# ----------------------------------------------------------------------------- the operator's setting


def test_the_api_url_is_an_operator_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings().workflow_google_vision_api_url == "https://vision.googleapis.com"
    assert SinkSettings().google_vision_api_url == "https://vision.googleapis.com"
    monkeypatch.setenv("WORKER_WORKFLOW_GOOGLE_VISION_API_URL", "http://vision-gateway.internal:8080/")
    assert WorkerSettings().workflow_google_vision_api_url == "http://vision-gateway.internal:8080"
    monkeypatch.setenv("WORKER_WORKFLOW_GOOGLE_VISION_API_URL", "vision.googleapis.com")
    with pytest.raises(ValueError, match="WORKER_WORKFLOW_GOOGLE_VISION_API_URL must be an http:// or https:// URL"):
        WorkerSettings()
