"""The transformations family's catalogue entries through the compiler: the reference's published
definitions (SAHI, model ensemble, stitch after dynamic crop, static crops), levels, defaults, refusals."""

import copy
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.compiler import compile_workflow
from tests.core.workflows.transformations_definitions import (
    CONSENSUS,
    CROP_AND_STITCH,
    IMAGE,
    RELATIVE_CROP,
    SAHI,
    TWO_STAGE,
)


def levels(definition: dict[str, Any], **parameters: Any) -> dict[str, int]:
    plan = compile_workflow(definition, parameters=parameters)
    return {step.name: plan.step(step.name).dimensionality for step in plan.steps}


def refusal(definition: dict[str, Any], **parameters: Any) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition, parameters=parameters)
    return str(caught.value)


def test_sahi_levels_and_parameters() -> None:
    assert levels(SAHI, overlap_filtering_strategy="nmm") == {
        "image_slicer": 0, "detection": 1, "stitch": 0, "bbox_visualiser": 0}
    plan = compile_workflow(SAHI, parameters={"overlap_filtering_strategy": "nmm"})
    assert plan.step("image_slicer").params == {"image": "$inputs.image", "slice_width": 640, "slice_height": 640,
                                                "overlap_ratio_width": 0.2, "overlap_ratio_height": 0.2}
    assert plan.step("stitch").params == {"reference_image": "$inputs.image",
                                          "predictions": "$steps.detection.predictions",
                                          "overlap_filtering_strategy": "nmm", "iou_threshold": 0.3}
    assert "field 'workflow.steps[2].overlap_filtering_strategy': 'soft-nms' is not one of 'none', 'nms', 'nmm'" \
        in refusal(SAHI, overlap_filtering_strategy="soft-nms")


def test_ensemble_compiles_with_the_manifest_defaults() -> None:
    plan = compile_workflow(CONSENSUS)
    assert levels(CONSENSUS) == {"detection_1": 0, "detection_2": 0, "consensus": 0}
    assert plan.step("consensus").params == {
        "predictions_batches": ["$steps.detection_1.predictions", "$steps.detection_2.predictions"],
        "required_votes": 2, "class_aware": True, "iou_threshold": 0.3, "confidence": 0.0,
        "classes_to_consider": None, "required_objects": {"person": 2},
        "presence_confidence_aggregation": "max", "detections_merge_confidence_aggregation": "average",
        "detections_merge_coordinates_aggregation": "average", "detections_merge_mask_aggregation": "union",
    }


def test_crop_then_stitch_goes_down_and_back_up() -> None:
    assert levels(CROP_AND_STITCH) == {"car_detection": 0, "cropping": 0, "plates_detection": 1, "stitch": 0,
                                       "consensus": 0}
    plan = compile_workflow(CROP_AND_STITCH)
    assert plan.step("cropping").params == {"images": "$inputs.image",
                                            "predictions": "$steps.car_detection.predictions",
                                            "mask_opacity": 0.0, "background_color": (0, 0, 0)}


def test_static_crops_stay_at_the_image_level() -> None:
    parameters = {"model_id": "m/1", "x_center": 0.5, "y_center": 0.5, "width": 0.3, "height": 0.3}
    assert levels(RELATIVE_CROP, **parameters) == {"crop": 0, "detection": 0}
    assert "field 'workflow.steps[0].x_center': expected a number between 0 and 1, got 1.5" in refusal(
        RELATIVE_CROP, **{**parameters, "x_center": 1.5})


def test_crops_of_crops_go_one_level_deeper_each() -> None:
    definition = copy.deepcopy(CROP_AND_STITCH)
    definition["steps"] = [
        *definition["steps"][:3],
        {"type": "Crop", "name": "plates", "images": "$steps.cropping.crops",
         "detections": "$steps.plates_detection.predictions"},
        {"type": "roboflow_core/roboflow_classification_model@v2", "name": "plate_kind",
         "images": "$steps.plates.crops", "model_id": "demo-colours/1"},
        {"type": "roboflow_core/image_slicer@v2", "name": "tiles", "images": "$steps.plates.crops"},
    ]
    definition["outputs"] = []
    assert levels(definition) == {"car_detection": 0, "cropping": 0, "plates_detection": 1, "plates": 1,
                                  "plate_kind": 2, "tiles": 2}


