"""The classifier: one onnxruntime session for one registered multi-class or multi-label classification model.

``classify`` = ``preprocess`` (stretch to the model's input size, channel order, scale, mean/std)
-> ``infer`` (session.run on a batch) -> probabilities per class (when the model outputs logits: their softmax
for a multi-class model, each one's sigmoid for a multi-label one). The image is stretched, not letterboxed,
as classifiers are trained on resized crops.
"""

from typing import Any

import cv2
import numpy as np

from services.worker.detection.detector import ModelHost
from services.worker.models.errors import InvalidModelError
from services.worker.models.repository import CLASSIFIER_TASKS, TASK_MULTI_LABEL_CLASSIFICATION, ModelSpec


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a [B, C] array (shifted by the row maximum, so large logits do not overflow)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float32)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, without overflow for large negative logits."""
    logits = np.asarray(logits, dtype=np.float64)
    positive = logits >= 0
    exp = np.exp(np.where(positive, -logits, logits))
    return np.asarray(np.where(positive, 1.0 / (1.0 + exp), exp / (1.0 + exp)), dtype=np.float32)


class Classifier(ModelHost):
    """Runs one classification model on BGR uint8 images."""

    task_name = "a classifier"

    def __init__(self, model: ModelSpec, **options: Any) -> None:
        super().__init__(model, **options)
        self._mean = np.asarray(model.mean, dtype=np.float32).reshape(3, 1, 1)
        self._inv_std = (1.0 / np.asarray(model.std, dtype=np.float32)).reshape(3, 1, 1)

    @staticmethod
    def accepts(model: ModelSpec) -> bool:
        return model.task_type in CLASSIFIER_TASKS

    @property
    def multi_label(self) -> bool:
        return self.model.task_type == TASK_MULTI_LABEL_CLASSIFICATION

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """A BGR uint8 HxWx3 image as the model's [1, 3, H, W] float32 input."""
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"expected a non-empty HxWx3 BGR image, got shape {image.shape}")
        size = (self.model.input_width, self.model.input_height)
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        if self.model.color == "RGB":
            image = image[:, :, ::-1]
        chw = np.transpose(image, (2, 0, 1)).astype(np.float32) * np.float32(self.model.scale)
        return np.ascontiguousarray(((chw - self._mean) * self._inv_std)[None], dtype=np.float32)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities [B, C] of a [B, 3, H, W] float32 batch."""
        scores = np.asarray(self._runner.run(batch), dtype=np.float32).reshape(len(batch), -1)
        if scores.shape[1] != self.model.num_classes:
            raise InvalidModelError(
                f"{self.model.model_id}: the model gave {scores.shape[1]} scores for {self.model.num_classes} classes"
            )
        if not self.model.logits:
            return scores
        return sigmoid(scores) if self.multi_label else softmax(scores)

    def classify(self, image: np.ndarray) -> np.ndarray:
        """Probability per class (in ``class_names`` order) of one BGR uint8 image."""
        return np.asarray(self.infer(self.preprocess(image))[0], dtype=np.float32)
