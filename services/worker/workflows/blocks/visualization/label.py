"""label_visualization v1 and v2: a text label per detection (class, confidence, tracker id, ...);
classification_label_visualization: a classification's classes as labels on the image."""

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
    """A classification as labels (``text``: a class's name, confidence or both) on bands of their classes'
    colours, at ``text_position`` of the image: its top or bottom edge (left, centre, right) or its middle row.

    The classification is of the whole image (a classifier's ``predictions``). A single-label one shows its top
    class; a multi-label one every predicted class, most confident first, one line each, stacked as the
    reference stacks them: down from the top edge, up to the bottom edge (the most confident still on top), or
    centred on the middle row. As there, a line is an estimate (20 px a text scale, the padding, the stroke,
    5 px): a top label's bottom sits a line below the top edge, a bottom label's top as far above the bottom edge.
    Left and right labels touch the image's side, the lines of a middle row aligned on the widest (the reference
    places them by an estimate of their width, about 15 px a character and a margin; here the measured width).
    """

    def run(self, image: WorkflowImage, predictions: Any, copy_image: bool = True, **config: Any) -> dict[str, Any]:
        if not isinstance(predictions, Classification):
            raise ValueError(f"{self.name}: predictions must be a classification model's predictions, "
                             f"got {type(predictions).__name__}")
        for name, allowed in (("text", CLASSIFICATION_TEXTS), ("text_position", EDGE_POSITIONS)):
            if config[name] not in allowed:
                raise ValueError(f"invalid {name} {config[name]!r}: expected one of {', '.join(allowed)}")
        shown = shown_classes(predictions)
        if len(shown):
            anchors = label_anchors(image.height, image.width, label_texts(shown, config["text"]), config)
            shown.xyxy = np.array([[x, y, x, y] for x, y in anchors], dtype=np.float32)  # points: every anchor there
        return super().run(image, shown, copy_image, **config)


def shown_classes(result: Classification) -> sv.Detections:
    """The classes a classification label shows, most confident first, as detections (no boxes yet) the label
    annotator can draw: a single-label result's top class, a multi-label result's predicted classes; none when
    the classifier has no classes (or nothing is predicted). Tracker id 0, so the TRACK colour axis works as the
    reference's."""
    if result.multi_label:
        shown = [index for index, name in enumerate(result.class_names) if name in result.predicted]
        shown.sort(key=lambda index: -float(result.confidences[index]))
    else:
        shown = [] if result.leading_index is None else [result.leading_index]
    if not shown:
        return sv.Detections.empty()
    return sv.Detections(xyxy=np.zeros((len(shown), 4), dtype=np.float32),
                         confidence=np.array([result.confidences[index] for index in shown], dtype=np.float32),
                         class_id=np.array(shown), tracker_id=np.zeros(len(shown), dtype=int),
                         data={CLASS_NAME: np.array([result.class_names[index] for index in shown], dtype=object)})


def label_anchors(height: int, width: int, labels: list[str], config: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Where each label's ``text_position`` anchor goes on a ``width`` x ``height`` image, the first label on the
    top line (see ClassificationLabel)."""
    scale, thickness, padding = config["text_scale"], config["text_thickness"], config["text_padding"]
    line = _LINE_HEIGHT * scale + 2 * padding + 2 * thickness + _LINE_GAP
    row, _, side = config["text_position"].partition("_")  # "TOP_LEFT" -> TOP, LEFT; "CENTER" -> CENTER, ""
    count = len(labels)
    if row == "TOP":
        rows = [line * (index + 1) for index in range(count)]
    elif row == "BOTTOM":
        rows = [height - line * (count - index) for index in range(count)]
    else:  # the lines' block centred on the middle row, kept inside the image where it fits
        start = max(0.0, min((height - count * line) / 2, height - count * line))
        rows = [start + line * (index + 0.5) for index in range(count)]
    # A middle-row label lies beside its anchor (left of it for CENTER_LEFT): move the anchor by the widest's width.
    widest = max(cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for label in labels)
    inset = widest + 2 * padding if row == "CENTER" else 0
    x = {"LEFT": inset, "RIGHT": width - inset}.get(side, width / 2)
    return [(float(x), float(y)) for y in rows]