@pytest.mark.parametrize(("names", "kind"), [
    (("roboflow_core/dynamic_crop@v1", "DynamicCrop", "Crop"), "dynamic_crop"),
    (("roboflow_core/absolute_static_crop@v1", "AbsoluteStaticCrop"), "absolute_static_crop"),
    (("roboflow_core/relative_static_crop@v1", "roboflow_core/relative_statoic_crop@v1", "RelativeStaticCrop"),
     "relative_static_crop"),
    (("roboflow_core/detections_consensus@v1", "DetectionsConsensus"), "detections_consensus"),
])
def test_every_name_compiles_to_the_canonical_one(names: tuple[str, ...], kind: str) -> None:
    fields: dict[str, Any] = {
        "dynamic_crop": {"image": "$inputs.image", "detections": "$steps.detect.predictions"},
        "absolute_static_crop": {"images": "$inputs.image", "x_center": 10, "y_center": 10, "width": 5, "height": 5},
        "relative_static_crop": {"image": "$inputs.image", "x_center": 0.1, "y_center": 0.1, "width": 0.5,
                                 "height": 0.5},
        "detections_consensus": {"predictions": ["$steps.detect.predictions"], "required_votes": 1},
    }[kind]
    for name in names:
        definition = {"version": "1.0", "inputs": [IMAGE], "outputs": [], "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect",
             "image": "$inputs.image", "model_id": "m/1"},
            {"type": name, "name": "step", **fields}]}
        assert compile_workflow(definition).step("step").type == names[0]


def _with(definition: dict[str, Any], index: int, **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(definition)
    changed["steps"][index].update(fields)
    return changed


@pytest.mark.parametrize(("definition", "index", "fields", "message"), [
    (SAHI, 0, {"overlap_ratio_width": 1.0}, "'workflow.steps[0].overlap_ratio_width': expected a number >= 0 and < 1"),
    (SAHI, 0, {"slice_height": 0}, "'workflow.steps[0].slice_height': expected a positive integer, got 0"),
    (SAHI, 0, {"type": "roboflow_core/image_slicer@v2", "slice_width": 320.5},
     "'workflow.steps[0].slice_width': expected a positive integer"),
    (SAHI, 2, {"iou_threshold": 1.5}, "'workflow.steps[2].iou_threshold': expected a number between 0 and 1"),
    (CROP_AND_STITCH, 1, {"background_color": "#12345"}, "'workflow.steps[1].background_color': expected a colour"),
    (CROP_AND_STITCH, 1, {"background_color": [0, 0, 256]}, "'workflow.steps[1].background_color': expected a colour"),
    (CROP_AND_STITCH, 1, {"mask_opacity": 2}, "'workflow.steps[1].mask_opacity': expected a number between 0 and 1"),
    (CROP_AND_STITCH, 1, {"predictions": "$inputs.image"},
     "'workflow.steps[1].predictions': '$inputs.image' gives image"),
    (CROP_AND_STITCH, 3, {"reference_image": "$steps.car_detection.predictions"},
     "'workflow.steps[3].reference_image': '$steps.car_detection.predictions' gives object_detection_prediction"),
    (CONSENSUS, 2, {"required_votes": 0}, "'workflow.steps[2].required_votes': expected a positive integer, got 0"),
    (CONSENSUS, 2, {"required_objects": {"person": 0}},
     "'workflow.steps[2].required_objects': expected a positive integer or an object of class name"),
    (CONSENSUS, 2, {"class_aware": "yes"}, "'workflow.steps[2].class_aware': expected true or false"),
    (CONSENSUS, 2, {"presence_confidence_aggregation": "median"},
     "'workflow.steps[2].presence_confidence_aggregation': 'median' is not one of 'average', 'max', 'min'"),
    (CONSENSUS, 2, {"detections_merge_mask_aggregation": "average"},
     "'workflow.steps[2].detections_merge_mask_aggregation': 'average' is not one of"),
    (CONSENSUS, 2, {"predictions_batches": 5}, "'workflow.steps[2].predictions_batches': expected a list, got 5"),
    (CONSENSUS, 2, {"predictions_batches": ["$steps.nothing.predictions"]},
     "'workflow.steps[2].predictions_batches[0]': selector '$steps.nothing.predictions' names no step"),
])
def test_bad_values_refused_with_their_path(definition: dict[str, Any], index: int, fields: dict[str, Any],
                                            message: str) -> None:
    assert message in refusal(_with(definition, index, **fields), overlap_filtering_strategy="nms")


def test_required_fields() -> None:
    consensus = copy.deepcopy(CONSENSUS)
    del consensus["steps"][2]["required_votes"]
    assert "field 'workflow.steps[2].required_votes' is required by roboflow_core/detections_consensus@v1" \
        in refusal(consensus)
    crop = copy.deepcopy(RELATIVE_CROP)
    del crop["steps"][0]["height"]
    assert "field 'workflow.steps[0].height' is required" in refusal(crop, model_id="m/1", x_center=0.5,
                                                                      y_center=0.5, width=0.5)


def test_classes_replacement_runs_back_at_the_detections_level_with_the_manifest_defaults() -> None:
    assert levels(TWO_STAGE) == {"general_detection": 0, "cropping": 0, "classifier": 1, "classes_replacement": 0}
    assert compile_workflow(TWO_STAGE).step("classes_replacement").params == {
        "object_detection_predictions": "$steps.general_detection.predictions",
        "classification_predictions": "$steps.classifier.predictions",
        "fallback_class_name": None, "fallback_class_id": None}
    legacy = copy.deepcopy(TWO_STAGE)
    legacy["steps"][3].update(type="DetectionsClassesReplacement", fallback_class_name="unknown", fallback_class_id=3)
    assert compile_workflow(legacy).step("classes_replacement").params["fallback_class_id"] == 3


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("classification_predictions", "$steps.general_detection.predictions", "classification_prediction"),
    ("object_detection_predictions", "$steps.classifier.predictions", "object_detection_prediction"),
    ("fallback_class_id", "seven", "an integer or null"),
    ("fallback_class_name", 7, "a string or null"),
])
def test_classes_replacement_refuses_what_its_manifest_does_not_take(field: str, value: Any, expected: str) -> None:
    wrong = copy.deepcopy(TWO_STAGE)
    wrong["steps"][3][field] = value
    message = refusal(wrong)
    assert f"'workflow.steps[3].{field}'" in message and expected in message, message


