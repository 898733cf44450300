"""The visualization blocks' catalogue entries, through the compiler: published definitions, the
manifests' defaults and legacy names, and refusals of bad values with their JSON path."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.catalogue.visualization import BLOCKS
from services.core.workflows.compiler import compile_workflow

LINE = [[128, 300], [700, 300]]

# The reference's "objects passing a line" demo (development/stream_interface/objects_passing_line_demo.py).
LINE_COUNTING = {
    "version": "1.0",
    "inputs": [
        {"type": "WorkflowImage", "name": "image"},
        {"type": "WorkflowVideoMetadata", "name": "video_metadata"},
        {"type": "WorkflowParameter", "name": "line"},
    ],
    "steps": [
        {"type": "ObjectDetectionModel", "name": "people_detector", "image": "$inputs.image",
         "model_id": "yolov8n-640", "confidence": 0.6},
        {"type": "roboflow_core/byte_tracker@v1", "name": "byte_tracker",
         "detections": "$steps.people_detector.predictions", "metadata": "$inputs.video_metadata"},
        {"type": "roboflow_core/line_counter@v1", "name": "line_counter",
         "detections": "$steps.byte_tracker.tracked_detections", "metadata": "$inputs.video_metadata",
         "line_segment": "$inputs.line", "image": "$inputs.image"},
        {"type": "roboflow_core/label_visualization@v1", "name": "label_visualization", "image": "$inputs.image",
         "predictions": "$steps.byte_tracker.tracked_detections"},
        {"type": "roboflow_core/bounding_box_visualization@v1", "name": "bbox_visualization",
         "image": "$steps.label_visualization.image", "predictions": "$steps.byte_tracker.tracked_detections"},
        {"type": "roboflow_core/line_counter_visualization@v1", "name": "zone_visualization",
         "image": "$steps.bbox_visualization.image", "zone": "$inputs.line",
         "count_in": "$steps.line_counter.count_in", "count_out": "$steps.line_counter.count_out"},
    ],
    "outputs": [{"type": "JsonField", "name": "label_visualization", "selector": "$steps.zone_visualization.image"}],
}


def definition(*steps: dict[str, Any], parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, *(parameters or [])],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect",
             "images": "$inputs.image", "model_id": "yolov8n-640"},
            *steps,
        ],
        "outputs": [{"type": "JsonField", "name": "drawn", "selector": f"$steps.{steps[-1]['name']}.image"}],
    }


def draw(block_type: str, **fields: Any) -> dict[str, Any]:
    return {"type": block_type, "name": "draw", "image": "$inputs.image", "predictions": "$steps.detect.predictions",
            **fields}


def refusal(definition_: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition_)
    return str(caught.value)


def test_the_line_counting_demo_compiles() -> None:
    plan = compile_workflow(LINE_COUNTING, parameters={"line": LINE})
    zone = plan.step("zone_visualization").params
    assert zone["zone"] == LINE and zone["count_in"] == "$steps.line_counter.count_in"
    assert (zone["color"], zone["thickness"], zone["text_thickness"], zone["text_scale"], zone["opacity"],
            zone["copy_image"]) == ("#5bb573", 2, 1, 1.0, 0.3, True)
    assert plan.step("label_visualization").params["text"] == "Class"
    assert [step.name for step in plan.steps][-3:] == ["label_visualization", "bbox_visualization",
                                                       "zone_visualization"]


def test_label_text_from_a_parameter_and_model_comparison() -> None:
    label = draw("roboflow_core/label_visualization@v1", text="$inputs.label")
    plan = compile_workflow(definition(label, parameters=[
        {"type": "WorkflowParameter", "name": "label", "default_value": "Tracker Id"}]))
    assert plan.step("draw").params["text"] == "Tracker Id"

    comparison = {"type": "roboflow_core/model_comparison_visualization@v1", "name": "compare",
                  "image": "$inputs.image", "predictions_a": "$steps.other.predictions",
                  "predictions_b": "$steps.detect.predictions"}
    other = {"type": "roboflow_core/roboflow_object_detection_model@v3", "name": "other", "images": "$inputs.image",
             "model_id": "yolov8n-1280"}
    params = compile_workflow(definition(other, comparison)).step("compare").params
    assert (params["color_a"], params["color_b"], params["background_color"], params["opacity"]) == (
        "GREEN", "RED", "BLACK", 0.7)


def test_trace_after_a_tracker_and_stacked_legacy_names() -> None:
    tracker = {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.image",
               "detections": "$steps.detect.predictions"}
    trace = {"type": "roboflow_core/trace_visualization@v1", "name": "trace", "images": "$inputs.image",
             "predictions": "$steps.tracker.tracked_detections"}
    boxes = {"type": "BoundingBoxVisualization", "name": "boxes", "image": "$steps.trace.image",
             "predictions": "$steps.tracker.tracked_detections", "copy_image": False}
    plan = compile_workflow(definition(tracker, trace, boxes))
    assert plan.step("trace").params["image"] == "$inputs.image"  # the alias names the canonical field
    assert (plan.step("trace").params["trace_length"], plan.step("trace").params["position"]) == (30, "CENTER")
    assert plan.step("boxes").type == "roboflow_core/bounding_box_visualization@v1"
    assert plan.step("boxes").params["copy_image"] is False


COLORABLE = {"color_palette": "DEFAULT", "palette_size": 10, "custom_colors": [], "color_axis": "CLASS"}
DEFAULTS: dict[str, dict[str, Any]] = {
    "roboflow_core/bounding_box_visualization@v1": {**COLORABLE, "thickness": 2, "roundness": 0.0},
    "roboflow_core/label_visualization@v1": {
        **COLORABLE, "text": "Class", "text_position": "TOP_LEFT", "text_color": "WHITE", "text_scale": 1.0,
        "text_thickness": 1, "text_padding": 10, "border_radius": 0},
    "roboflow_core/label_visualization@v2": {
        **COLORABLE, "text": "Class", "text_position": "TOP_LEFT", "text_color": "WHITE", "text_size_mode": "Manual",
        "text_scale": 1.0, "text_thickness": 1, "text_padding": 10, "border_radius": 0},
    "roboflow_core/blur_visualization@v1": {"kernel_size": 15},
    "roboflow_core/pixelate_visualization@v1": {"pixel_size": 20},
    "roboflow_core/trace_visualization@v1": {**COLORABLE, "position": "CENTER", "trace_length": 30, "thickness": 1},
    "roboflow_core/dot_visualization@v1": {**COLORABLE, "position": "CENTER", "radius": 4, "outline_thickness": 0},
    "roboflow_core/ellipse_visualization@v1": {**COLORABLE, "thickness": 2, "start_angle": -45, "end_angle": 235},
    "roboflow_core/corner_visualization@v1": {**COLORABLE, "thickness": 4, "corner_length": 15},
    "roboflow_core/triangle_visualization@v1": {
        **COLORABLE, "position": "TOP_CENTER", "base": 10, "height": 10, "outline_thickness": 0},
    "roboflow_core/circle_visualization@v1": {**COLORABLE, "thickness": 2},
    "roboflow_core/color_visualization@v1": {**COLORABLE, "opacity": 0.5},
    "roboflow_core/crop_visualization@v1": {
        **COLORABLE, "position": "TOP_CENTER", "scale_factor": 2.0, "border_thickness": 2},
    "roboflow_core/heatmap_visualization@v1": {
        "metadata": None, "position": "BOTTOM_CENTER", "opacity": 0.2, "radius": 40, "kernel_size": 25, "top_hue": 0,
        "low_hue": 125, "ignore_stationary": True, "motion_threshold": 25},
    "roboflow_core/background_color_visualization@v1": {"color": "BLACK", "opacity": 0.5},
}
LEGACY = {"BoundingBoxVisualization", "LabelVisualization", "BlurVisualization", "PixelateVisualization",
          "DotVisualization", "EllipseVisualization", "HaloVisualization", "CornerVisualization",
          "TriangleVisualization", "CircleVisualization", "ColorVisualization", "CropVisualization",
          "HeatmapVisualization", "BackgroundColorVisualization"}
# Their manifests' own image fields: grid_visualization's ``images`` only, text_display's ``image`` only.
OWN_IMAGE_FIELDS = {"roboflow_core/grid_visualization@v1", "roboflow_core/text_display@v1"}


@pytest.mark.parametrize("block_type", sorted(DEFAULTS))
def test_defaults_are_the_manifests(block_type: str) -> None:
    params = compile_workflow(definition(draw(block_type))).step("draw").params
    assert params == {"image": "$inputs.image", "predictions": "$steps.detect.predictions", "copy_image": True,
                      **DEFAULTS[block_type]}


def test_every_name_and_legacy_name() -> None:
    names = {name for spec in BLOCKS for name in spec.names}
    assert names >= LEGACY and len(BLOCKS) == 24
    for spec in BLOCKS:
        assert all(CATALOGUE[name] is spec for name in spec.names)
        assert spec.outputs == {"image": ("image",)}
        if spec.name not in OWN_IMAGE_FIELDS:
            assert spec.field("images") is spec.field("image") is not None


@pytest.mark.parametrize(("fields", "path", "expected"), [
    ({"color_palette": "Matplotlib Jet"}, "color_palette", "is not one of 'DEFAULT', 'CUSTOM'"),
    ({"color_axis": "TRACKER"}, "color_axis", "is not one of 'INDEX', 'CLASS', 'TRACK'"),
    ({"palette_size": 0}, "palette_size", "a positive integer"),
    ({"custom_colors": "#FF0000"}, "custom_colors", "a list of strings"),
    ({"thickness": -1}, "thickness", "an integer >= 0"),
    ({"thickness": "2"}, "thickness", "an integer >= 0"),
    ({"roundness": 1.5}, "roundness", "a number between 0 and 1"),
    ({"copy_image": "yes"}, "copy_image", "true or false"),
])
def test_bad_values_are_refused_with_their_path(fields: dict[str, Any], path: str, expected: str) -> None:
    message = refusal(definition(draw("roboflow_core/bounding_box_visualization@v1", **fields)))
    assert f"'workflow.steps[1].{path}'" in message and expected in message


@pytest.mark.parametrize(("block_type", "fields", "path", "expected"), [
    ("roboflow_core/label_visualization@v1", {"text": "Label"}, "text", "is not one of 'Class'"),
    ("roboflow_core/label_visualization@v1", {"text_position": "MIDDLE"}, "text_position", "is not one of"),
    ("roboflow_core/label_visualization@v2", {"text_size_mode": "auto"}, "text_size_mode",
     "is not one of 'Manual', 'Automatic'"),
    ("roboflow_core/trace_visualization@v1", {"trace_length": 0}, "trace_length", "a positive integer"),
    ("roboflow_core/color_visualization@v1", {"opacity": 1.2}, "opacity", "a number between 0 and 1"),
    ("roboflow_core/crop_visualization@v1", {"scale_factor": 0}, "scale_factor", "a positive number"),
    ("roboflow_core/blur_visualization@v1", {"kernel_size": 0}, "kernel_size", "a positive integer"),
    ("roboflow_core/halo_visualization@v2", {}, "predictions", "instance_segmentation_prediction"),
    ("roboflow_core/dot_visualization@v1", {"predictions": "$inputs.image"}, "predictions", "gives image"),
    ("roboflow_core/heatmap_visualization@v1", {"position": "CENTER_OF_MASS"}, "position", "is not one of"),
    ("roboflow_core/heatmap_visualization@v1", {"radius": 0}, "radius", "a positive integer"),
    ("roboflow_core/heatmap_visualization@v1", {"kernel_size": 0}, "kernel_size", "a positive integer"),
    ("roboflow_core/heatmap_visualization@v1", {"opacity": 1.5}, "opacity", "a number between 0 and 1"),
    ("roboflow_core/heatmap_visualization@v1", {"ignore_stationary": "yes"}, "ignore_stationary", "true or false"),
    ("roboflow_core/heatmap_visualization@v1", {"motion_threshold": -1}, "motion_threshold", "an integer >= 0"),
    ("roboflow_core/heatmap_visualization@v1", {"metadata": "$inputs.image"}, "metadata", "gives image"),
])
def test_block_specific_refusals(block_type: str, fields: dict[str, Any], path: str, expected: str) -> None:
    message = refusal(definition(draw(block_type, **fields)))
    assert f"'workflow.steps[1].{path}'" in message and expected in message


def test_heatmap_after_a_tracker_by_its_legacy_name_with_the_video_metadata() -> None:
    tracker = {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.image",
               "detections": "$steps.detect.predictions"}
    heatmap = {"type": "HeatmapVisualization", "name": "heat", "image": "$inputs.image",
               "predictions": "$steps.tracker.tracked_detections", "metadata": "$inputs.video_metadata",
               "position": "CENTER", "motion_threshold": 10}
    plan = compile_workflow(definition(tracker, heatmap,
                                       parameters=[{"type": "WorkflowVideoMetadata", "name": "video_metadata"}]))
    step = plan.step("heat")
    assert step.type == "roboflow_core/heatmap_visualization@v1"
    assert (step.params["metadata"], step.params["position"], step.params["motion_threshold"],
            step.params["ignore_stationary"]) == ("$inputs.video_metadata", "CENTER", 10, True)


def test_a_bad_parameter_value_is_refused_at_the_field_it_feeds() -> None:
    bad = [{"type": "WorkflowParameter", "name": "palette", "default_value": "Rainbow"}]
    message = refusal(definition(draw("roboflow_core/dot_visualization@v1", color_palette="$inputs.palette"),
                                 parameters=bad))
    assert "'workflow.steps[1].color_palette'" in message and "'Rainbow' is not one of" in message


@pytest.mark.parametrize(("zone", "expected"), [
    (None, "is required"),
    ("0,300,768,300", "a list"),
])
def test_zone_visualizations_need_a_zone_list(zone: Any, expected: str) -> None:
    step = {"type": "roboflow_core/polygon_zone_visualization@v1", "name": "zone", "image": "$inputs.image"}
    if zone is not None:
        step["zone"] = zone
    message = refusal(definition(step))
    assert "'workflow.steps[1].zone'" in message and expected in message


def test_reference_path_visualization_takes_the_manifest_defaults_and_a_path() -> None:
    step = {"type": "roboflow_core/reference_path_visualization@v1", "name": "path", "image": "$inputs.image",
            "reference_path": [[0, 0], [100, 50]]}
    assert compile_workflow(definition(step)).step("path").params == {
        "image": "$inputs.image", "copy_image": True, "reference_path": [[0, 0], [100, 50]], "color": "#5bb573",
        "thickness": 2}
    for field, value, expected in (("reference_path", None, "is required"), ("thickness", 0, "a positive integer"),
                                   ("reference_path", [[1, 2, 3, 4]], "a path of at least one point")):
        wrong = {**step, field: value} if value is not None else {k: v for k, v in step.items() if k != field}
        message = refusal(definition(wrong))
        assert f"'workflow.steps[1].{field}'" in message and expected in message, message


CLASSIFY = {"type": "roboflow_core/roboflow_classification_model@v2", "name": "classify", "images": "$inputs.image",
            "model_id": "demo-colours/1"}


def test_classification_label_takes_a_classifier_s_predictions_with_the_manifest_defaults() -> None:
    label = {"type": "roboflow_core/classification_label_visualization@v1", "name": "label", "image": "$inputs.image",
             "predictions": "$steps.classify.predictions"}
    params = compile_workflow(definition(CLASSIFY, label)).step("label").params
    assert params == {"image": "$inputs.image", "predictions": "$steps.classify.predictions", "copy_image": True,
                      **COLORABLE, "text": "Class", "text_position": "TOP_LEFT", "text_color": "WHITE",
                      "text_scale": 1.0, "text_thickness": 1, "text_padding": 10, "border_radius": 0}
    for fields, path, expected in (
            ({"predictions": "$steps.detect.predictions"}, "predictions", "gives object_detection_prediction"),
            ({"text": "Tracker Id"}, "text", "is not one of 'Class', 'Confidence', 'Class and Confidence'"),
            ({"text_position": "CENTER_OF_MASS"}, "text_position", "is not one of"),
            ({"text_padding": -1}, "text_padding", "an integer >= 0")):
        message = refusal(definition(CLASSIFY, {**label, **fields}))
        assert f"'workflow.steps[2].{path}'" in message and expected in message, message


def test_background_color_refuses_an_opacity_above_one() -> None:
    message = refusal(definition(draw("BackgroundColorVisualization", opacity=1.5)))
    assert "'workflow.steps[1].opacity'" in message and "a number between 0 and 1" in message


def _grid(images: Any, **fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/grid_visualization@v1", "name": "grid", "images": images, **fields}


def test_grid_takes_selectors_of_images_and_lists_of_images() -> None:
    crops = {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
             "predictions": "$steps.detect.predictions"}
    collapse = {"type": "roboflow_core/dimension_collapse@v1", "name": "collapse", "data": "$steps.crops.crops"}
    grid = _grid(["$inputs.image", "$steps.collapse.output"])
    plan = compile_workflow(definition(crops, collapse, grid))
    assert plan.step("grid").params == {"images": ["$inputs.image", "$steps.collapse.output"], "width": 2560,
                                        "height": 1440}
    assert plan.step("grid").dimensionality == 0  # one grid a frame
    single = compile_workflow(definition(crops, collapse, _grid("$steps.collapse.output", width=640, height=480)))
    assert single.step("grid").params == {"images": "$steps.collapse.output", "width": 640, "height": 480}


@pytest.mark.parametrize(("images", "fields", "path", "expected"), [
    ([], {}, "images", "must be a selector or a non-empty list of selectors"),
    ({"first": "$inputs.image"}, {}, "images", "must be a selector or a non-empty list of selectors"),
    (["$inputs.image", "frame.jpg"], {}, "images[1]", "expected a selector of an image"),
    ("$steps.detect.predictions", {}, "images", "gives object_detection_prediction"),
    (["$inputs.image"], {"width": 0}, "width", "an integer from 1 to 8192"),
    (["$inputs.image"], {"height": 10_000}, "height", "an integer from 1 to 8192"),
])
def test_grid_refusals(images: Any, fields: dict[str, Any], path: str, expected: str) -> None:
    message = refusal(definition(_grid(images, **fields)))
    assert f"'workflow.steps[1].{path}'" in message and expected in message, message


TEXT = {"type": "roboflow_core/text_display@v1", "name": "text", "image": "$inputs.image",
        "text": "{{ $parameters.count }} people", "text_parameters": {"count": "$steps.detect.predictions"},
        "text_parameters_operations": {"count": [{"type": "SequenceLength"}]}}


def test_text_display_keeps_its_parameters_selectors_and_takes_the_manifest_defaults() -> None:
    params = compile_workflow(definition(TEXT)).step("text").params
    assert params == {
        "image": "$inputs.image", "text": "{{ $parameters.count }} people",
        "text_parameters": {"count": "$steps.detect.predictions"},
        "text_parameters_operations": {"count": [{"type": "SequenceLength"}]}, "text_color": "WHITE",
        "background_color": "BLACK", "background_opacity": 1.0, "font_scale": 1.0, "font_thickness": 2,
        "padding": 10, "text_align": "left", "border_radius": 0, "position_mode": "relative", "position_x": 0,
        "position_y": 0, "anchor": "top_left", "offset_x": 10, "offset_y": 10, "copy_image": True}


@pytest.mark.parametrize(("fields", "path", "expected"), [
    ({"text": None}, "text", "is required"),
    ({"text": "$inputs.image"}, "text", "takes a literal value"),
    ({"text_parameters_operations": {"count": [{"type": "NoSuchOperation"}]}}, "text_parameters_operations",
     "NoSuchOperation"),
    ({"font_scale": 20}, "font_scale", "a number from 0.1 to 10.0"),
    ({"font_thickness": 0}, "font_thickness", "an integer from 1 to 10"),
    ({"anchor": "middle"}, "anchor", "is not one of 'center', 'top_left'"),
    ({"text_align": "justify"}, "text_align", "is not one of 'left', 'center', 'right'"),
    ({"position_mode": "fixed"}, "position_mode", "is not one of 'absolute', 'relative'"),
    ({"background_opacity": -0.1}, "background_opacity", "a number between 0 and 1"),
    ({"image": None, "images": "$inputs.image"}, "image", "is required"),  # no 'images' alias in its manifest
])
def test_text_display_refusals(fields: dict[str, Any], path: str, expected: str) -> None:
    step = {key: value for key, value in {**TEXT, **fields}.items() if value is not None}
    message = refusal(definition(step))
    assert f"'workflow.steps[1].{path}" in message and expected in message, message
