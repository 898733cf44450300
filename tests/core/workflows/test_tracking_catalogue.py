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


# trackers/*/v1.py: each manifest's defaults, besides image, detections and instances_cache_size 16384.
PACKAGE_DEFAULTS = {
    "bytetrack": {"minimum_iou_threshold": 0.1, "minimum_consecutive_frames": 2, "lost_track_buffer": 30,
                  "track_activation_threshold": 0.7, "high_conf_det_threshold": 0.6},
    "sort": {"minimum_iou_threshold": 0.3, "minimum_consecutive_frames": 3, "lost_track_buffer": 30,
             "track_activation_threshold": 0.25},
    "ocsort": {"minimum_iou_threshold": 0.3, "minimum_consecutive_frames": 3, "lost_track_buffer": 30,
               "high_conf_det_threshold": 0.6, "direction_consistency_weight": 0.2, "delta_t": 3},
    "botsort": {"minimum_iou_threshold_first_assoc": 0.2, "minimum_iou_threshold_second_assoc": 0.5,
                "minimum_iou_threshold_unconfirmed_assoc": 0.3, "minimum_consecutive_frames": 2,
                "lost_track_buffer": 30, "track_activation_threshold": 0.7, "high_conf_det_threshold": 0.6,
                "enable_cmc": False, "cmc_method": "sparseOptFlow", "cmc_downscale": 2,
                "instant_first_frame_activation": False},
}


def package_tracker(algorithm: str, **fields: Any) -> dict[str, Any]:
    return {"type": f"roboflow_core/trackers_{algorithm}@v1", "name": "track", "image": "$inputs.image",
            "detections": "$steps.detect.predictions", **fields}


@pytest.mark.parametrize("algorithm", sorted(PACKAGE_DEFAULTS))
def test_trackers_blocks_defaults_are_the_manifests(algorithm: str) -> None:
    params = compile_workflow(definition(package_tracker(algorithm))).step("track").params
    assert {k: v for k, v in params.items() if k not in ("image", "detections")} == {
        **PACKAGE_DEFAULTS[algorithm], "instances_cache_size": 16384}


@pytest.mark.parametrize("algorithm", sorted(PACKAGE_DEFAULTS))
def test_trackers_blocks_outputs_feed_the_next_steps(algorithm: str) -> None:
    plan = compile_workflow(definition(
        package_tracker(algorithm),
        {"type": "roboflow_core/line_counter@v2", "name": "count", "image": "$inputs.image",
         "detections": "$steps.track.new_instances", "line_segment": [[0, 10], [100, 10]]},
        outputs=[{"type": "JsonField", "name": "seen", "selector": "$steps.track.already_seen_instances"}],
    ))
    assert plan.step("count").params["detections"] == "$steps.track.new_instances"


@pytest.mark.parametrize(("algorithm", "field", "value", "expected"), [
    ("sort", "minimum_iou_threshold", 1.2, "a number between 0 and 1"),
    ("ocsort", "delta_t", 0, "a positive integer"),
    ("ocsort", "direction_consistency_weight", -0.1, "a number between 0 and 1"),
    ("botsort", "cmc_method", "optical", "sparseOptFlow"),
    ("botsort", "cmc_method", "$inputs.image", "takes a literal value"),
    ("botsort", "enable_cmc", "yes", "true or false"),
    ("botsort", "cmc_downscale", 0, "a positive integer"),
])
def test_trackers_blocks_refuse_bad_tuning_with_its_path(algorithm: str, field: str, value: Any,
                                                          expected: str) -> None:
    message = refusal(definition(package_tracker(algorithm, **{field: value})))
    assert f"'workflow.steps[1].{field}'" in message and expected in message, message


def test_another_trackers_field_is_ignored_as_the_manifests_ignore_it() -> None:
    """A definition switched from ByteTrack to SORT may keep ByteTrack's high_conf_det_threshold."""
    params = compile_workflow(definition(package_tracker("sort", high_conf_det_threshold=0.5))).step("track").params
    assert "high_conf_det_threshold" not in params


def class_lock(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/track_class_lock@v1", "name": "lock", "image": "$inputs.image",
            "detections": "$steps.track.tracked_detections", **fields}


