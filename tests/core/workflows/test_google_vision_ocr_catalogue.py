"""google_vision_ocr@v1's catalogue entry, through the compiler: the manifest's fields, defaults and choices, its
outputs and where they go, what INIT refuses by JSON path (Roboflow's proxy keys, the manifest's default among
them), and the reference's integration definitions as written
(roboflow/inference/tests/workflows/integration_tests/execution/test_workflow_with_google_vision_ocr.py)."""

import copy
import re
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.catalogue.models import GOOGLE_VISION_FEATURES, GOOGLE_VISION_OCR
from services.core.workflows.compiler import compile_workflow

STEP = re.escape("workflow.steps[0]")
KEY = "AIza-test-key"

# The reference's integration definitions, verbatim.
GOOGLE_VISION_OCR_WORKFLOW = {
    "version": "1.0",
    "inputs": [
        {"type": "WorkflowImage", "name": "image"},
        {"type": "WorkflowParameter", "name": "api_key"},
    ],
    "steps": [
        {
            "type": "roboflow_core/google_vision_ocr@v1",
            "name": "google_vision_ocr",
            "image": "$inputs.image",
            "ocr_type": "text_detection",
            "api_key": "$inputs.api_key",
        },
        {
            "type": "roboflow_core/bounding_box_visualization@v1",
            "name": "bounding_box_visualization",
            "predictions": "$steps.google_vision_ocr.predictions",
            "image": "$inputs.image",
        },
        {
            "type": "roboflow_core/label_visualization@v1",
            "name": "label_visualization",
            "predictions": "$steps.google_vision_ocr.predictions",
            "image": "$steps.bounding_box_visualization.image",
        },
    ],
    "outputs": [
        {
            "type": "JsonField",
            "name": "extracted_text",
            "selector": "$steps.google_vision_ocr.text",
        },
        {
            "type": "JsonField",
            "name": "text_detections",
            "selector": "$steps.google_vision_ocr.predictions",
        },
        {
            "type": "JsonField",
            "name": "text_visualised",
            "selector": "$steps.label_visualization.image",
        },
    ],
}

GOOGLE_VISION_OCR_PROXY_WORKFLOW = {
    "version": "1.0",
    "inputs": [
        {"type": "WorkflowImage", "name": "image"},
    ],
    "steps": [
        {
            "type": "roboflow_core/google_vision_ocr@v1",
            "name": "google_vision_ocr",
            "image": "$inputs.image",
            "ocr_type": "text_detection",
        },
    ],
    "outputs": [
        {
            "type": "JsonField",
            "name": "extracted_text",
            "selector": "$steps.google_vision_ocr.text",
        },
        {
            "type": "JsonField",
            "name": "text_detections",
            "selector": "$steps.google_vision_ocr.predictions",
        },
    ],
}


def definition(*steps: dict[str, Any], parameters: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   *({"type": "WorkflowParameter", "name": name} for name in parameters)],
        "steps": list(steps),
        "outputs": [{"type": "JsonField", "name": "text", "selector": f"$steps.{steps[0]['name']}.text"}],
    }


def vision(**fields: Any) -> dict[str, Any]:
    return {"type": GOOGLE_VISION_OCR, "name": "vision", "image": "$inputs.image", **fields}


