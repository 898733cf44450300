"""label_visualization v1 and v2: a text label per detection (class, confidence, tracker id, ...)."""

from collections.abc import Mapping
from typing import Any

import numpy as np
import supervision as sv

from services.worker.workflows.blocks.visualization.annotators import label_annotator
from services.worker.workflows.blocks.visualization.base import ColorableVisualization
from services.worker.workflows.blocks.visualization.colours import Colours
from services.worker.workflows.blocks.visualization.labels import adaptive_text_scale, label_texts
from services.worker.workflows.values import WorkflowImage


class LabelV1(ColorableVisualization):
    """The ``text`` option of each detection on a band of its colour, at ``text_position``."""

    def annotator(self, colours: Colours, text: str, **style: Any) -> Any:
        return label_annotator(colours, **style)

    def draw(self, annotator: Any, scene: np.ndarray, predictions: sv.Detections,
             config: Mapping[str, Any]) -> np.ndarray:
        if len(predictions) == 0:
            return scene
        labels = label_texts(predictions, config["text"])
        return np.asarray(annotator.annotate(scene=scene, detections=predictions, labels=labels))


class LabelV2(LabelV1):
    """v1 plus ``text_size_mode``: Automatic sizes the text from the image's resolution."""

    def configure(self, image: WorkflowImage, predictions: sv.Detections, config: dict[str, Any]) -> dict[str, Any]:
        config = super().configure(image, predictions, config)
        mode = config.pop("text_size_mode")
        return {**config, "text_scale": adaptive_text_scale(image.height, image.width, config["text_scale"], mode)}