def test_the_two_stage_workflow_with_classification_v3_as_the_gallery_writes_it() -> None:
    v3 = copy.deepcopy(TWO_STAGE)
    v3["steps"][2]["type"] = "roboflow_core/roboflow_classification_model@v3"
    params = compile_workflow(v3).step("classifier").params
    assert (params["confidence_mode"], params["custom_confidence"]) == ("default", 0.4) and "confidence" not in params
    v3["steps"][2]["confidence_mode"] = "best"  # detection v3 only: the manifest of classification v3 has no "best"
    assert "field 'workflow.steps[2].confidence_mode': 'best' is not one of 'default', 'custom'" in refusal(v3)


def test_dimension_collapse_runs_back_at_the_frame_level_and_gives_a_list() -> None:
    collapsed = copy.deepcopy(TWO_STAGE)
    collapsed["steps"].append({"type": "DimensionCollapse", "name": "collapse",
                               "data": "$steps.classifier.predictions"})
    collapsed["steps"].append({"type": "roboflow_core/property_definition@v1", "name": "count",
                               "data": "$steps.collapse.output", "operations": [{"type": "SequenceLength"}]})
    assert levels(collapsed)["collapse"] == 0 and levels(collapsed)["count"] == 0
    assert compile_workflow(collapsed).step("collapse").params == {"data": "$steps.classifier.predictions"}
    collapsed["steps"][-1]["data"] = "$steps.collapse.nothing"
    assert "field 'workflow.steps[5].data'" in refusal(collapsed)


# ----------------------------------------------------------------------------- perspective correction

# Speed estimation as users paste it: people tracked, their boxes onto a road's rectangle in metres, then velocity.
SPEED = {
    "version": "1.0",
    "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "road"}],
    "steps": [
        {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect", "images": "$inputs.image",
         "model_id": "m/1"},
        {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.image",
         "detections": "$steps.detect.predictions"},
        {"type": "PerspectiveCorrection", "name": "perspective", "image": "$inputs.image",
         "predictions": "$steps.tracker.tracked_detections", "perspective_polygons": "$inputs.road",
         "transformed_rect_width": 25, "transformed_rect_height": 250},
        {"type": "roboflow_core/velocity@v1", "name": "velocity", "image": "$inputs.image",
         "detections": "$steps.perspective.corrected_coordinates"},
    ],
    "outputs": [
        {"type": "JsonField", "name": "speeds", "selector": "$steps.velocity.velocity_detections"},
        {"type": "JsonField", "name": "width", "selector": "$steps.perspective.extended_transformed_rect_width"},
        {"type": "JsonField", "name": "top_down", "selector": "$steps.perspective.warped_image"},
    ],
}
ROAD = [[300, 100], [500, 100], [760, 570], [10, 570]]


