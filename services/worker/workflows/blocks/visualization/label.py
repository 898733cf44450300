"""label_visualization v1 and v2: a text label per detection (class, confidence, tracker id, ...);
classification_label_visualization: a classification's top class as a label on the image."""

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.workflows.catalogue.visualization import CLASSIFICATION_TEXTS, EDGE_POSITIONS
from services.worker.workflows.blocks.visualization.annotators import label_annotator
from services.worker.workflows.blocks.visualization.base import ColorableVisualization
from services.worker.workflows.blocks.visualization.colours import Colours
from services.worker.workflows.blocks.visualization.labels import adaptive_text_scale, label_texts
from services.worker.workflows.values import CLASS_NAME, Classification, WorkflowImage

# classification_label's layout (the reference's): a line's height at text scale 1, and the gap after it.
_LINE_HEIGHT = 20
_LINE_GAP = 5


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


class ClassificationLabel(LabelV1):
    """A classification's top class (``text``: its name, confidence or both) on a band of its class's colour,
    at ``text_position`` of the image: its top or bottom edge (left, centre, right) or its middle row.

    The classification is of the whole image (a classifier's ``predictions``); this project's classifiers are
    single-label, so one label is drawn, as the reference draws a single-label prediction. As there, a top
    label's bottom sits a line (an estimate: 20 px a text scale, the padding, the stroke, 5 px) below the top
    edge, a bottom label's top as far above the bottom edge, a middle label is centred vertically. Left and
    right labels touch the image's side (the reference places the middle row's ones by an estimate of their
    width, about 15 px a character and a margin; here their measured width is used).
    """

    def run(self, image: WorkflowImage, predictions: Any, copy_image: bool = True, **config: Any) -> dict[str, Any]:
        if not isinstance(predictions, Classification):
            raise ValueError(f"{self.name}: predictions must be a classification model's predictions, "
                             f"got {type(predictions).__name__}")
        for name, allowed in (("text", CLASSIFICATION_TEXTS), ("text_position", EDGE_POSITIONS)):
            if config[name] not in allowed:
                raise ValueError(f"invalid {name} {config[name]!r}: expected one of {', '.join(allowed)}")
        top = top_class(predictions)
        if len(top):
            [label] = label_texts(top, config["text"])
            x, y = label_anchor(image.height, image.width, label, config)
            top.xyxy = np.array([[x, y, x, y]], dtype=np.float32)  # a point: each anchor of the box is there
        return super().run(image, top, copy_image, **config)


def top_class(result: Classification) -> sv.Detections:
    """The top class of ``result`` as one detection (no box yet) that the label annotator can draw (of a
    multi-label result, its most confident predicted class); none when the classifier has no classes (or nothing
    is predicted). Its tracker id is 0, so the TRACK colour axis works as the reference's."""
    index = result.leading_index
    if index is None:
        return sv.Detections.empty()
    return sv.Detections(xyxy=np.zeros((1, 4), dtype=np.float32),
                         confidence=np.array([result.confidences[index]], dtype=np.float32),
                         class_id=np.array([index]), tracker_id=np.array([0]),
                         data={CLASS_NAME: np.array([result.class_names[index]], dtype=object)})


def label_anchor(height: int, width: int, label: str, config: Mapping[str, Any]) -> tuple[float, float]:
    """Where the label's ``text_position`` anchor goes on a ``width`` x ``height`` image (see ClassificationLabel)."""
    scale, thickness, padding = config["text_scale"], config["text_thickness"], config["text_padding"]
    line = _LINE_HEIGHT * scale + 2 * padding + 2 * thickness + _LINE_GAP
    row, _, side = config["text_position"].partition("_")  # "TOP_LEFT" -> TOP, LEFT; "CENTER" -> CENTER, ""
    y = {"TOP": line, "BOTTOM": height - line}.get(row, max(height, line) / 2)
    # A middle-row label lies beside its anchor (left of it for CENTER_LEFT): move the anchor by its width.
    label_width = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] + 2 * padding
    inset = label_width if row == "CENTER" else 0
    x = {"LEFT": inset, "RIGHT": width - inset}.get(side, width / 2)
    return float(x), float(y)
