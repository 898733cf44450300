"""The video analytics blocks' catalogue entries, through the compiler: names, fields, defaults, refusals."""

from typing import Any

import pytest

from services.core.workflows.compiler import compile_workflow
from tests.core.workflows.test_tracking_catalogue import definition, refusal, tracker

LINE = [[0, 300], [768, 300]]
ZONE = [[100, 100], [400, 100], [400, 400], [100, 400]]


def line_counter(version: str = "v2", **fields: Any) -> dict[str, Any]:
    source = {"metadata": "$inputs.video_metadata"} if version == "v1" else {"image": "$inputs.image"}
    return {"type": f"roboflow_core/line_counter@{version}", "name": "count",
            "detections": "$steps.track.tracked_detections", "line_segment": LINE, **source, **fields}


def analytics(block: str, **fields: Any) -> dict[str, Any]:
    return {"type": f"roboflow_core/{block}", "name": "analyse", "detections": "$steps.track.tracked_detections",
            **fields}


def test_detect_track_count_compiles() -> None:
    """A published-format definition: detector -> byte_tracker@v3 -> line_counter@v2 -> outputs."""
    outputs = [{"type": "JsonField", "name": name, "selector": f"$steps.count.{name}"}
               for name in ("count_in", "count_out", "detections_in", "detections_out")]
    plan = compile_workflow(definition(tracker("v3"), line_counter(), outputs=outputs))
    assert [step.name for step in plan.steps] == ["detect", "track", "count"]
    count = plan.step("count")
    assert count.type == "roboflow_core/line_counter@v2"
    assert count.params == {"image": "$inputs.image", "detections": "$steps.track.tracked_detections",
                            "line_segment": LINE, "triggering_anchor": None}
    assert [output.name for output in plan.outputs] == ["count_in", "count_out", "detections_in", "detections_out"]


def test_line_counter_v1_defaults_to_center_and_counts_only() -> None:
    plan = compile_workflow(definition(tracker("v1"), line_counter("v1")))
    assert plan.step("count").params["triggering_anchor"] == "CENTER"
    message = refusal(definition(tracker("v1"), line_counter("v1"), outputs=[
        {"type": "JsonField", "name": "x", "selector": "$steps.count.detections_in"}]))
    assert "has no output 'detections_in'" in message


@pytest.mark.parametrize(("fields", "path", "expected"), [
    ({"line_segment": [[1, 2]]}, "line_segment", "a line segment of two distinct points"),
    ({"line_segment": [[1, 2], [1, 2]]}, "line_segment", "a line segment of two distinct points"),
    ({"line_segment": [[1, 2], [3, "a"]]}, "line_segment", "a line segment"),
    ({"line_segment": [[0, 0], [1, 1], [2, 2]]}, "line_segment", "a line segment"),
    ({"triggering_anchor": "MIDDLE"}, "triggering_anchor", "'MIDDLE' is not one of 'CENTER'"),
    ({"triggering_anchor": 3}, "triggering_anchor", "a string or null"),
])
def test_bad_line_counter_literals_are_refused_with_their_path(fields: dict[str, Any], path: str,
                                                                expected: str) -> None:
    message = refusal(definition(tracker("v3"), line_counter(**fields)))
    assert f"'workflow.steps[2].{path}'" in message and expected in message


def test_line_segment_from_a_parameter_is_checked() -> None:
    good = [{"type": "WorkflowParameter", "name": "line", "default_value": LINE}]
    plan = compile_workflow(definition(tracker("v3"), line_counter(line_segment="$inputs.line"), parameters=good))
    assert plan.step("count").params["line_segment"] == LINE
    bad = [{"type": "WorkflowParameter", "name": "line", "default_value": [[1, 2]]}]
    message = refusal(definition(tracker("v3"), line_counter(line_segment="$inputs.line"), parameters=bad))
    assert "'workflow.steps[2].line_segment'" in message


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_time_in_zone_defaults(version: str) -> None:
    metadata = {"metadata": "$inputs.video_metadata"} if version == "v1" else {}
    step = analytics(f"time_in_zone@{version}", image="$inputs.image", zone=ZONE, **metadata)
    params = compile_workflow(definition(tracker("v3"), step)).step("analyse").params
    assert params["triggering_anchor"] == "CENTER"
    assert params["remove_out_of_zone_detections"] is True
    assert params["reset_out_of_zone_detections"] is True


def test_time_in_zone_v1_needs_its_metadata_input() -> None:
    message = refusal(definition(tracker("v3"), analytics("time_in_zone@v1", image="$inputs.image", zone=ZONE)))
    assert "'workflow.steps[2].metadata' is required" in message


def test_only_time_in_zone_v3_takes_several_zones() -> None:
    zones = [ZONE, [[500, 500], [600, 500], [600, 600]]]
    compile_workflow(definition(tracker("v3"), analytics("time_in_zone@v3", image="$inputs.image", zone=zones)))
    message = refusal(definition(tracker("v3"), analytics("time_in_zone@v2", image="$inputs.image", zone=zones)))
    assert "'workflow.steps[2].zone'" in message and "a polygon of at least 3 points" in message


@pytest.mark.parametrize("zone", [[[0, 0], [1, 1]], [[0, 0], [1, 1], [2]], "zone", [[ZONE[0], [[0, 0], [1, 1]]]]])
def test_bad_zones_are_refused(zone: Any) -> None:
    message = refusal(definition(tracker("v3"), analytics("time_in_zone@v3", image="$inputs.image", zone=zone)))
    assert "'workflow.steps[2].zone'" in message