def test_perspective_correction_feeds_velocity_with_the_manifest_defaults() -> None:
    plan = compile_workflow(SPEED, parameters={"road": ROAD})
    assert levels(SPEED, road=ROAD) == {"detect": 0, "tracker": 0, "perspective": 0, "velocity": 0}
    assert plan.step("perspective").type == "roboflow_core/perspective_correction@v1"
    assert plan.step("perspective").params == {
        "images": "$inputs.image", "predictions": "$steps.tracker.tracked_detections", "perspective_polygons": ROAD,
        "transformed_rect_width": 25, "transformed_rect_height": 250,
        "extend_perspective_polygon_by_detections_anchor": "", "warp_image": False}
    images_only = _with(SPEED, 2, predictions=None, extend_perspective_polygon_by_detections_anchor="ALL",
                        warp_image=True)
    del images_only["steps"][3]
    del images_only["outputs"][0]
    assert compile_workflow(images_only, parameters={"road": ROAD}).step("perspective").params["predictions"] is None


@pytest.mark.parametrize("polygons", [
    [[1, 1], [10, 1], [10, 10], [1, 10]],
    [[[0, 0], [50, 0], [60, 30], [50, 60], [0, 60]], [[1, 1], [10, 1], [10, 10], [1, 10]]],  # the 5-point one ignored
    [[[1.5, 1], [10, 1], [10, 10], [1, 10]]],
])
def test_perspective_polygons_the_reference_takes(polygons: Any) -> None:
    assert compile_workflow(SPEED, parameters={"road": polygons}).step("perspective").params[
        "perspective_polygons"] == polygons


@pytest.mark.parametrize(("fields", "message"), [
    ({"perspective_polygons": [[0, 0], [50, 0], [60, 30], [50, 60], [0, 60]]}, "expected a convex quadrilateral"),
    ({"perspective_polygons": [[0, 0], [10, 0], [10, 10]]}, "expected a convex quadrilateral"),
    ({"perspective_polygons": [[0, 0], [10, 0], [20, 0], [0, 10]]}, "expected a convex quadrilateral"),  # on a line
    ({"perspective_polygons": [[0, 0], [10, 0], [2, 2], [0, 10]]}, "expected a convex quadrilateral"),  # concave
    ({"perspective_polygons": [[[0, 0], [10, 0], [10, 10]]]}, "expected a convex quadrilateral"),  # none of 4 points
    ({"perspective_polygons": [[[0, 0], [10, 0], [10, 10], [0, 10]], [[0, 0], [10, 0], [2, 2], [0, 10]]]},
     "expected a convex quadrilateral"),
    ({"perspective_polygons": []}, "expected a convex quadrilateral"),
    ({"transformed_rect_width": 0}, "'workflow.steps[2].transformed_rect_width': expected a positive integer"),
    ({"transformed_rect_height": 2.5}, "'workflow.steps[2].transformed_rect_height': expected a positive integer"),
    ({"extend_perspective_polygon_by_detections_anchor": "MIDDLE"}, "'MIDDLE' is not one of '', 'ALL', 'CENTER'"),
    ({"warp_image": "yes"}, "'workflow.steps[2].warp_image': expected true or false"),
    ({"predictions": "$inputs.image"}, "'workflow.steps[2].predictions': '$inputs.image' gives image"),
    ({"images": None}, "field 'workflow.steps[2].images' is required"),
])
def test_perspective_correction_refuses_at_init(fields: dict[str, Any], message: str) -> None:
    polygons = fields.pop("perspective_polygons", ROAD)
    changed = _with(SPEED, 2, **fields)
    if "images" in fields:
        del changed["steps"][2]["image"]
    assert message in refusal(changed, road=polygons)


def preprocessing(**fields: Any) -> dict[str, Any]:
    return {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}], "steps": [
        {"type": "roboflow_core/image_preprocessing@v1", "name": "turn", "images": "$inputs.image", **fields},
        {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect", "images": "$steps.turn.image",
         "model_id": "yolov3-tiny/coco-416"}], "outputs": []}


def test_image_preprocessing_feeds_a_model_with_the_manifest_defaults() -> None:
    params = compile_workflow(preprocessing(task_type="rotate", rotation_degrees=-180)).step("turn").params
    assert params == {"image": "$inputs.image", "task_type": "rotate", "width": 640, "height": 640,
                      "rotation_degrees": -180, "flip_type": "vertical"}


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "field 'workflow.steps[0].task_type' is required by roboflow_core/image_preprocessing@v1"),
    ({"task_type": "crop"}, "'crop' is not one of 'resize', 'rotate', 'flip'"),
    ({"task_type": "rotate", "rotation_degrees": 450}, "expected an integer between -360 and 360, got 450"),
    ({"task_type": "flip", "flip_type": "sideways"}, "'sideways' is not one of 'vertical', 'horizontal', 'both'"),
    ({"task_type": "resize", "width": 0}, "field 'workflow.steps[0].width': expected a positive integer"),
])
def test_image_preprocessing_refusals(fields: dict[str, Any], message: str) -> None:
    assert message in refusal(preprocessing(**fields))


