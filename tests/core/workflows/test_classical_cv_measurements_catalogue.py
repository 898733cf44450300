"""The classical CV measurement blocks' catalogue entries through the compiler: the manifests' defaults and
aliases, the kinds their selectors take, and bad literals refused with their JSON path."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.compiler import compile_workflow

IMAGE = {"type": "WorkflowImage", "name": "image"}
DETECT = {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect", "image": "$inputs.image",
          "model_id": "yolov3-tiny/coco-416"}
SIFT = {"type": "roboflow_core/sift@v1", "name": "sift", "image": "$inputs.image"}
PREDICTIONS = "$steps.detect.predictions"


def compiled(step: dict[str, Any], *before: dict[str, Any]) -> dict[str, Any]:
    """The step's compiled params; it is the last step, after ``before`` (by default the detector)."""
    steps = [*(before or (DETECT,)), {"name": "step", **step}]
    plan = compile_workflow({"version": "1.0", "inputs": [IMAGE], "steps": steps, "outputs": []})
    return dict(plan.step("step").params)


def refusal(step: dict[str, Any], *before: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compiled(step, *before)
    return str(caught.value)


@pytest.mark.parametrize(("step", "expected"), [
    ({"type": "roboflow_core/dominant_color@v1", "images": "$inputs.image"},
     {"image": "$inputs.image", "color_clusters": 4, "max_iterations": 100, "target_size": 100}),
    ({"type": "roboflow_core/pixel_color_count@v1", "image": "$inputs.image", "target_color": "#431112"},
     {"image": "$inputs.image", "target_color": "#431112", "tolerance": 10}),
    ({"type": "roboflow_core/camera_focus@v1", "image": "$inputs.image"}, {"image": "$inputs.image"}),
    ({"type": "roboflow_core/camera_focus@v2", "image": "$inputs.image"},
     {"image": "$inputs.image", "underexposed_threshold_percent": 3.0, "overexposed_threshold_percent": 97.0,
      "show_zebra_warnings": True, "grid_overlay": "3x3", "show_hud": True, "show_focus_peaking": True,
      "show_center_marker": True, "detections": None}),
    ({"type": "roboflow_core/template_matching@v1", "images": "$inputs.image", "templates": "$inputs.image"},
     {"image": "$inputs.image", "template": "$inputs.image", "matching_threshold": 0.8, "apply_nms": True,
      "nms_threshold": 0.5}),
    ({"type": "roboflow_core/sift@v1", "image": "$inputs.image"}, {"image": "$inputs.image"}),
    ({"type": "roboflow_core/sift_comparison@v2", "input_1": "$inputs.image", "input_2": "$inputs.image"},
     {"input_1": "$inputs.image", "input_2": "$inputs.image", "good_matches_threshold": 50, "ratio_threshold": 0.7,
      "matcher": "FlannBasedMatcher", "visualize": False}),
    ({"type": "roboflow_core/distance_measurement@v1", "predictions": PREDICTIONS, "object_1_class_name": "car",
      "object_2_class_name": "person", "reference_axis": "vertical", "calibration_method": "reference object"},
     {"predictions": PREDICTIONS, "object_1_class_name": "car", "object_2_class_name": "person",
      "reference_axis": "vertical", "calibration_method": "reference object",
      "reference_object_class_name": "reference-object", "reference_width": 2.5, "reference_height": 2.5,
      "pixel_ratio": 100}),
    ({"type": "roboflow_core/size_measurement@v1", "object_predictions": PREDICTIONS,
      "reference_predictions": PREDICTIONS, "reference_dimensions": "5.0,5.0"},
     {"object_predictions": PREDICTIONS, "reference_predictions": PREDICTIONS, "reference_dimensions": "5.0,5.0"}),
    ({"type": "roboflow_core/detections_nearest_neighbor@v1", "query_predictions": PREDICTIONS,
      "target_predictions": PREDICTIONS},
     {"query_predictions": PREDICTIONS, "target_predictions": PREDICTIONS, "query_point": "CENTER",
      "target_point": "CENTER", "query_keypoint_name": None, "target_keypoint_name": None, "max_distance": None}),
])
def test_the_manifests_defaults_and_aliases(step: dict[str, Any], expected: dict[str, Any]) -> None:
    assert compiled(step) == expected


def test_sift_descriptors_feed_the_comparison_and_the_dominant_colour_the_pixel_count() -> None:
    comparison = {"type": "roboflow_core/sift_comparison@v1", "descriptor_1": "$steps.sift.descriptors",
                  "descriptor_2": "$steps.sift.descriptors"}
    assert compiled(comparison, SIFT) == {"descriptor_1": "$steps.sift.descriptors",
                                          "descriptor_2": "$steps.sift.descriptors", "good_matches_threshold": 50,
                                          "ratio_threshold": 0.7}
    v2 = {"type": "roboflow_core/sift_comparison@v2", "input_1": "$inputs.image", "input_2": "$steps.sift.descriptors"}
    assert compiled(v2, SIFT)["input_2"] == "$steps.sift.descriptors"
    dominant = {"type": "roboflow_core/dominant_color@v1", "name": "dominant", "image": "$inputs.image"}
    count = {"type": "roboflow_core/pixel_color_count@v1", "image": "$inputs.image",
             "target_color": "$steps.dominant.rgb_color"}
    assert compiled(count, dominant)["target_color"] == "$steps.dominant.rgb_color"
    measured = {"type": "roboflow_core/camera_focus@v2", "image": "$steps.sift.image", "detections": PREDICTIONS}
    assert compiled(measured, DETECT, SIFT)["detections"] == PREDICTIONS


@pytest.mark.parametrize(("step", "message"), [
    ({"type": "roboflow_core/dominant_color@v1", "image": "$inputs.image", "color_clusters": 11},
     "field 'workflow.steps[1].color_clusters': expected an integer between 1 and 10, got 11"),
    ({"type": "roboflow_core/dominant_color@v1", "image": "$inputs.image", "target_size": 0},
     "field 'workflow.steps[1].target_size': expected an integer between 1 and 250, got 0"),
    ({"type": "roboflow_core/dominant_color@v1", "image": "$inputs.image", "max_iterations": 501},
     "field 'workflow.steps[1].max_iterations': expected an integer between 1 and 500, got 501"),
    ({"type": "roboflow_core/pixel_color_count@v1", "image": "$inputs.image"},
     "field 'workflow.steps[1].target_color' is required by roboflow_core/pixel_color_count@v1"),
    ({"type": "roboflow_core/pixel_color_count@v1", "image": "$inputs.image", "target_color": "(300, 0, 0)"},
     "field 'workflow.steps[1].target_color': expected a colour: '#rgb', '#rrggbb', '(r, g, b)' or [r, g, b], "
     "got '(300, 0, 0)'"),
    ({"type": "roboflow_core/pixel_color_count@v1", "image": "$inputs.image", "target_color": "#fff",
      "tolerance": -1}, "field 'workflow.steps[1].tolerance': expected an integer >= 0, got -1"),
    ({"type": "roboflow_core/camera_focus@v2", "image": "$inputs.image", "grid_overlay": "6x6"},
     "field 'workflow.steps[1].grid_overlay': '6x6' is not one of 'None', '2x2', '3x3', '4x4', '5x5'"),
    ({"type": "roboflow_core/camera_focus@v2", "image": "$inputs.image", "overexposed_threshold_percent": 101},
     "field 'workflow.steps[1].overexposed_threshold_percent': expected a number between 0 and 100, got 101"),
    ({"type": "roboflow_core/camera_focus@v2", "image": "$inputs.image", "show_hud": "yes"},
     "field 'workflow.steps[1].show_hud': expected true or false, got 'yes'"),
    ({"type": "roboflow_core/template_matching@v1", "image": "$inputs.image", "template": "$inputs.image",
      "nms_threshold": 1.5}, "field 'workflow.steps[1].nms_threshold': expected a number between 0 and 1, got 1.5"),
    ({"type": "roboflow_core/template_matching@v1", "image": "$inputs.image"},
     "field 'workflow.steps[1].template' is required by roboflow_core/template_matching@v1"),
    ({"type": "roboflow_core/sift_comparison@v1", "descriptor_1": PREDICTIONS, "descriptor_2": PREDICTIONS},
     "field 'workflow.steps[1].descriptor_1': '$steps.detect.predictions' gives object_detection_prediction, but "
     "the field takes numpy_array"),
    ({"type": "roboflow_core/sift_comparison@v2", "input_1": "$inputs.image", "input_2": "$inputs.image",
      "matcher": "ORB"}, "field 'workflow.steps[1].matcher': 'ORB' is not one of 'FlannBasedMatcher', 'BFMatcher'"),
    ({"type": "roboflow_core/sift_comparison@v2", "input_1": "$inputs.image", "input_2": "$inputs.image",
      "good_matches_threshold": 0}, "field 'workflow.steps[1].good_matches_threshold': expected a positive integer"),
    ({"type": "roboflow_core/distance_measurement@v1", "predictions": PREDICTIONS, "object_1_class_name": "a",
      "object_2_class_name": "b", "reference_axis": "diagonal", "calibration_method": "reference object"},
     "field 'workflow.steps[1].reference_axis': 'diagonal' is not one of 'horizontal', 'vertical'"),
    ({"type": "roboflow_core/distance_measurement@v1", "predictions": PREDICTIONS, "object_1_class_name": "a",
      "object_2_class_name": "b", "reference_axis": "vertical"},
     "field 'workflow.steps[1].calibration_method' is required by roboflow_core/distance_measurement@v1"),
    ({"type": "roboflow_core/distance_measurement@v1", "predictions": PREDICTIONS, "object_1_class_name": "a",
      "object_2_class_name": "b", "reference_axis": "vertical", "calibration_method": "pixel to centimeter",
      "pixel_ratio": 0}, "field 'workflow.steps[1].pixel_ratio': expected a positive number, got 0"),
    ({"type": "roboflow_core/size_measurement@v1", "object_predictions": PREDICTIONS,
      "reference_predictions": PREDICTIONS, "reference_dimensions": "5"},
     "field 'workflow.steps[1].reference_dimensions': expected 'width,height' or [width, height], both numbers > 0, "
     "got '5'"),
    ({"type": "roboflow_core/size_measurement@v1", "object_predictions": PREDICTIONS,
      "reference_predictions": PREDICTIONS, "reference_dimensions": [5, -1]},
     "field 'workflow.steps[1].reference_dimensions': expected 'width,height' or [width, height], both numbers > 0, "
     "got [5, -1]"),
    ({"type": "roboflow_core/size_measurement@v1", "object_predictions": PREDICTIONS,
      "reference_predictions": [[0, 0], "x"], "reference_dimensions": "5,5"},
     "field 'workflow.steps[1].reference_predictions': expected a list of points [[x, y], ...], got [[0, 0], 'x']"),
    ({"type": "roboflow_core/detections_nearest_neighbor@v1", "query_predictions": PREDICTIONS,
      "target_predictions": PREDICTIONS, "query_point": "CENTER_OF_MASS"},
     "field 'workflow.steps[1].query_point': 'CENTER_OF_MASS' is not one of 'CENTER', "),
    ({"type": "roboflow_core/detections_nearest_neighbor@v1", "query_predictions": PREDICTIONS,
      "target_predictions": PREDICTIONS, "max_distance": -1},
     "field 'workflow.steps[1].max_distance': expected an integer >= 0, got -1"),
])
def test_bad_literals_are_refused_with_their_path(step: dict[str, Any], message: str) -> None:
    assert message in refusal(step)