def compile_step(step: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    return dict(compile_workflow(definition(step, parameters=tuple(parameters)), parameters=parameters)
                .step(step["name"]).params)


def refused(step: dict[str, Any], match: str, **parameters: Any) -> None:
    with pytest.raises(InvalidPayloadError, match=match):
        compile_step(step, **parameters)


def test_the_fields_and_defaults_follow_the_manifest() -> None:
    assert compile_step(vision(ocr_type="text_detection", api_key=KEY)) == {
        "image": "$inputs.image", "ocr_type": "text_detection", "api_key": KEY, "language_hints": None}
    fields = {field.name: field for field in CATALOGUE[GOOGLE_VISION_OCR].fields}
    assert [(name, field.required) for name, field in fields.items()] == [
        ("image", True), ("ocr_type", True), ("api_key", False), ("language_hints", False)]
    assert (fields["api_key"].default, fields["language_hints"].default) == ("rf_key:account", None)
    assert fields["ocr_type"].choices == ("text_detection", "ocr_text_detection")
    assert (fields["api_key"].kinds, fields["ocr_type"].kinds, fields["language_hints"].kinds) == (
        (kinds.STRING, kinds.SECRET), (), ()), "only the key may come from a step"
    assert GOOGLE_VISION_FEATURES == {"text_detection": "TEXT_DETECTION",
                                      "ocr_text_detection": "DOCUMENT_TEXT_DETECTION"}
    params = compile_step(vision(ocr_type="ocr_text_detection", language_hints=["en", "fr"], api_key=KEY))
    assert (params["ocr_type"], params["language_hints"]) == ("ocr_text_detection", ["en", "fr"])


def test_images_is_an_alias_of_image_and_the_key_may_come_from_a_parameter() -> None:
    step = {"type": GOOGLE_VISION_OCR, "name": "vision", "images": "$inputs.image", "ocr_type": "text_detection",
            "api_key": "$inputs.google_key"}
    assert compile_step(step, google_key=KEY) == {"image": "$inputs.image", "ocr_type": "text_detection",
                                                  "api_key": KEY, "language_hints": None}


def test_the_outputs_are_the_reference_s() -> None:
    assert CATALOGUE[GOOGLE_VISION_OCR].outputs == {
        "text": (kinds.STRING,), "language": (kinds.STRING,), "predictions": (kinds.OBJECT_DETECTION,)}


@pytest.mark.parametrize(("fields", "match"), [
    ({}, rf"field '{STEP}.ocr_type' is required by roboflow_core/google_vision_ocr@v1"),
    ({"ocr_type": "handwriting"}, rf"field '{STEP}.ocr_type': 'handwriting' is not one of 'text_detection', "
                                  "'ocr_text_detection'"),
    ({"ocr_type": "TEXT_DETECTION"}, rf"field '{STEP}.ocr_type': 'TEXT_DETECTION' is not one of"),
    ({"ocr_type": "text_detection", "language_hints": "en"}, rf"field '{STEP}.language_hints': .*a list of strings "
                                                             "or null"),
    ({"ocr_type": "text_detection", "language_hints": ["en", 7]}, rf"field '{STEP}.language_hints'"),
    ({"ocr_type": "text_detection", "api_key": 1234}, rf"field '{STEP}.api_key': .*a string"),
])
def test_bad_literals_are_refused_at_init_with_their_path(fields: dict[str, Any], match: str) -> None:
    refused(vision(**{"api_key": KEY, **fields}), match)


def test_the_image_must_be_an_image() -> None:
    with pytest.raises(InvalidPayloadError, match=r"workflow\.steps\[1\]\.image"):
        compile_workflow(definition(vision(ocr_type="text_detection", api_key=KEY),
                                    {**vision(ocr_type="text_detection", api_key=KEY), "name": "again",
                                     "image": "$steps.vision.text"}))


@pytest.mark.parametrize("key", ["rf_key:account", "rf_key:user:42"])
def test_a_roboflow_proxy_key_is_refused_naming_the_field(key: str) -> None:
    refused(vision(ocr_type="text_detection", api_key=key),
            rf"^field '{STEP}.api_key': an api_key of the form 'rf_key:...' asks for Roboflow's API proxy, which "
            "this manager does not have; give your own Google Cloud Vision API key")
    refused(vision(ocr_type="text_detection", api_key="$inputs.key"), rf"field '{STEP}.api_key': .*Roboflow's API",
            key=key)


def test_the_default_key_is_the_proxy_so_a_key_must_be_given() -> None:
    refused(vision(ocr_type="text_detection"), rf"^field '{STEP}.api_key': .*give your own Google Cloud Vision")


def test_a_key_from_environment_secrets_store_is_accepted() -> None:
    plan = compile_workflow({
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
                   "variables_storing_secrets": ["GOOGLE_VISION_KEY"]},
                  vision(ocr_type="text_detection", api_key="$steps.vault.google_vision_key")],
        "outputs": [{"type": "JsonField", "name": "text", "selector": "$steps.vision.text"}],
    })
    assert plan.step("vision").params["api_key"] == "$steps.vault.google_vision_key"


def test_the_predictions_go_wherever_a_detector_s_do_and_the_text_wherever_a_string_does() -> None:
    plan = compile_workflow(definition(
        vision(ocr_type="ocr_text_detection", api_key=KEY, language_hints=["de"]),
        {"type": "roboflow_core/detections_filter@v1", "name": "confident", "predictions": "$steps.vision.predictions",
         "operations": [{"type": "DetectionsFilter", "filter_operation": {
             "type": "StatementGroup", "statements": [{
                 "type": "BinaryStatement",
                 "left_operand": {"type": "DynamicOperand", "operations": [
                     {"type": "ExtractDetectionProperty", "property_name": "confidence"}]},
                 "comparator": {"type": "(Number) >="},
                 "right_operand": {"type": "StaticOperand", "value": 0.5}}]}}]},
        {"type": "roboflow_core/stitch_ocr_detections@v1", "name": "stitched",
         "predictions": "$steps.confident.predictions", "reading_direction": "left_to_right"},
        {"type": "roboflow_core/property_definition@v1", "name": "count", "data": "$steps.vision.predictions",
         "operations": [{"type": "SequenceLength"}]},
        {"type": "roboflow_core/string_template@v1", "name": "message", "template": "{language}: {text}",
         "data": {"language": "$steps.vision.language", "text": "$steps.vision.text"}},
        {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
         "predictions": "$steps.vision.predictions"},
        {**vision(ocr_type="text_detection", api_key=KEY), "name": "again", "image": "$steps.crops.crops"},
    ))
    assert plan.step("again").dimensionality == 1, "once per crop"
    assert {step.name for step in plan.steps} == {"vision", "confident", "stitched", "count", "message", "crops",
                                                  "again"}


def test_the_reference_s_definition_compiles_as_written() -> None:
    written = copy.deepcopy(GOOGLE_VISION_OCR_WORKFLOW)
    plan = compile_workflow(GOOGLE_VISION_OCR_WORKFLOW, parameters={"api_key": KEY})

    assert written == GOOGLE_VISION_OCR_WORKFLOW, "not changed by compiling"
    assert [step.name for step in plan.steps] == ["google_vision_ocr", "bounding_box_visualization",
                                                  "label_visualization"]
    step = plan.step("google_vision_ocr")
    assert (step.type, dict(step.params)) == (GOOGLE_VISION_OCR, {
        "image": "$inputs.image", "ocr_type": "text_detection", "api_key": KEY, "language_hints": None})
    assert [output.name for output in plan.outputs] == ["extracted_text", "text_detections", "text_visualised"]
    with pytest.raises(InvalidPayloadError, match="workflow parameter 'api_key' has no default_value"):
        compile_workflow(GOOGLE_VISION_OCR_WORKFLOW)


def test_the_reference_s_proxy_definition_is_refused_naming_api_key() -> None:
    with pytest.raises(InvalidPayloadError, match=r"^field 'workflow\.steps\[0\]\.api_key': an api_key of the form "
                                                  r"'rf_key:\.\.\.' asks for Roboflow's API proxy"):
        compile_workflow(GOOGLE_VISION_OCR_PROXY_WORKFLOW)
