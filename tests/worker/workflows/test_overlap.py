"""overlap v1: detections overlapping an instance of a class, by centre or by any contact."""

from typing import Any

import numpy as np
import pytest

from tests.worker.workflows.video_steps import StepRunner, boxes

TABLE = [100, 100, 300, 300]
CUP = [150, 150, 180, 180]  # centre inside
PLATE = [280, 280, 340, 340]  # centre (310, 310) outside, boxes intersect
FORK = [300, 120, 320, 140]  # touches the table's edge
KNIFE = [400, 400, 420, 420]  # apart


def overlap_step(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/overlap@v1", "name": "overlap", "predictions": "$steps.detect.predictions",
            "overlap_class_name": "table", **fields}


def names(outputs: dict[str, Any]) -> list[str]:
    return outputs["overlaps"].data["class_name"].tolist()


def scene() -> Any:
    return boxes([TABLE, CUP, PLATE, FORK, KNIFE], [0.9, 0.8, 0.7, 0.6, 0.5],
                 class_names=["table", "cup", "plate", "fork", "knife"])


def test_center_overlap_needs_the_centre_strictly_inside() -> None:
    assert names(StepRunner(overlap_step())(predictions=scene())) == ["cup"]


def test_any_overlap_counts_intersections_and_touching() -> None:
    predictions = scene()
    outputs = StepRunner(overlap_step(overlap_type="Any Overlap"))(predictions=predictions)
    assert names(outputs) == ["cup", "plate", "fork"]
    assert outputs["overlaps"].data["detection_id"].tolist() == predictions.data["detection_id"][1:4].tolist()


@pytest.mark.parametrize("overlap_type", ["Center Overlap", "Any Overlap"])
def test_agrees_with_the_definition_on_random_boxes(overlap_type: str) -> None:
    runner = StepRunner(overlap_step(overlap_type=overlap_type))
    rng = np.random.default_rng(5)
    for _ in range(20):
        corners = rng.uniform(0, 500, size=(12, 2))
        sizes = rng.uniform(5, 150, size=(12, 2))
        xyxy = np.hstack([corners, corners + sizes]).tolist()
        classes = [str(rng.choice(["table", "cup"])) for _ in range(12)]
        detections = boxes(xyxy, rng.uniform(0.3, 0.99, size=12).tolist(), class_names=classes)
        got = runner(predictions=detections)["overlaps"].data["detection_id"].tolist()
        instances = [b for b, n in zip(detections.xyxy, detections.data["class_name"], strict=True) if n == "table"]
        expected = [
            detection_id for box, name, detection_id in zip(
                detections.xyxy, detections.data["class_name"], detections.data["detection_id"], strict=True)
            if name != "table" and any(_overlaps(t, box, overlap_type) for t in instances)
        ]
        assert got == expected


def _overlaps(instance: np.ndarray, box: np.ndarray, overlap_type: str) -> bool:
    if overlap_type == "Center Overlap":
        x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return bool(instance[0] < x < instance[2] and instance[1] < y < instance[3])
    separated = box[2] < instance[0] or box[0] > instance[2] or box[3] < instance[1] or box[1] > instance[3]
    return not separated


def test_no_instance_or_nothing_else_gives_empty_detections() -> None:
    runner = StepRunner(overlap_step())
    alone = runner(predictions=boxes([CUP], class_names=["cup"]))["overlaps"]
    assert len(alone) == 0 and "detection_id" in alone.data
    assert len(runner(predictions=boxes([TABLE], class_names=["table"]))["overlaps"]) == 0
    assert len(runner(predictions=boxes([], []))["overlaps"]) == 0
