"""Test helpers for the tracking and analytics blocks: frames with video metadata, detections, and a
compiled step's block run with runtime values (so the catalogue entry is exercised too)."""

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.compiler import compile_workflow
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import VideoMetadata, WorkflowImage, detections_on

START = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
WIDTH, HEIGHT = 768, 576


class NoModels:
    """These blocks run no model."""

    def detect(self, model_id: str, image: Any, params: Mapping[str, Any]) -> Any:
        raise AssertionError("no model expected")

    def classify(self, model_id: str, image: Any, confidence: float) -> Any:
        raise AssertionError("no model expected")


class RunAtOnce:
    def submit(self, work: Callable[[], None]) -> bool:
        work()
        return True


def video(frame: int, fps: float | None = 25.0, *, file: bool = True, seconds: float | None = None,
          identifier: str = "cam") -> VideoMetadata:
    """Frame ``frame``'s metadata; its timestamp is START + ``seconds`` (default frame / fps)."""
    if seconds is None:
        seconds = frame / (fps or 25.0)
    return VideoMetadata(identifier, frame, START + timedelta(seconds=seconds), fps, fps, file)


def image(frame: int, fps: float | None = 25.0, **kwargs: Any) -> WorkflowImage:
    return WorkflowImage.frame(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "image", video(frame, fps, **kwargs))


def boxes(xyxy: Sequence[Sequence[float]], confidence: Sequence[float] | None = None,
          tracker_id: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
          on: WorkflowImage | None = None) -> sv.Detections:
    """Model-like detections (every lineage field, uuid detection ids), optionally tracked."""
    count = len(xyxy)
    names = list(class_names or ["person"] * count)
    vocabulary = sorted(set(names))
    detections = detections_on(
        on or image(0),
        np.asarray(xyxy, dtype=np.float32).reshape(-1, 4),
        np.asarray(confidence if confidence is not None else [0.9] * count, dtype=np.float32),
        np.asarray([vocabulary.index(n) for n in names], dtype=np.int64),
        vocabulary,
        "inference",
    )
    if tracker_id is not None:
        # detections_on sorts by confidence: keep ids with their boxes.
        order = np.argsort(-np.asarray(confidence if confidence is not None else [0.9] * count), kind="stable")
        detections.tracker_id = np.asarray(tracker_id, dtype=np.int64)[order]
    return detections


def box_at(cx: float, cy: float, size: float = 40.0) -> list[float]:
    half = size / 2
    return [cx - half, cy - half, cx + half, cy + half]


def definition(*steps: dict[str, Any]) -> dict[str, Any]:
    """A published-format definition: image and metadata inputs, a detector, a tracker, then ``steps``."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   {"type": "WorkflowVideoMetadata", "name": "video_metadata"}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect",
             "image": "$inputs.image", "model_id": "yolov8n-640"},
            {"type": "roboflow_core/byte_tracker@v3", "name": "track", "image": "$inputs.image",
             "detections": "$steps.detect.predictions"},
            *steps,
        ],
        "outputs": [],
    }


class StepRunner:
    """The block of one step of a compiled definition, for one source, run with runtime values."""

    def __init__(self, step: dict[str, Any], source_id: int = 0) -> None:
        plan = compile_workflow(definition(step))
        self.step: PlanStep = plan.step(step["name"])
        env = BlockEnvironment(source_id=source_id, models=NoModels(), background=RunAtOnce())
        self.block = REGISTRY[self.step.type](self.step, env)

    def __call__(self, **runtime: Any) -> dict[str, Any]:
        """``runtime``: a value for every selector field (by canonical name)."""
        outputs = self.block.run(**resolved(self.step, **runtime))
        assert isinstance(outputs, dict)
        return outputs


def resolved(step: PlanStep, **runtime: Any) -> dict[str, Any]:
    """The step's inputs: its literal params, and ``runtime`` values for its selector fields (all of them)."""
    inputs: dict[str, Any] = {}
    for name, value in step.params.items():
        selected = isinstance(value, str) and value.startswith("$")
        inputs[name] = runtime.pop(name) if selected else value
    assert not runtime, f"not selector fields of {step.type}: {sorted(runtime)}"
    return inputs


def tracker_step(version: str = "v3", **fields: Any) -> dict[str, Any]:
    source = {"metadata": "$inputs.video_metadata"} if version == "v1" else {"image": "$inputs.image"}
    return {"type": f"roboflow_core/byte_tracker@{version}", "name": "tracker",
            "detections": "$steps.detect.predictions", **source, **fields}
