"""The classifier on a real ONNX classification graph (the demo red/green/blue model) and real video crops."""

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.worker.detection.classifier import Classifier, softmax
from services.worker.detection.detector import Detector
from services.worker.models.classification_demo import GAIN, build_demo_classifier
from services.worker.models.errors import InvalidModelError
from services.worker.models.repository import ModelSpec

Frames = Callable[[str, int], np.ndarray]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    return Classifier(build_demo_classifier(tmp_path_factory.mktemp("models")), intra_op_threads=1)


def expected(image_bgr: np.ndarray) -> np.ndarray:
    """What the demo graph computes, by hand: softmax of GAIN x mean R, G, B (/255) of the 64x64 resize."""
    resized = cv2.resize(image_bgr, (64, 64), interpolation=cv2.INTER_LINEAR).astype(np.float64) / 255
    means = resized.reshape(-1, 3).mean(axis=0)[::-1]  # BGR -> RGB
    return softmax(GAIN * means[None])[0]


@pytest.mark.parametrize(("bgr", "name"), [((0, 0, 255), "red"), ((0, 255, 0), "green"), ((255, 0, 0), "blue"),
                                           ((40, 60, 200), "red"), ((10, 180, 90), "green")])
def test_solid_colours(classifier: Classifier, bgr: tuple[int, int, int], name: str) -> None:
    image = np.empty((50, 80, 3), dtype=np.uint8)
    image[:] = bgr
    probabilities = classifier.classify(image)
    assert probabilities.shape == (3,) and probabilities.dtype == np.float32
    assert classifier.class_names[int(np.argmax(probabilities))] == name
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(probabilities, expected(image), atol=1e-5)


def test_pure_colours_are_certain_and_grey_is_a_tie(classifier: Classifier) -> None:
    red = np.zeros((64, 64, 3), dtype=np.uint8)
    red[..., 2] = 255
    assert classifier.classify(red)[0] > 0.9999
    grey = np.full((64, 64, 3), 128, dtype=np.uint8)
    assert np.allclose(classifier.classify(grey), [1 / 3] * 3, atol=1e-6)


@pytest.mark.parametrize("index", [0, 100, 300])
def test_real_crops_deterministic_and_as_computed(classifier: Classifier, video_frame: Frames, index: int) -> None:
    frame = video_frame("vtest.avi", index)
    for x1, y1, x2, y2 in [(0, 0, 768, 576), (100, 50, 220, 300), (500, 300, 530, 310), (700, 0, 768, 576)]:
        crop = frame[y1:y2, x1:x2]
        first, second = classifier.classify(crop), classifier.classify(crop.copy())
        assert np.array_equal(first, second)
        assert np.allclose(first, expected(crop), atol=1e-5)


def test_logits_model_gives_the_same_probabilities(classifier: Classifier, tmp_path: Path,
                                                   video_frame: Frames) -> None:
    spec = build_demo_classifier(tmp_path, softmax=False)
    assert spec.logits is True
    raw = Classifier(spec, intra_op_threads=1)
    crop = video_frame("vtest.avi", 100)[100:300, 200:400]
    assert np.allclose(raw.classify(crop), classifier.classify(crop), atol=1e-6)


def test_a_batch_is_each_image_alone(classifier: Classifier, video_frame: Frames) -> None:
    frame = video_frame("vtest.avi", 100)
    crops = [frame[0:100, 0:100], frame[200:400, 300:350], np.full((9, 9, 3), (0, 255, 0), dtype=np.uint8)]
    batch = classifier.infer(np.concatenate([classifier.preprocess(crop) for crop in crops]))
    assert batch.shape == (3, 3)
    assert np.allclose(batch, [classifier.classify(crop) for crop in crops], atol=1e-6)


def test_empty_image_refused(classifier: Classifier) -> None:
    with pytest.raises(ValueError, match="non-empty HxWx3"):
        classifier.classify(np.zeros((0, 10, 3), dtype=np.uint8))


def test_models_of_the_other_task_refused(classifier: Classifier, default_model: ModelSpec) -> None:
    with pytest.raises(InvalidModelError,
                       match=r"'yolov3-tiny/coco-416' is not a classifier \(its task: object-detection\)"):
        Classifier(default_model)
    with pytest.raises(InvalidModelError,
                       match=r"'demo-colours/1' is not an object detector \(its task: classification\)"):
        Detector(classifier.model)
