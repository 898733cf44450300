"""What the visualization tests share: a real frame as a WorkflowImage, detections on it, and a
visualization step compiled from a published-format definition and built as the executor builds it."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import VideoMetadata, WorkflowImage, detections_on

CLASSES = ("person", "bicycle", "car")
# Ten boxes on a 768x576 frame, apart from each other, well inside the frame (x1, y1, x2, y2).
BOXES = np.array([[40 + 70 * i, 120 + 25 * (i % 4), 90 + 70 * i, 230 + 25 * (i % 4)] for i in range(10)],
                 dtype=np.float32)
CONFIDENCES = np.linspace(0.95, 0.5, 10, dtype=np.float32)
CLASS_IDS = np.array([i % 3 for i in range(10)])


class NoModels:
    def detect(self, model_id: str, image: Any, params: Any) -> Any:
        raise AssertionError("visualizations use no model")

    def classify(self, model_id: str, image: Any, confidence: float) -> Any:
        raise AssertionError("visualizations use no model")


class InlineBackground:
    def submit(self, work: Callable[[], None]) -> bool:
        work()
        return True


def workflow_image(pixels: np.ndarray, frame_number: int = 1) -> WorkflowImage:
    video = VideoMetadata("vtest", frame_number, datetime(2026, 12, 3, tzinfo=UTC), fps=10.0)
    return WorkflowImage.frame(pixels, "image.[0]", video)


def detections(image: WorkflowImage, boxes: np.ndarray = BOXES, tracker_ids: list[int] | None = None
               ) -> sv.Detections:
    """Detections as a model step gives them (sorted by confidence, every data field), optionally tracked."""
    count = len(boxes)
    found = detections_on(image, boxes, CONFIDENCES[:count], CLASS_IDS[:count], CLASSES, "inference-1")
    if tracker_ids is not None:
        found.tracker_id = np.array(tracker_ids, dtype=int)
    return found


def definition(step: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect",
             "images": "$inputs.image", "model_id": "coco/3"},
            {"type": "roboflow_core/roboflow_classification_model@v2", "name": "classify",
             "images": "$inputs.image", "model_id": "demo-colours/1"},
            {"name": "draw", "image": "$inputs.image", **step},
        ],
        "outputs": [{"type": "JsonField", "name": "drawn", "selector": "$steps.draw.image"}],
    }


class Step:
    """A compiled visualization step's block, called with the step's literal fields plus ``inputs``."""

    def __init__(self, block_type: str, source_id: int = 0, **fields: Any) -> None:
        predictions = CATALOGUE[block_type].field("predictions")
        if predictions is not None:  # the classifier's for a classification's label, else the detector's
            source = "classify" if kinds.CLASSIFICATION in predictions.kinds else "detect"
            fields.setdefault("predictions", f"$steps.{source}.predictions")
        step = compile_workflow(definition({"type": block_type, **fields})).step("draw")
        self.params = {name: value for name, value in step.params.items()
                       if not (isinstance(value, str) and value.startswith("$"))}
        env = BlockEnvironment(source_id=source_id, models=NoModels(), background=InlineBackground())
        self.block = REGISTRY[step.type](step, env)

    def __call__(self, **inputs: Any) -> WorkflowImage:
        outputs = self.block.run(**{**self.params, **inputs})
        assert isinstance(outputs, dict) and set(outputs) == {"image"}
        image = outputs["image"]
        assert isinstance(image, WorkflowImage)
        return image


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Where two images differ (H x W booleans)."""
    return np.asarray((before != after).any(axis=2))


def inside(boxes: np.ndarray, shape: tuple[int, ...], margin: int = 0) -> np.ndarray:
    """The union of ``boxes`` grown by ``margin`` pixels (H x W booleans)."""
    area = np.zeros(shape[:2], dtype=bool)
    for x1, y1, x2, y2 in boxes.astype(int).tolist():
        area[max(0, y1 - margin):y2 + margin + 1, max(0, x1 - margin):x2 + margin + 1] = True
    return area
