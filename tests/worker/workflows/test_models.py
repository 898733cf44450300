"""The models of a workflow on the real detector: loaded once per process, thresholds and class
filters per step, predictions ahead of the graph equal to predictions made inline, clear errors."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from services.core.workflows import compile_workflow
from services.worker.models.errors import InvalidModelError, ModelNotFoundError
from services.worker.models.repository import ModelRepository, ModelSpec
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.models import BLOCKS
from services.worker.workflows.models import ModelService
from services.worker.workflows.values import CLASS_NAME, VideoMetadata, WorkflowImage
from tests.support import workflow_definitions as wf
from tests.worker.conftest import MODELS


@pytest.fixture
def models(default_model: ModelSpec) -> ModelService:
    return ModelService(ModelRepository(MODELS))


@pytest.fixture
def frame(video_frame: Callable[[str, int], np.ndarray]) -> WorkflowImage:
    video = VideoMetadata("0", 10, datetime.now(UTC), 10.0, None, True)
    return WorkflowImage.frame(video_frame("vtest.avi", 10), "image.[0]", video)


def step_block(models: ModelService, **step: object) -> tuple[object, dict[str, object]]:
    """The block and parameters of the one-detection workflow's step, changed by ``step``."""
    definition = wf.detection_only()
    definition["steps"][0].update(step)
    return block_of(models, definition)


def block_of(models: ModelService, definition: dict[str, Any]) -> tuple[object, dict[str, object]]:
    """The block of a one-step workflow and the parameters it is called with (but its image)."""
    [plan_step] = compile_workflow(definition).steps
    block = BLOCKS[plan_step.type](plan_step, BlockEnvironment(0, models, background=None))  # type: ignore[arg-type]
    params = {k: v for k, v in plan_step.params.items() if k != "images"}
    return block, params


def test_a_model_is_loaded_once_per_process_for_every_step_and_pipeline(models: ModelService) -> None:
    other = ModelService(ModelRepository(MODELS))
    assert models.detector(wf.MODEL) is models.detector(wf.MODEL) is other.detector(wf.MODEL)


def test_steps_apply_their_own_threshold_and_class_filter(models: ModelService, frame: WorkflowImage) -> None:
    loose_block, loose = step_block(models, confidence=0.1)
    strict_block, strict = step_block(models, confidence=0.6, class_filter=["car"])

    everything = loose_block.run(images=frame, **loose)["predictions"]  # type: ignore[attr-defined]
    cars = strict_block.run(images=frame, **strict)["predictions"]  # type: ignore[attr-defined]

    assert {"person", "car"} <= set(everything.data[CLASS_NAME])
    assert set(cars.data[CLASS_NAME]) <= {"car"} and len(cars) < len(everything)
    assert (cars.confidence >= 0.6).all() and list(cars.confidence) == sorted(cars.confidence, reverse=True)


def test_a_prediction_seeded_ahead_equals_the_inline_one(models: ModelService, frame: WorkflowImage) -> None:
    block, params = step_block(models, confidence=0.3)
    inline = block.run(images=frame, **params)["predictions"]  # type: ignore[attr-defined]
    detector = models.detector(wf.MODEL)
    tensor, transform = detector.preprocess(frame.image)
    models.seed(wf.MODEL, frame.image, detector.infer(tensor)[0], transform)

    seeded = block.run(images=frame, **params)["predictions"]  # type: ignore[attr-defined]
    models.clear_seeds()

    np.testing.assert_allclose(seeded.xyxy, inline.xyxy, atol=1e-3)
    assert list(seeded.data[CLASS_NAME]) == list(inline.data[CLASS_NAME])


def test_v3_confidence_modes(models: ModelService, frame: WorkflowImage) -> None:
    block, params = step_block(models, type="roboflow_core/roboflow_object_detection_model@v3",
                               confidence_mode="custom", custom_confidence=0.8)
    strict = block.run(images=frame, **params)["predictions"]  # type: ignore[attr-defined]
    block, params = step_block(models, type="roboflow_core/roboflow_object_detection_model@v3")
    best = block.run(images=frame, **params)["predictions"]  # type: ignore[attr-defined]

    assert (strict.confidence >= 0.8).all() and (best.confidence >= 0.4).all() and len(best) > len(strict)


def test_a_missing_or_wrong_model_is_a_clear_error(models: ModelService) -> None:
    with pytest.raises(ModelNotFoundError, match="nobody/1"):
        models.preload({"nobody/1": "object-detection"})
    with pytest.raises(InvalidModelError, match="classification"):
        models.classifier(wf.MODEL)


@pytest.mark.parametrize(("modes", "threshold"), [({}, 0.4), ({"confidence_mode": "default"}, 0.4),
                                                  ({"confidence_mode": "custom", "custom_confidence": 0.9}, 0.9)])
def test_classification_v3_takes_its_threshold_from_its_confidence_mode(
        models: ModelService, frame: WorkflowImage, modes: dict[str, object], threshold: float) -> None:
    block, params = block_of(models, {
        "version": "1.0", "inputs": [wf.IMAGE],
        "steps": [{"type": "roboflow_core/roboflow_classification_model@v3", "name": "colour",
                   "images": "$inputs.image", "model_id": wf.CLASSIFIER, **modes}],
        "outputs": [{"type": "JsonField", "name": "colour", "selector": "$steps.colour.predictions"}]})

    outputs = block.run(images=frame, **params)  # type: ignore[attr-defined]

    assert outputs["model_id"] == wf.CLASSIFIER and outputs["predictions"].threshold == threshold
    assert outputs["predictions"].top in ("red", "green", "blue")
