"""The transformations family's fusion blocks through the compiler: buffer, frame_delay (and its legacy names),
detections_difference and overlap_analysis, with the manifests' defaults and the bounds INIT enforces."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.compiler import compile_workflow

DETECT = {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect", "images": "$inputs.image",
          "model_id": "yolov3-tiny/coco-416"}


def workflow(step: dict[str, Any], *outputs: str) -> dict[str, Any]:
    return {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}], "steps": [DETECT, step],
            "outputs": [{"type": "JsonField", "name": output, "selector": f"$steps.{step['name']}.{output}"}
                        for output in outputs]}


def params(step: dict[str, Any], *outputs: str) -> dict[str, Any]:
    plan = compile_workflow(workflow(step, *outputs))
    compiled = plan.step(step["name"])
    return {"type": compiled.type, **compiled.params}


def refusal(step: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(workflow(step))
    return str(caught.value)


BUFFER = {"type": "Buffer", "name": "buffer", "data": "$steps.detect.predictions", "length": 5}


def test_buffer() -> None:
    assert params(BUFFER, "output") == {"type": "roboflow_core/buffer@v1", "data": "$steps.detect.predictions",
                                        "length": 5, "pad": False}
    assert "expected an integer between 1 and 256, got 257" in refusal({**BUFFER, "length": 257})
    assert "expected an integer between 1 and 256, got 0" in refusal({**BUFFER, "length": 0})
    assert "takes a selector" in refusal({**BUFFER, "data": 3})


@pytest.mark.parametrize("name", ["roboflow_core/frame_delay@v1", "FrameDelay", "roboflow_core/time_travel@v1",
                                  "TimeTravel"])
def test_frame_delay_and_its_legacy_names(name: str) -> None:
    step = {"type": name, "name": "delay", "image": "$inputs.image", "data": "$steps.detect.predictions",
            "offset": -10}
    assert params(step, "output", "is_available", "reference_frame_number") == {
        "type": "roboflow_core/frame_delay@v1", "image": "$inputs.image", "data": "$steps.detect.predictions",
        "offset": -10, "default_value": None}
    assert "between -256 and 0 (frames into the past), got 1" in refusal({**step, "offset": 1})
    assert "got -257" in refusal({**step, "offset": -257})
    assert "expected a boolean, a number, a string or null, got [1]" in refusal({**step, "default_value": [1]})


def test_detections_difference_defaults_and_bounds() -> None:
    step = {"type": "roboflow_core/detections_difference@v1", "name": "diff",
            "reference_predictions": "$steps.detect.predictions", "candidate_predictions": "$steps.detect.predictions"}
    assert params(step, "removed_detections", "persisted_detections", "new_detections", "removed_count", "new_count",
                  "verified") == {
        "type": "roboflow_core/detections_difference@v1", "reference_predictions": "$steps.detect.predictions",
        "candidate_predictions": "$steps.detect.predictions", "spatial_weight": 0.4, "class_mismatch_penalty": 0.15,
        "reject_cost": 0.75, "class_strict": False, "min_removed_to_verify": 1}
    assert "expected a number >= 0, got -1" in refusal({**step, "reject_cost": -1})
    assert "expected a positive integer, got 0" in refusal({**step, "min_removed_to_verify": 0})
    assert "expected a number between 0 and 1, got 2" in refusal({**step, "spatial_weight": 2})


def test_overlap_analysis() -> None:
    step = {"type": "OverlapAnalysis", "name": "overlap", "reference_predictions": "$steps.detect.predictions",
            "candidate_predictions": "$steps.detect.predictions"}
    assert params(step, "overlaps") == {"type": "roboflow_core/overlap_analysis@v1",
                                        "reference_predictions": "$steps.detect.predictions",
                                        "candidate_predictions": "$steps.detect.predictions", "min_overlap": 0.1}
    assert "gives image, but the field takes" in refusal({**step, "candidate_predictions": "$inputs.image"})
