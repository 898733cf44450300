"""roboflow_multi_label_classification_model@v1/v2/v3 on the multi-label demo model (which of red, green and blue
are present: sigmoid(10 x (channel mean - 0.5)) each): the reference's multi-label prediction, its thresholds, on
the frame and on crops, and into the blocks that take classifications."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.core.workflows.compiler import compile_workflow
from services.worker.detection.classifier import Classifier
from services.worker.models.classification_demo import (
    DEMO_CLASSIFIER_ID,
    DEMO_MULTI_LABEL_ID,
    build_demo_classifier,
    build_demo_multi_label,
)
from services.worker.models.errors import InvalidModelError
from services.worker.models.repository import ModelRepository
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.models import ModelService
from services.worker.workflows.processor import model_tasks
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import Classification, WorkflowImage
from tests.worker.workflows.query_values import frame

IMAGE = {"type": "WorkflowImage", "name": "image"}


def expected_scores(bgr: np.ndarray) -> list[float]:
    """What the model computes, by hand: the RGB means of a uniform image, through the sigmoid."""
    means = bgr[..., ::-1].reshape(-1, 3).mean(axis=0) / 255
    return [float(1 / (1 + np.exp(-10 * (m - 0.5)))) for m in means]


def solid(b: int, g: int, r: int) -> WorkflowImage:
    pixels = np.empty((576, 768, 3), np.uint8)
    pixels[:] = (b, g, r)
    return frame(pixels)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_demo_multi_label(root)
    build_demo_multi_label(root, "demo-colours-present/logits", sigmoid=False)
    build_demo_classifier(root)
    return root


@pytest.fixture
def models(repository: Path) -> ModelService:
    return ModelService(ModelRepository(repository))


def step_block(models: ModelService, version: int = 2, **fields: Any) -> tuple[Any, dict[str, Any]]:
    definition = {"version": "1.0", "inputs": [IMAGE], "outputs": [],
                  "steps": [{"type": f"roboflow_core/roboflow_multi_label_classification_model@v{version}",
                             "name": "tags", "images": "$inputs.image", "model_id": DEMO_MULTI_LABEL_ID, **fields}]}
    [step] = compile_workflow(definition).steps
    block = REGISTRY[step.type](step, BlockEnvironment(0, models, background=None))
    return block, {k: v for k, v in step.params.items() if k != "images"}


def test_the_model_is_registered_as_multi_label_and_scores_each_class_on_its_own(repository: Path) -> None:
    spec = ModelRepository(repository).resolve(DEMO_MULTI_LABEL_ID)
    assert spec.task_type == "multi-label-classification" and spec.class_names == ("red", "green", "blue")
    yellow = solid(0, 230, 240).image  # red and green, no blue
    scores = Classifier(spec, intra_op_threads=1).classify(yellow)
    assert scores.tolist() == pytest.approx(expected_scores(yellow), abs=1e-5)
    logits = Classifier(ModelRepository(repository).resolve("demo-colours-present/logits"), intra_op_threads=1)
    assert logits.classify(yellow).tolist() == pytest.approx(scores.tolist(), abs=1e-5)  # sigmoid, not softmax


def test_v2_gives_the_references_multi_label_prediction(models: ModelService) -> None:
    block, params = step_block(models, confidence=0.4)
    image = solid(0, 230, 240)
    outputs = block.run(images=image, **params)
    assert outputs["model_id"] == DEMO_MULTI_LABEL_ID
    prediction = serialise(outputs["predictions"])
    red, green, blue = expected_scores(image.image)
    assert prediction["predicted_classes"] == ["red", "green"]
    assert prediction["predictions"] == {"red": {"confidence": pytest.approx(red, abs=1e-5), "class_id": 0},
                                         "green": {"confidence": pytest.approx(green, abs=1e-5), "class_id": 1},
                                         "blue": {"confidence": pytest.approx(blue, abs=1e-5), "class_id": 2}}
    assert prediction["inference_id"] == outputs["inference_id"]
    assert (prediction["prediction_type"], prediction["parent_id"], prediction["root_parent_id"]) == (
        "classification", "image.[0]", "image.[0]")
    assert "top" not in prediction


def test_a_class_is_predicted_only_above_the_threshold(models: ModelService) -> None:
    grey = solid(128, 128, 128)  # each score sigmoid(10 x (128/255 - 0.5)) = 0.5049...
    [score] = set(np.round(expected_scores(grey.image), 4).tolist())
    below, params = step_block(models, version=1, confidence=0.5)
    outputs = below.run(images=grey, **params)
    assert "model_id" not in outputs and outputs["predictions"].predicted == ("red", "green", "blue")
    above, params = step_block(models, version=1, confidence=0.51)
    assert score < 0.51 and above.run(images=grey, **params)["predictions"].predicted == ()


@pytest.mark.parametrize(("fields", "predicted"), [
    ({}, ()),  # "best": 0.5, the reference's multi-label threshold when a request names none
    ({"confidence_mode": "default"}, ()),
    ({"confidence_mode": "custom", "custom_confidence": 0.1}, ("red", "green", "blue")),
])
def test_v3_confidence_modes(models: ModelService, fields: dict[str, Any], predicted: tuple[str, ...]) -> None:
    block, params = step_block(models, version=3, **fields)
    dark = solid(100, 100, 120)  # scores 0.25, 0.25, 0.43: below 0.5, above 0.1
    result = block.run(images=dark, **params)["predictions"]
    assert result.threshold == (0.1 if fields.get("confidence_mode") == "custom" else 0.5)
    assert result.predicted == predicted


def test_a_multi_label_model_is_not_a_classifier_nor_the_other_way_round(models: ModelService) -> None:
    with pytest.raises(InvalidModelError, match="multi-label-classification model; this step needs classification"):
        models.classify(DEMO_MULTI_LABEL_ID, solid(0, 0, 0), 0.4)
    with pytest.raises(InvalidModelError, match="classification model; this step needs multi-label-classification"):
        models.classify_multi_label(DEMO_CLASSIFIER_ID, solid(0, 0, 0), 0.4)


def crops_workflow(version: int = 2) -> dict[str, Any]:
    """Two regions given as a VLM's detections, cropped, tagged; each detection relabelled by its crop's tags."""
    answer = ('{"detections": [{"x_min": 0, "y_min": 0, "x_max": 0.5, "y_max": 1, "class_name": "left"},'
              ' {"x_min": 0.5, "y_min": 0, "x_max": 1, "y_max": 1, "class_name": "right"}]}')
    return {
        "version": "1.0", "inputs": [IMAGE],
        "steps": [
            {"type": "roboflow_core/vlm_as_detector@v2", "name": "regions", "image": "$inputs.image",
             "vlm_output": answer, "classes": ["left", "right"], "model_type": "anthropic-claude",
             "task_type": "object-detection"},
            {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
             "predictions": "$steps.regions.predictions"},
            {"type": f"roboflow_core/roboflow_multi_label_classification_model@v{version}", "name": "tags",
             "images": "$steps.crops.crops", "model_id": DEMO_MULTI_LABEL_ID, "confidence": 0.5},
            {"type": "roboflow_core/detections_classes_replacement@v1", "name": "relabelled",
             "object_detection_predictions": "$steps.regions.predictions",
             "classification_predictions": "$steps.tags.predictions"},
            {"type": "roboflow_core/property_definition@v1", "name": "tag_names", "data": "$steps.tags.predictions",
             "operations": [{"type": "ClassificationPropertyExtract", "property_name": "top_class"}]},
            {"type": "roboflow_core/classification_label_visualization@v1", "name": "label",
             "image": "$inputs.image", "predictions": "$steps.tags.predictions", "text": "Class"},
        ],
        "outputs": [{"type": "JsonField", "name": name, "selector": f"$steps.{step}"} for name, step in (
            ("tags", "tags.predictions"), ("relabelled", "relabelled.predictions"), ("tag_names", "tag_names.output"))],
    }


def test_on_crops_each_detection_takes_its_crops_most_confident_tag(models: ModelService) -> None:
    pixels = np.zeros((576, 768, 3), np.uint8)
    pixels[:, :384] = (0, 200, 250)  # left half: red and green (more red)
    pixels[:, 384:] = (250, 0, 0)  # right half: blue
    plan = compile_workflow(crops_workflow())
    outputs, errors = WorkflowExecutor(plan, REGISTRY, BlockEnvironment(0, models, background=None)).run(
        frame(pixels))
    assert errors == []
    left, right = outputs["tags"]
    assert left["predicted_classes"] == ["red", "green"] and right["predicted_classes"] == ["blue"]
    assert left["predictions"]["red"]["confidence"] == pytest.approx(expected_scores(pixels[:, :384])[0], abs=1e-4)
    assert outputs["tag_names"] == [["red", "green"], ["blue"]]
    relabelled = outputs["relabelled"]["predictions"]
    assert [(p["class"], p["class_id"], p["x"]) for p in relabelled] == [("red", 0, 192.0), ("blue", 2, 576.0)]
    assert relabelled[0]["confidence"] == pytest.approx(left["predictions"]["red"]["confidence"])


def test_a_crop_with_nothing_predicted_drops_its_detection(models: ModelService) -> None:
    pixels = np.zeros((576, 768, 3), np.uint8)
    pixels[:, 384:] = (250, 0, 0)  # left half black: nothing predicted
    outputs, _ = WorkflowExecutor(compile_workflow(crops_workflow(1)), REGISTRY,
                                  BlockEnvironment(0, models, background=None)).run(frame(pixels))
    assert [p["class"] for p in outputs["relabelled"]["predictions"]] == ["blue"]


def test_the_worker_loads_a_multi_label_step_as_multi_label() -> None:
    plan = compile_workflow(crops_workflow(3))
    assert model_tasks(plan) == {DEMO_MULTI_LABEL_ID: "multi-label-classification"}


def test_the_classification_label_draws_the_most_confident_predicted_class() -> None:
    result = Classification(frame(), ("red", "green", "blue"), np.array([0.7, 0.9, 0.95], np.float32), "i",
                            0.5, multi_label=True, predicted=("red", "green"))
    assert (result.top, result.top_confidence) == ("green", pytest.approx(0.9))
    nothing = Classification(frame(), ("red",), np.array([0.1], np.float32), "i", 0.5, multi_label=True)
    assert (nothing.top, nothing.leading_index) == ("", None)
