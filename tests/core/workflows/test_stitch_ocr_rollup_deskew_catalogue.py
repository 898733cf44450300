"""stitch_ocr_detections v1/v2, detections_list_rollup (and its legacy name) and auto_rotate_on_edges through the
compiler: the manifests' required fields, defaults, choices and aliases, the outputs' kinds, and bad literals
refused at INIT with their JSON path."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow

DETECT = {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect", "images": "$inputs.image",
          "model_id": "yolov3-tiny/coco-416"}
CROPS = {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
         "predictions": "$steps.detect.predictions"}
ON_CROPS = {**DETECT, "name": "on_crops", "images": "$steps.crops.crops"}
COLLAPSE = {"type": "roboflow_core/dimension_collapse@v1", "name": "collapse", "data": "$steps.on_crops.predictions"}
PARAMETERS = [{"type": "WorkflowParameter", "name": "tolerance", "default_value": 20},
              {"type": "WorkflowParameter", "name": "strategy", "default_value": "mean"}]


def workflow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}, *PARAMETERS],
            "steps": [DETECT, CROPS, ON_CROPS, COLLAPSE, *steps], "outputs": []}


def params(step: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    plan = compile_workflow(workflow(step), parameters=parameters)
    compiled = plan.step(step["name"])
    return {"type": compiled.type, **compiled.params}


def refusal(*steps: dict[str, Any], **parameters: Any) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(workflow(*steps), parameters=parameters)
    return str(caught.value)


STITCH_V1 = {"type": "roboflow_core/stitch_ocr_detections@v1", "name": "text",
             "predictions": "$steps.detect.predictions", "reading_direction": "left_to_right"}
STITCH_V2 = {**STITCH_V1, "type": "roboflow_core/stitch_ocr_detections@v2", "stitching_algorithm": "otsu"}
ROLLUP = {"type": "roboflow_core/detections_list_rollup@v1", "name": "rollup",
          "parent_detection": "$steps.detect.predictions", "child_detections": "$steps.collapse.output"}
ROTATE = {"type": "roboflow_core/auto_rotate_on_edges@v1", "name": "deskew", "images": "$inputs.image"}
STEP = "field 'workflow.steps[4]"  # the step under test comes after the detector, the crops and the collapse


def test_stitch_ocr_detections_v1_defaults_and_a_parameter_checked_as_its_literal() -> None:
    assert params(STITCH_V1) == {"type": "roboflow_core/stitch_ocr_detections@v1",
                                 "predictions": "$steps.detect.predictions", "reading_direction": "left_to_right",
                                 "tolerance": 10, "delimiter": ""}
    assert params({**STITCH_V1, "tolerance": "$inputs.tolerance"})["tolerance"] == 20
    assert f"{STEP}.tolerance': expected a positive integer, got 0" in refusal(
        {**STITCH_V1, "tolerance": "$inputs.tolerance"}, tolerance=0)
    assert CATALOGUE["roboflow_core/stitch_ocr_detections@v1"].outputs == {"ocr_text": ("string",)}
    assert CATALOGUE["roboflow_core/stitch_ocr_detections@v1"].family == "transformations"


def test_stitch_ocr_detections_v2_defaults() -> None:
    assert params(STITCH_V2) == {"type": "roboflow_core/stitch_ocr_detections@v2", "stitching_algorithm": "otsu",
                                 "predictions": "$steps.detect.predictions", "reading_direction": "left_to_right",
                                 "tolerance": 10, "delimiter": "", "otsu_threshold_multiplier": 1.0,
                                 "collimate_tolerance": 10}
    assert params({**STITCH_V2, "stitching_algorithm": "collimate", "collimate_tolerance": 15,
                   "reading_direction": "auto", "delimiter": " "})["collimate_tolerance"] == 15


@pytest.mark.parametrize(("step", "message"), [
    ({**STITCH_V1, "reading_direction": None}, "'workflow.steps[4].reading_direction' is required by "
                                               "roboflow_core/stitch_ocr_detections@v1"),
    ({**STITCH_V1, "reading_direction": "top_down"},
     "reading_direction': 'top_down' is not one of 'left_to_right', 'right_to_left', 'vertical_top_to_bottom', "
     "'vertical_bottom_to_top', 'auto'"),
    ({**STITCH_V1, "tolerance": 0}, "tolerance': expected a positive integer, got 0"),
    ({**STITCH_V1, "tolerance": 2.5}, "tolerance': expected a positive integer, got 2.5"),
    ({**STITCH_V1, "delimiter": 1}, "delimiter': expected a string, got 1"),
    ({**STITCH_V1, "predictions": "$steps.crops.crops"}, "'$steps.crops.crops' gives image, but the field takes "
                                                        "object_detection_prediction"),
    ({**STITCH_V1, "reading_direction": "$inputs.image"}, "reading_direction' takes a literal value, not a selector"),
    ({**STITCH_V2, "stitching_algorithm": None}, "'workflow.steps[4].stitching_algorithm' is required by "
                                                 "roboflow_core/stitch_ocr_detections@v2"),
    ({**STITCH_V2, "stitching_algorithm": "nms"}, "stitching_algorithm': 'nms' is not one of 'tolerance', 'otsu', "
                                                  "'collimate'"),
    ({**STITCH_V2, "otsu_threshold_multiplier": "high"}, "otsu_threshold_multiplier': expected a number, got 'high'"),
    ({**STITCH_V2, "collimate_tolerance": 1.5}, "collimate_tolerance': expected an integer, got 1.5"),
    ({**STITCH_V2, "tolerance": -1}, "tolerance': expected a positive integer, got -1"),
])
def test_stitch_ocr_detections_refuses_bad_literals_with_their_path(step: dict[str, Any], message: str) -> None:
    step = {key: value for key, value in step.items() if value is not None}
    assert message in refusal(step)


@pytest.mark.parametrize("name", ["roboflow_core/detections_list_rollup@v1", "DetectionsListRollUp"])
def test_detections_list_rollup_defaults_and_its_legacy_name(name: str) -> None:
    assert params({**ROLLUP, "type": name}) == {
        "type": "roboflow_core/detections_list_rollup@v1", "parent_detection": "$steps.detect.predictions",
        "child_detections": "$steps.collapse.output", "confidence_strategy": "max", "overlap_threshold": 0.0,
        "keypoint_merge_threshold": 10.0}
    assert params({**ROLLUP, "confidence_strategy": "$inputs.strategy"})["confidence_strategy"] == "mean"
    assert CATALOGUE[name].outputs == {
        "rolled_up_detections": ("object_detection_prediction", "instance_segmentation_prediction",
                                 "keypoint_detection_prediction"),
        "crop_zones": ("list_of_values",)}


@pytest.mark.parametrize(("fields", "message"), [
    ({"confidence_strategy": "median"}, "confidence_strategy': 'median' is not one of 'max', 'mean', 'min'"),
    ({"overlap_threshold": 1.5}, "overlap_threshold': expected a number between 0 and 1, got 1.5"),
    ({"keypoint_merge_threshold": -1}, "keypoint_merge_threshold': expected a number >= 0, got -1"),
    ({"child_detections": "$steps.on_crops.predictions"}, "child_detections': '$steps.on_crops.predictions' gives "
                                                          "object_detection_prediction"),
    ({"parent_detection": "$steps.collapse.output"}, "parent_detection': '$steps.collapse.output' gives "
                                                     "list_of_values"),
    ({"child_detections": [1, 2]}, "child_detections' takes a selector of list_of_values, got [1, 2]"),
])
def test_detections_list_rollup_refuses_bad_literals_with_their_path(fields: dict[str, Any], message: str) -> None:
    assert f"{STEP}.{message}" in refusal({**ROLLUP, **fields})


def test_detections_list_rollup_refuses_a_bad_strategy_from_a_parameter() -> None:
    message = refusal({**ROLLUP, "confidence_strategy": "$inputs.strategy"}, strategy="average")
    assert f"{STEP}.confidence_strategy': 'average' is not one of 'max', 'mean', 'min'" in message


def test_auto_rotate_on_edges_defaults_the_images_alias_and_its_outputs() -> None:
    assert params(ROTATE) == {"type": "roboflow_core/auto_rotate_on_edges@v1", "image": "$inputs.image",
                              "target_orientation": "vertical", "skip_below_degrees": 0.4,
                              "max_correction_degrees": 90.0, "internal_resolution": 1000}
    assert params({**ROTATE, "target_orientation": "either", "skip_below_degrees": 1, "max_correction_degrees": 45,
                   "internal_resolution": 500})["internal_resolution"] == 500
    spec = CATALOGUE["roboflow_core/auto_rotate_on_edges@v1"]
    assert spec.family == "classical_cv" and spec.outputs == {"image": ("image",), "angle": ("float",)}
    # its image feeds a model, its angle whatever takes a number
    model = {**DETECT, "name": "upright", "images": "$steps.deskew.image"}
    assert compile_workflow(workflow(ROTATE, model)).step("upright").params["images"] == "$steps.deskew.image"


@pytest.mark.parametrize(("fields", "message"), [
    ({"target_orientation": "diagonal"}, "target_orientation': 'diagonal' is not one of 'vertical', 'horizontal', "
                                         "'either'"),
    ({"skip_below_degrees": "small"}, "skip_below_degrees': expected a number, got 'small'"),
    ({"max_correction_degrees": True}, "max_correction_degrees': expected a number, got True"),
    ({"internal_resolution": 0}, "internal_resolution': expected a positive integer, got 0"),
    ({"internal_resolution": 640.5}, "internal_resolution': expected a positive integer, got 640.5"),
    ({"images": "$steps.detect.predictions"}, "images': '$steps.detect.predictions' gives object_detection_prediction"),
])
def test_auto_rotate_on_edges_refuses_bad_literals_with_their_path(fields: dict[str, Any], message: str) -> None:
    assert f"{STEP}.{message}" in refusal({**ROTATE, **fields})