@pytest.mark.parametrize(("block", "fields", "path"), [
    ("path_deviation_analytics@v2", {"image": "$inputs.image", "reference_path": []}, "reference_path"),
    ("path_deviation_analytics@v1", {"metadata": "$inputs.video_metadata", "reference_path": [[1, 2]],
                                     "triggering_anchor": "middle"}, "triggering_anchor"),
    ("velocity@v1", {"image": "$inputs.image", "smoothing_alpha": 0}, "smoothing_alpha"),
    ("velocity@v1", {"image": "$inputs.image", "pixels_per_meter": 0}, "pixels_per_meter"),
    ("detection_event_log@v1", {"image": "$inputs.image", "frame_threshold": 0}, "frame_threshold"),
    ("detection_event_log@v1", {"image": "$inputs.image", "fallback_fps": 0}, "fallback_fps"),
])
def test_bad_analytics_literals_are_refused_with_their_path(block: str, fields: dict[str, Any], path: str) -> None:
    message = refusal(definition(tracker("v3"), analytics(block, **fields)))
    assert f"'workflow.steps[2].{path}'" in message


def test_other_analytics_defaults() -> None:
    velocity = compile_workflow(definition(tracker("v3"), analytics("velocity@v1", image="$inputs.image")))
    assert velocity.step("analyse").params["smoothing_alpha"] == 0.5
    assert velocity.step("analyse").params["pixels_per_meter"] == 1.0
    log = compile_workflow(definition(tracker("v3"), analytics("detection_event_log@v1", image="$inputs.image")))
    params = log.step("analyse").params
    assert (params["frame_threshold"], params["flush_interval"], params["stale_frames"]) == (30, 30, 300)
    assert (params["reference_timestamp"], params["fallback_fps"]) == (None, 1.0)
    deviation = compile_workflow(definition(tracker("v3"), analytics(
        "path_deviation_analytics@v2", image="$inputs.image", reference_path=[[0, 0], [10, 10]])))
    assert deviation.step("analyse").params["triggering_anchor"] == "CENTER"


def test_overlap_fields() -> None:
    step = {"type": "roboflow_core/overlap@v1", "name": "overlap", "predictions": "$steps.detect.predictions",
            "overlap_class_name": "car"}
    assert compile_workflow(definition(step)).step("overlap").params["overlap_type"] == "Center Overlap"
    message = refusal(definition({**step, "overlap_type": "Some Overlap"}))
    assert "'workflow.steps[1].overlap_type'" in message and "'Center Overlap', 'Any Overlap'" in message
    message = refusal(definition({**step, "overlap_class_name": "$steps.detect.model_id"}))
    assert "'workflow.steps[1].overlap_class_name' takes a literal value" in message
    missing = {k: v for k, v in step.items() if k != "overlap_class_name"}
    assert "'workflow.steps[1].overlap_class_name' is required" in refusal(definition(missing))


def motion(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/motion_detection@v1", "name": "motion", **fields}


def test_motion_detection_defaults_and_outputs() -> None:
    outputs = [{"type": "JsonField", "name": name, "selector": f"$steps.motion.{name}"}
               for name in ("motion", "alarm", "detections", "motion_zones")]
    plan = compile_workflow(definition(motion(images="$inputs.image"), outputs=outputs))  # "images": an alias
    assert plan.step("motion").params == {
        "image": "$inputs.image", "minimum_contour_area": 200, "morphological_kernel_size": 3, "threshold": 16,
        "history": 30, "detection_zone": None, "suppress_first_detections": True}
    assert [output.name for output in plan.outputs] == ["motion", "alarm", "detections", "motion_zones"]


@pytest.mark.parametrize("zone", [ZONE, "[[100, 100], [400, 100], [400, 400]]", [], None])
def test_motion_detection_zone_is_a_polygon_its_json_or_none(zone: Any) -> None:
    plan = compile_workflow(definition(motion(image="$inputs.image", detection_zone=zone)))
    assert plan.step("motion").params["detection_zone"] == zone


def test_motion_detection_zone_from_a_step_or_a_parameter() -> None:
    parameters = [{"type": "WorkflowParameter", "name": "zone", "default_value": ZONE}]
    plan = compile_workflow(definition(motion(image="$inputs.image", detection_zone="$inputs.zone"),
                                       parameters=parameters))
    assert plan.step("motion").params["detection_zone"] == ZONE
    plan = compile_workflow(definition(motion(image="$inputs.image", history=5),  # a zone of another step's
                                       motion(name="zoned", image="$inputs.image",
                                              detection_zone="$steps.motion.motion_zones")))
    assert plan.step("zoned").params["detection_zone"] == "$steps.motion.motion_zones"


@pytest.mark.parametrize(("fields", "path", "expected"), [
    ({"detection_zone": [[0, 0], [1, 1]]}, "detection_zone", "a polygon of at least 3 points"),
    ({"detection_zone": [[0, 0], [1, 1], [2, "a"]]}, "detection_zone", "a polygon of at least 3 points"),
    ({"detection_zone": "[[0, 0], [1, 1]]"}, "detection_zone", "as a list or a JSON string"),
    ({"detection_zone": "zone"}, "detection_zone", "as a list or a JSON string"),
    ({"history": 0}, "history", "a positive integer"),
    ({"minimum_contour_area": -1}, "minimum_contour_area", "a positive integer"),
    ({"morphological_kernel_size": 2.5}, "morphological_kernel_size", "a positive integer"),
    ({"suppress_first_detections": "yes"}, "suppress_first_detections", "true or false"),
    ({"detection_zone": "$steps.detect.predictions"}, "detection_zone", "takes zone or list_of_values"),
])
def test_bad_motion_detection_fields_are_refused_with_their_path(fields: dict[str, Any], path: str,
                                                                  expected: str) -> None:
    message = refusal(definition(motion(image="$inputs.image", **fields)))
    assert f"'workflow.steps[1].{path}'" in message and expected in message
