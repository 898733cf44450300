"""Helpers for the transformations family's tests: frames, detections, and steps built by the compiler."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.compiler import compile_workflow
from services.core.workflows.plan import WorkflowPlan
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transformations import BLOCKS
from services.worker.workflows.values import VideoMetadata, WorkflowImage, detections_on

NAMES = ("person", "car", "dog")


class NoModels:
    """The transformation blocks never ask for predictions."""

    def detect(self, model_id: str, image: Any, params: Any) -> Any:
        raise AssertionError("transformation blocks run no model")

    def classify(self, model_id: str, image: Any, confidence: float) -> Any:
        raise AssertionError("transformation blocks run no model")


class AtOnce:
    def submit(self, work: Callable[[], None]) -> bool:
        work()
        return True


def environment() -> BlockEnvironment:
    return BlockEnvironment(source_id=0, models=NoModels(), background=AtOnce())


def as_frame(pixels: np.ndarray, number: int = 1) -> WorkflowImage:
    video = VideoMetadata("vtest", number, datetime(2026, 12, 3, tzinfo=UTC), 10.0)
    return WorkflowImage.frame(pixels, "image.[0]", video)


def found(image: WorkflowImage, rows: list[tuple[float, float, float, float, float, str]],
          inference_id: str = "inference") -> sv.Detections:
    """Detections made on ``image`` from ``(x1, y1, x2, y2, confidence, class)`` rows."""
    xyxy = np.array([row[:4] for row in rows], dtype=np.float32).reshape(-1, 4)
    confidence = np.array([row[4] for row in rows], dtype=np.float32)
    class_id = np.array([NAMES.index(str(row[5])) for row in rows], dtype=np.int64)
    return detections_on(image, xyxy, confidence, class_id, NAMES, inference_id)


def definition(*steps: dict[str, Any], parameters: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """A published-format definition: the image input, parameters, then ``steps``."""
    return {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}, *parameters],
            "steps": list(steps), "outputs": []}


def detector(name: str, image: str = "$inputs.image") -> dict[str, Any]:
    return {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": name, "image": image,
            "model_id": "yolov3-tiny/coco-416"}


class Step:
    """One compiled step and its block: ``run(**values)`` feeds the block the step's compiled params,
    with ``values`` standing for what its selectors would give."""

    def __init__(self, plan: WorkflowPlan, name: str) -> None:
        self.step = plan.step(name)
        self.block = BLOCKS[self.step.type](self.step, environment())

    def run(self, **values: Any) -> Any:
        params = {**self.step.params, **values}
        unresolved = {k: v for k, v in params.items() if isinstance(v, str) and v.startswith("$")}
        assert not unresolved, f"give values for the selectors {unresolved}"
        return self.block.run(**params)


def step_of(step: dict[str, Any], *before: dict[str, Any]) -> Step:
    """``step`` compiled after ``before`` (by default one detector called ``detect``)."""
    plan = compile_workflow(definition(*(before or (detector("detect"),)), step))
    return Step(plan, step["name"])