CALIBRATION = {"fx": 700.0, "fy": 700.0, "cx": 384.0, "cy": 288.0, "k1": -0.1, "k2": 0.01, "k3": 0.0, "p1": 0.0,
               "p2": 0.0}


def imaging(**fields: dict[str, Any]) -> dict[str, Any]:
    """camera-calibration, two crops stitched, a QR code: each block's ``fields`` added to its step."""
    return {"version": "1.0", "inputs": [IMAGE], "steps": [
        {"type": "roboflow_core/camera-calibration@v1", "name": "calibration", "image": "$inputs.image",
         **CALIBRATION, **fields.get("calibration", {})},
        {"type": "roboflow_core/relative_static_crop@v1", "name": "left", "image": "$inputs.image",
         "x_center": 0.3, "y_center": 0.5, "width": 0.6, "height": 1.0},
        {"type": "roboflow_core/relative_static_crop@v1", "name": "right", "image": "$inputs.image",
         "x_center": 0.7, "y_center": 0.5, "width": 0.6, "height": 1.0},
        {"type": "roboflow_core/stitch_images@v1", "name": "stitch", "image1": "$steps.left.crops",
         "image2": "$steps.right.crops", **fields.get("stitch", {})},
        {"type": "QRCodeGenerator", "name": "qr", "text": "https://roboflow.com", **fields.get("qr", {})},
    ], "outputs": [{"type": "JsonField", "name": "stitched", "selector": "$steps.stitch.stitched_image"}]}


def test_imaging_blocks_with_the_manifest_defaults() -> None:
    plan = compile_workflow(imaging())
    assert plan.step("calibration").params == {"image": "$inputs.image", **CALIBRATION, "use_fisheye_model": False}
    assert plan.step("stitch").params == {"image1": "$steps.left.crops", "image2": "$steps.right.crops",
                                          "max_allowed_reprojection_error": 3,
                                          "count_of_best_matches_per_query_descriptor": 2}
    assert plan.step("qr").type == "roboflow_core/qr_code_generator@v1"
    assert plan.step("qr").params == {"text": "https://roboflow.com", "error_correct": "Medium (~15% word recovery)",
                                      "border": 4, "fill_color": "BLACK", "back_color": "WHITE"}
    assert {step.name: step.dimensionality for step in plan.steps}["stitch"] == 0


@pytest.mark.parametrize(("fields", "message"), [
    ({"calibration": {"k3": "0.1"}}, "field 'workflow.steps[0].k3': expected a number"),
    ({"calibration": {"fx": 0}}, "field 'workflow.steps[0].fx': expected a positive number"),
    ({"calibration": {"use_fisheye_model": "yes"}}, "field 'workflow.steps[0].use_fisheye_model': expected true or"),
    ({"stitch": {"count_of_best_matches_per_query_descriptor": 1}},
     "field 'workflow.steps[3].count_of_best_matches_per_query_descriptor': expected an integer >= 2"),
    ({"stitch": {"max_allowed_reprojection_error": -1}},
     "field 'workflow.steps[3].max_allowed_reprojection_error': expected a positive number"),
    ({"qr": {"error_correct": "L"}}, "'L' is not one of 'Low (~7% word recovery / highest data capacity)'"),
    ({"qr": {"border": -1}}, "field 'workflow.steps[4].border': expected an integer >= 0"),
    ({"qr": {"text": 42}}, "field 'workflow.steps[4].text': expected a string"),
])
def test_imaging_refusals(fields: dict[str, Any], message: str) -> None:
    assert message in refusal(imaging(**fields))


def test_imaging_required_fields() -> None:
    definition = imaging()
    del definition["steps"][0]["cy"]
    del definition["steps"][4]["text"]
    assert "field 'workflow.steps[0].cy' is required by roboflow_core/camera-calibration@v1" in refusal(definition)
    definition["steps"][0]["cy"] = 288.0
    assert "field 'workflow.steps[4].text' is required by roboflow_core/qr_code_generator@v1" in refusal(definition)
