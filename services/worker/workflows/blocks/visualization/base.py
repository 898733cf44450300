"""What every visualization block shares: an annotator per configuration, and where it draws.

A block builds its supervision annotator from its options the first time it sees them and keeps it
(a few configurations at most, for options fed by selectors), so a frame costs only the drawing; the
trace annotator's history lives in its annotator, hence per block instance, hence per video source.
``copy_image`` true draws on a copy and leaves the input image as it was; false draws on the input's
own pixels (the reference's warning: other steps reading that image see the drawing too).
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.visualization.colours import Colours, colours
from services.worker.workflows.values import WorkflowImage

OUTPUT = "image"
CACHE_SIZE = 8  # configurations kept per block instance
_POSITION_FIELDS = ("position", "text_position")
_COLOUR_FIELDS = ("color_palette", "palette_size", "custom_colors", "color_axis")


def canvas(image: WorkflowImage, copy_image: bool) -> np.ndarray:
    """The pixels to draw on: a copy, or (``copy_image`` false) the image's own array."""
    if copy_image or not image.image.flags.writeable:
        return image.image.copy()
    return image.image


class AnnotatorCache:
    """Annotators by configuration (the options' values), the oldest dropped beyond ``size``."""

    def __init__(self, build: Callable[..., Any], size: int = CACHE_SIZE) -> None:
        self._build = build
        self._size = size
        self._items: dict[tuple[tuple[str, Any], ...], Any] = {}

    def get(self, config: Mapping[str, Any]) -> Any:
        key = tuple(sorted((name, _hashable(value)) for name, value in config.items()))
        annotator = self._items.get(key)
        if annotator is None:
            if len(self._items) >= self._size:
                del self._items[next(iter(self._items))]
            annotator = self._items[key] = self._build(**config)
        return annotator


class PredictionsVisualization:
    """A block that draws ``predictions`` on ``image`` with one annotator (``build`` makes it)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self.name = step.type
        self._annotators = AnnotatorCache(self.build)

    def build(self, *args: Any, **config: Any) -> Any:
        raise NotImplementedError

    def configure(self, image: WorkflowImage, predictions: sv.Detections, config: dict[str, Any]) -> dict[str, Any]:
        """The annotator's configuration for this frame (a hook: checks, derived options)."""
        return config

    def draw(self, annotator: Any, scene: np.ndarray, predictions: sv.Detections,
             config: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(annotator.annotate(scene=scene, detections=predictions))

    def run(self, image: WorkflowImage, predictions: sv.Detections, copy_image: bool = True,
            **config: Any) -> dict[str, Any]:
        config = self.configure(image, predictions, config)
        annotator = self._annotators.get(config)
        scene = self.draw(annotator, canvas(image, copy_image), predictions, config)
        return {OUTPUT: image.with_image(scene)}


class ColorableVisualization(PredictionsVisualization):
    """Adds the palette options; ``annotator`` gets them resolved as :class:`Colours`."""

    def build(self, *args: Any, **config: Any) -> Any:
        palette = colours(*(config.pop(name) for name in _COLOUR_FIELDS))
        return self.annotator(palette, **config)

    def annotator(self, colours: Colours, *args: Any, **style: Any) -> Any:
        raise NotImplementedError

    def configure(self, image: WorkflowImage, predictions: sv.Detections, config: dict[str, Any]) -> dict[str, Any]:
        if config.get("color_axis") == "TRACK" and len(predictions) and predictions.tracker_id is None:
            raise ValueError(f"{self.name}: color_axis TRACK needs tracked predictions (they have no tracker ids)")
        if predictions.mask is None:
            # Without masks the centre of mass of a detection is its box's centre.
            for name in _POSITION_FIELDS:
                if config.get(name) == "CENTER_OF_MASS":
                    config = {**config, name: "CENTER"}
        return config


def opacity_value(value: Any, name: str = "opacity") -> float:
    """An opacity from 0 (invisible) to 1 (opaque); a selector may feed any number, hence the check."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def masks_from_boxes(detections: sv.Detections, height: int, width: int) -> np.ndarray:
    """One boolean mask per detection filling its box (clipped to the image)."""
    masks = np.zeros((len(detections), height, width), dtype=bool)
    for index, (x1, y1, x2, y2) in enumerate(detections.xyxy.astype(int).tolist()):
        masks[index, max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = True
    return masks


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, _hashable(item)) for key, item in value.items()))
    return value
