"""The classical CV image operations' catalogue entries through the compiler: the manifests' defaults, the
``images`` alias, chains of them into a model, and bad literals refused at INIT with their JSON path."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow

PARAMETER = {"type": "WorkflowParameter", "name": "value", "default_value": 3}


def workflow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}, PARAMETER],
            "steps": list(steps), "outputs": []}


def cv_step(block: str, **fields: Any) -> dict[str, Any]:
    return {"type": f"roboflow_core/{block}", "name": "cv", "images": "$inputs.image", **fields}


def compiled(block: str, **fields: Any) -> dict[str, Any]:
    return dict(compile_workflow(workflow(cv_step(block, **fields)), parameters={}).step("cv").params)


def refusal(*steps: dict[str, Any], **parameters: Any) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(workflow(*steps), parameters=parameters)
    return str(caught.value)


@pytest.mark.parametrize(("block", "fields", "defaults"), [
    ("convert_grayscale@v1", {}, {}),
    ("image_blur@v1", {}, {"blur_type": "gaussian", "kernel_size": 5}),
    ("threshold@v1", {"thresh_value": 127}, {"threshold_type": "binary", "thresh_value": 127, "max_value": 255}),
    ("morphological_transformation@v1", {}, {"kernel_size": 5, "operation": "Closing"}),
    ("morphological_transformation@v2", {}, {"kernel_size": 5, "operation": "Opening then Closing"}),
    ("contrast_equalization@v1", {}, {"equalization_type": "Histogram Equalization"}),
    ("contrast_enhancement@v1", {}, {"clip_limit": 0, "contrast_multiplier": 1.0, "normalize_brightness": False}),
    ("contours_detection@v1", {}, {"line_thickness": 3}),
    ("background_subtraction@v1", {}, {"threshold": 16, "history": 30}),
])
def test_the_manifests_defaults_and_the_images_alias(block: str, fields: dict[str, Any],
                                                     defaults: dict[str, Any]) -> None:
    assert compiled(block, **fields) == {"image": "$inputs.image", **defaults}
    assert CATALOGUE[f"roboflow_core/{block}"].family == "classical_cv"


def test_a_chain_into_contours_and_a_model_with_the_outputs_kinds() -> None:
    definition = workflow(
        {"type": "roboflow_core/convert_grayscale@v1", "name": "gray", "image": "$inputs.image"},
        {"type": "roboflow_core/image_blur@v1", "name": "blur", "image": "$steps.gray.image",
         "kernel_size": "$inputs.value"},
        {"type": "roboflow_core/threshold@v1", "name": "binary", "image": "$steps.blur.image",
         "threshold_type": "otsu", "thresh_value": 0},
        {"type": "roboflow_core/contours_detection@v1", "name": "contours", "image": "$steps.binary.image"},
        {"type": "roboflow_core/morphological_transformation@v2", "name": "morph", "image": "$steps.binary.image",
         "kernel_size": "$steps.contours.number_contours"},
        {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect",
         "images": "$steps.morph.image", "model_id": "yolov3-tiny/coco-416"},
    )
    plan = compile_workflow(definition, parameters={"value": 7})
    assert plan.step("blur").params["kernel_size"] == 7
    assert plan.step("morph").params["kernel_size"] == "$steps.contours.number_contours"
    outputs = CATALOGUE["roboflow_core/contours_detection@v1"].outputs
    assert outputs == {"image": ("image",), "contours": ("contours",), "hierarchy": ("numpy_array",),
                       "number_contours": ("integer",)}


def test_contours_are_not_detections() -> None:
    message = refusal(
        cv_step("contours_detection@v1"),
        {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
         "predictions": "$steps.cv.contours"})
    assert "field 'workflow.steps[1].predictions': '$steps.cv.contours' gives contours" in message


@pytest.mark.parametrize(("block", "fields", "message"), [
    ("threshold@v1", {}, "field 'workflow.steps[0].thresh_value' is required by roboflow_core/threshold@v1"),
    ("threshold@v1", {"thresh_value": 256}, "field 'workflow.steps[0].thresh_value': expected an integer between 0 "
                                            "and 255, got 256"),
    ("threshold@v1", {"thresh_value": 100, "max_value": 255.5}, "field 'workflow.steps[0].max_value': expected an "
                                                                "integer between 0 and 255, got 255.5"),
    ("threshold@v1", {"thresh_value": 100, "threshold_type": "triangle"},
     "field 'workflow.steps[0].threshold_type': 'triangle' is not one of 'binary', 'binary_inv', 'trunc'"),
    ("image_blur@v1", {"blur_type": "box"}, "field 'workflow.steps[0].blur_type': 'box' is not one of 'average', "
                                            "'gaussian', 'median', 'bilateral'"),
    ("image_blur@v1", {"kernel_size": 0}, "field 'workflow.steps[0].kernel_size': expected a positive integer, got 0"),
    ("morphological_transformation@v1", {"operation": "Opening then Closing"},
     "field 'workflow.steps[0].operation': 'Opening then Closing' is not one of 'Erosion', 'Dilation', 'Opening', "
     "'Closing', 'Gradient', 'Top Hat', 'Black Hat'"),
    ("morphological_transformation@v2", {"kernel_size": -3}, "field 'workflow.steps[0].kernel_size': expected a "
                                                             "positive integer, got -3"),
    ("contrast_equalization@v1", {"equalization_type": "CLAHE"}, "field 'workflow.steps[0].equalization_type': "
                                                                 "'CLAHE' is not one of 'Contrast Stretching'"),
    ("contrast_enhancement@v1", {"clip_limit": 51}, "field 'workflow.steps[0].clip_limit': expected an integer "
                                                    "between 0 and 50, got 51"),
    ("contrast_enhancement@v1", {"contrast_multiplier": 0.05}, "field 'workflow.steps[0].contrast_multiplier': "
                                                               "expected a number between 0.1 and 5.0, got 0.05"),
    ("contrast_enhancement@v1", {"normalize_brightness": "yes"}, "field 'workflow.steps[0].normalize_brightness': "
                                                                 "expected true or false, got 'yes'"),
    ("contours_detection@v1", {"line_thickness": -2}, "field 'workflow.steps[0].line_thickness': expected an "
                                                      "integer from -1 (filled) to 32767, got -2"),
    ("background_subtraction@v1", {"history": 0}, "field 'workflow.steps[0].history': expected a positive integer"),
])
def test_bad_literals_are_refused_with_their_path(block: str, fields: dict[str, Any], message: str) -> None:
    assert message in refusal(cv_step(block, **fields))


def test_a_parameter_is_checked_as_the_literal_it_stands_for() -> None:
    assert compiled("background_subtraction@v1", threshold="$inputs.value")["threshold"] == 3
    message = refusal(cv_step("image_blur@v1", kernel_size="$inputs.value"), value=0)
    assert "field 'workflow.steps[0].kernel_size': expected a positive integer, got 0" in message


def test_contrast_enhancement_takes_literals_only_as_the_reference() -> None:
    message = refusal(
        {"type": "roboflow_core/contours_detection@v1", "name": "contours", "image": "$inputs.image"},
        cv_step("contrast_enhancement@v1", clip_limit="$steps.contours.number_contours"))
    assert "field 'workflow.steps[1].clip_limit' takes a literal value, not a selector" in message