def test_track_class_lock_defaults_are_the_manifests_and_it_feeds_a_counter() -> None:
    plan = compile_workflow(definition(
        tracker("v3"), class_lock(),
        {"type": "roboflow_core/line_counter@v2", "name": "count", "image": "$inputs.image",
         "detections": "$steps.lock.tracked_detections", "line_segment": [[0, 10], [100, 10]]}))
    params = plan.step("lock").params
    assert {k: v for k, v in params.items() if k not in ("image", "detections")} == {
        "min_votes": 10, "vote_confidence": 0.8, "lead_margin": 3, "switch_after": 15, "state_ttl": 300,
        "reattach_window": 30, "reattach_iou": 0.3}


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("min_votes", 0, "a positive integer"),
    ("vote_confidence", 1.1, "a number between 0 and 1"),
    ("lead_margin", -1, "an integer >= 0"),
    ("switch_after", 0, "a positive integer"),
    ("state_ttl", 2.5, "a positive integer"),
    ("reattach_iou", "high", "a number between 0 and 1"),
])
def test_track_class_lock_refuses_bad_rules_with_their_path(field: str, value: Any, expected: str) -> None:
    message = refusal(definition(tracker("v3"), class_lock(**{field: value})))
    assert f"'workflow.steps[2].{field}'" in message and expected in message, message


def test_track_class_lock_refuses_a_reattach_window_longer_than_its_memory() -> None:
    message = refusal(definition(tracker("v3"), class_lock(state_ttl=20)))  # the default window is 30
    assert "'workflow.steps[2].reattach_window'" in message and "exceeds state_ttl 20" in message
    parameters = [{"type": "WorkflowParameter", "name": "window", "default_value": 50}]
    message = refusal(definition(tracker("v3"), class_lock(reattach_window="$inputs.window", state_ttl=40),
                                 parameters=parameters))
    assert "50 exceeds state_ttl 40" in message
    compile_workflow(definition(tracker("v3"), class_lock(state_ttl=20, reattach_window=20)))


def test_tracker_refuses_classifications() -> None:
    classify = {"type": "roboflow_core/roboflow_classification_model@v2", "name": "classify",
                "images": "$inputs.image", "model_id": "m/1"}
    message = refusal(definition(classify, tracker("v2", detections="$steps.classify.predictions")))
    assert "'workflow.steps[2].detections'" in message and "classification_prediction" in message


def stabilizer(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/stabilize_detections@v1", "name": "stabilize", "image": "$inputs.image",
            "detections": "$steps.track.tracked_detections", **fields}


def test_stabilize_detections_defaults_are_the_manifests_and_it_feeds_a_counter() -> None:
    plan = compile_workflow(definition(
        tracker("v3"), stabilizer(),
        {"type": "roboflow_core/line_counter@v2", "name": "count", "image": "$inputs.image",
         "detections": "$steps.stabilize.tracked_detections", "line_segment": [[0, 10], [100, 10]]},
        outputs=[{"type": "JsonField", "name": "steady", "selector": "$steps.stabilize.tracked_detections"}]))
    params = plan.step("stabilize").params
    assert {k: v for k, v in params.items() if k not in ("image", "detections")} == {
        "smoothing_window_size": 3, "bbox_smoothing_coefficient": 0.2}


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("smoothing_window_size", 0, "a positive integer"),
    ("smoothing_window_size", 2.5, "a positive integer"),
    ("smoothing_window_size", "$inputs.image", "gives image, but the field takes integer"),
    ("bbox_smoothing_coefficient", 1.2, "a number between 0 and 1"),
    ("bbox_smoothing_coefficient", -0.1, "a number between 0 and 1"),
    ("detections", "$inputs.video_metadata", "video_metadata"),
])
def test_stabilize_detections_refuses_bad_values_with_their_path(field: str, value: Any, expected: str) -> None:
    message = refusal(definition(tracker("v3"), stabilizer(**{field: value})))
    assert f"'workflow.steps[2].{field}'" in message and expected in message, message


def test_stabilize_detections_checks_workflow_parameters_and_takes_no_images_alias() -> None:
    parameters = [{"type": "WorkflowParameter", "name": "alpha", "default_value": 1.5}]
    message = refusal(definition(tracker("v3"), stabilizer(bbox_smoothing_coefficient="$inputs.alpha"),
                                 parameters=parameters))
    assert "'workflow.steps[2].bbox_smoothing_coefficient'" in message and "between 0 and 1" in message
    step = stabilizer()
    step["images"] = step.pop("image")
    assert "'workflow.steps[2].image' is required" in refusal(definition(tracker("v3"), step))
