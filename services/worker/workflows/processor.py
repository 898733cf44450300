"""The round processor of a workflow pipeline: model steps on the frame ahead, the graph in order.

``prepare`` (collector thread) letterboxes each frame for every detection model that a step runs on
the video frame itself, stacking the round's frames into one batch per model; ``infer`` (inference
threads) runs those models; ``finish`` (post thread, in round order) runs each frame's graph on its
source's :class:`WorkflowExecutor`, with the models' raw outputs seeded so those steps only decode
and filter. Everything else (trackers, counters, crops and the models on them, drawing, sinks) runs
in ``finish``, where frame order and per-source state are guaranteed.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from services.core.workflows.ocr import OCR_BLOCKS, ocr_stages
from services.core.workflows.plan import WorkflowPlan
from services.worker.engine.frames import VideoFrame
from services.worker.ocr.engine import ocr_tasks
from services.worker.workflows.background import BackgroundRunner
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory
from services.worker.workflows.executor import ERRORS_KEY, StepError, WorkflowExecutor
from services.worker.workflows.models import ModelService
from services.worker.workflows.serialization import drop_pixels
from services.worker.workflows.values import VideoMetadata, WorkflowImage

_DETECTION = "roboflow_core/roboflow_object_detection_model@"


def models_ahead(plan: WorkflowPlan) -> list[str]:
    """Detection models that ungated steps run on the video frame: worth batching ahead."""
    frame_inputs = {f"$inputs.{name}" for name in plan.image_inputs}
    found: list[str] = []
    for step in plan.steps:
        if (step.type.startswith(_DETECTION) and step.dimensionality == 0 and not step.gates
                and step.params.get("images") in frame_inputs and step.params["model_id"] not in found):
            found.append(step.params["model_id"])
    return found


def model_tasks(plan: WorkflowPlan) -> dict[str, str]:
    """model_id -> the task its steps need (for loading and checking every model before the start); OCR steps
    need the models their stage sizes name."""
    tasks = {
        step.params["model_id"]: _model_task(step.type)
        for step in plan.steps
        if "model_id" in step.params and isinstance(step.params["model_id"], str)
    }
    for step in plan.steps:
        if step.type in OCR_BLOCKS:
            tasks.update(ocr_tasks(*ocr_stages(step.type, step.params)))
    return tasks


def _model_task(step_type: str) -> str:
    if "multi_label_classification" in step_type:
        return "multi-label-classification"
    return "classification" if "classification" in step_type else "object-detection"


class WorkflowProcessor:
    def __init__(
        self,
        plan: WorkflowPlan,
        models: ModelService,
        environment: Callable[[int], BlockEnvironment],
        on_step_errors: Callable[[Sequence[StepError]], None] = lambda errors: None,
        registry: Mapping[str, BlockFactory] = REGISTRY,
        background: BackgroundRunner | None = None,
        keep_pixels: bool = False,
    ) -> None:
        self._plan = plan
        # Image outputs keep their pixels beside their JPEG only for a consumer in this process (a WebRTC
        # peer's video); otherwise a result waiting in a sink queue would hold them too.
        self._keep_pixels = keep_pixels
        self._models = models
        self._environment = environment
        self._on_step_errors = on_step_errors
        self._registry = registry
        self._background = background  # closed with the pipeline: pending deliveries get a last chance
        self._ahead = models_ahead(plan)
        self._executors: dict[int, WorkflowExecutor] = {}

    def take_turn(self) -> object | None:
        """A turn at the inference service for the first model run ahead (None: no such model, or local)."""
        return self._models.detector(self._ahead[0]).take_turn() if self._ahead else None

    def prepare(self, frames: Sequence[VideoFrame]) -> dict[str, tuple[np.ndarray, list[Any]]]:
        prepared = {}
        for model_id in self._ahead:
            detector = self._models.detector(model_id)
            canvases, transforms = zip(*(detector.preprocess(frame.image) for frame in frames), strict=True)
            prepared[model_id] = (canvases[0] if len(canvases) == 1 else np.concatenate(canvases), list(transforms))
        return prepared

    def infer(self, prepared: Mapping[str, tuple[np.ndarray, list[Any]]]) -> dict[str, np.ndarray]:
        return {model_id: self._models.detector(model_id).infer(batch) for model_id, (batch, _) in prepared.items()}

    def finish(self, frames: Sequence[VideoFrame], prepared: Mapping[str, tuple[np.ndarray, list[Any]]],
               inferred: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        outputs = []
        for index, frame in enumerate(frames):
            for model_id, raw in inferred.items():
                self._models.seed(model_id, frame.image, raw[index], prepared[model_id][1][index])
            try:
                result, errors = self._executor(frame.source_id).run(self._image(frame))
            finally:
                self._models.clear_seeds()
            if not self._keep_pixels:
                drop_pixels(result)
            if errors:
                result[ERRORS_KEY] = [error.as_dict() for error in errors]
                self._on_step_errors(errors)
            outputs.append(result)
        return outputs

    def close(self, timeout: float) -> None:
        if self._background is not None:
            self._background.close(timeout)

    def _executor(self, source_id: int) -> WorkflowExecutor:
        executor = self._executors.get(source_id)
        if executor is None:
            executor = WorkflowExecutor(self._plan, self._registry, self._environment(source_id))
            self._executors[source_id] = executor
        return executor

    def _image(self, frame: VideoFrame) -> WorkflowImage:
        video = VideoMetadata(
            video_identifier=str(frame.source_id),
            frame_number=frame.frame_id,
            frame_timestamp=frame.frame_timestamp,
            fps=frame.fps,
            comes_from_video_file=frame.from_file,
        )
        return WorkflowImage.frame(frame.image, f"{self._plan.image_input}.[{frame.source_id}]", video)
