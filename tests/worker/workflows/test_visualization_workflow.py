"""The visualizations inside a whole workflow run by the executor: detections tracked, counted at a
line and drawn (boxes, tracker id labels, the line with its counts), frame after frame."""

import base64
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np
import pytest

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import WorkflowImage, detections_on
from tests.worker.workflows.visualization_support import InlineBackground, workflow_image

LINE = [[0, 300], [768, 300]]
DEFINITION = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "image"}],
    "steps": [
        {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect", "images": "$inputs.image",
         "model_id": "coco/3"},
        {"type": "roboflow_core/byte_tracker@v3", "name": "track", "image": "$inputs.image",
         "detections": "$steps.detect.predictions"},
        {"type": "roboflow_core/line_counter@v2", "name": "count", "image": "$inputs.image",
         "detections": "$steps.track.tracked_detections", "line_segment": LINE},
        {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
         "predictions": "$steps.track.tracked_detections"},
        {"type": "roboflow_core/label_visualization@v1", "name": "labels", "image": "$steps.boxes.image",
         "predictions": "$steps.track.tracked_detections", "text": "Tracker Id"},
        {"type": "roboflow_core/line_counter_visualization@v1", "name": "line", "image": "$steps.labels.image",
         "zone": LINE, "count_in": "$steps.count.count_in", "count_out": "$steps.count.count_out"},
    ],
    "outputs": [
        {"type": "JsonField", "name": "count_in", "selector": "$steps.count.count_in"},
        {"type": "JsonField", "name": "drawn", "selector": "$steps.line.image"},
    ],
}


class WalkingUp:
    """Two people walking up the frame, 20 pixels a frame, across the line at y = 300."""

    def detect(self, model_id: str, image: WorkflowImage, params: Mapping[str, Any]) -> Any:
        top = 420 - 20 * image.video.frame_number
        boxes = np.array([[200, top, 250, top + 60], [500, top + 10, 550, top + 70]], dtype=np.float32)
        return detections_on(image, boxes, np.array([0.9, 0.8]), np.array([0, 0]), ["person"], "inference")

    def classify(self, model_id: str, image: Any, confidence: float) -> Any:
        raise AssertionError("no classification here")


@pytest.fixture
def frame(video_frame: Callable[[str, int], np.ndarray]) -> np.ndarray:
    return video_frame("vtest.avi", 10)


def test_tracked_counted_and_drawn_frame_after_frame(frame: np.ndarray) -> None:
    env = BlockEnvironment(source_id=0, models=WalkingUp(), background=InlineBackground())
    executor = WorkflowExecutor(compile_workflow(DEFINITION), REGISTRY, env)
    for number in range(1, 13):
        image = workflow_image(frame.copy(), frame_number=number)
        outputs, errors = executor.run(image)
        assert errors == []
        np.testing.assert_array_equal(image.image, frame)  # every step drew on a copy
    assert outputs["count_in"] == 2
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(outputs["drawn"]["value"]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    drawn = np.asarray(decoded)
    assert drawn.shape == frame.shape
    difference = np.abs(drawn.astype(int) - frame.astype(int)).max(axis=2) > 40  # beyond JPEG noise
    assert difference[200:260, 195:255].any()  # the first person's box (top 180) and label
    white = (drawn[285:315, 0:60] > 225).all(axis=2)  # the counts, centred on the line's first point
    assert white.sum() > 200 and difference[285:315, 0:60].any()
