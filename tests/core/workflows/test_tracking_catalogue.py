"""The tracking blocks' catalogue entries, through the compiler: names, fields, defaults, refusals."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.compiler import compile_workflow


def definition(*steps: dict[str, Any], outputs: list[dict[str, Any]] | None = None,
               parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A published-format definition: an image and video metadata input, a detector, then ``steps``."""
    return {
        "version": "1.0",
        "inputs": [
            {"type": "WorkflowImage", "name": "image"},
            {"type": "WorkflowVideoMetadata", "name": "video_metadata"},
            *(parameters or []),
        ],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect",
             "image": "$inputs.image", "model_id": "yolov8n-640"},
            *steps,
        ],
        "outputs": outputs or [],
    }


def tracker(version: str, **fields: Any) -> dict[str, Any]:
    source = {"metadata": "$inputs.video_metadata"} if version == "v1" else {"image": "$inputs.image"}
    return {"type": f"roboflow_core/byte_tracker@{version}", "name": "track",
            "detections": "$steps.detect.predictions", **source, **fields}


def refusal(definition_: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition_)
    return str(caught.value)


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_byte_tracker_defaults_are_the_manifests(version: str) -> None:
    plan = compile_workflow(definition(tracker(version)))
    params = plan.step("track").params
    assert params["track_activation_threshold"] == 0.25
    assert params["lost_track_buffer"] == 30
    assert params["minimum_matching_threshold"] == 0.8
    assert params["minimum_consecutive_frames"] == 1
    assert ("instances_cache_size" in params) is (version == "v3")
    assert params.get("instances_cache_size", 16384) == 16384


def test_byte_tracker_v3_outputs_feed_the_next_steps() -> None:
    plan = compile_workflow(definition(
        tracker("v3"),
        outputs=[{"type": "JsonField", "name": name, "selector": f"$steps.track.{name}"}
                 for name in ("tracked_detections", "new_instances", "already_seen_instances")],
    ))
    assert [output.selector for output in plan.outputs] == [
        "$steps.track.tracked_detections", "$steps.track.new_instances", "$steps.track.already_seen_instances"]


def test_byte_tracker_v1_has_only_tracked_detections() -> None:
    message = refusal(definition(tracker("v1"), outputs=[
        {"type": "JsonField", "name": "new", "selector": "$steps.track.new_instances"}]))
    assert "'workflow.outputs[0].selector'" in message and "has no output 'new_instances'" in message


def test_byte_tracker_v1_takes_video_metadata_not_an_image() -> None:
    message = refusal(definition(tracker("v1", metadata="$inputs.image")))
    assert "'workflow.steps[1].metadata'" in message and "video_metadata" in message


def test_tuning_from_workflow_parameters_is_checked() -> None:
    parameters = [{"type": "WorkflowParameter", "name": "activation", "default_value": 0.5}]
    plan = compile_workflow(definition(tracker("v2", track_activation_threshold="$inputs.activation"),
                                       parameters=parameters))
    assert plan.step("track").params["track_activation_threshold"] == 0.5
    bad = [{"type": "WorkflowParameter", "name": "activation", "default_value": 1.5}]
    message = refusal(definition(tracker("v2", track_activation_threshold="$inputs.activation"), parameters=bad))
    assert "'workflow.steps[1].track_activation_threshold'" in message


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("track_activation_threshold", 1.5, "a number between 0 and 1"),
    ("lost_track_buffer", -1, "an integer >= 0"),
    ("minimum_consecutive_frames", 0, "a positive integer"),
    ("instances_cache_size", "$inputs.image", "takes a literal value"),
    ("instances_cache_size", 0, "a positive integer"),
])
def test_bad_tuning_is_refused_with_its_path(field: str, value: Any, expected: str) -> None:
    message = refusal(definition(tracker("v3", **{field: value})))
    assert f"'workflow.steps[1].{field}'" in message and expected in message


def test_trackers_bytetrack_defaults_are_the_manifests() -> None:
    step = {"type": "roboflow_core/trackers_bytetrack@v1", "name": "track", "image": "$inputs.image",
            "detections": "$steps.detect.predictions"}
    params = compile_workflow(definition(step)).step("track").params
    assert {k: v for k, v in params.items() if k not in ("image", "detections")} == {
        "minimum_iou_threshold": 0.1, "minimum_consecutive_frames": 2, "lost_track_buffer": 30,
        "track_activation_threshold": 0.7, "high_conf_det_threshold": 0.6, "instances_cache_size": 16384}


def test_tracker_refuses_classifications() -> None:
    classify = {"type": "roboflow_core/roboflow_classification_model@v2", "name": "classify",
                "images": "$inputs.image", "model_id": "m/1"}
    message = refusal(definition(classify, tracker("v2", detections="$steps.classify.predictions")))
    assert "'workflow.steps[2].detections'" in message and "classification_prediction" in message
