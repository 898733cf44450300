"""Visualizations that change each detection's region: colour it, halo it, blur or pixelate it, or show it zoomed;
or paint everything outside the regions (background_color)."""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import supervision as sv

from services.worker.workflows.blocks.visualization.annotators import anchor
from services.worker.workflows.blocks.visualization.base import (
    ColorableVisualization,
    PredictionsVisualization,
    masks_from_boxes,
    opacity_value,
)
from services.worker.workflows.blocks.visualization.colours import Colours, parse_color


class ColorFill(ColorableVisualization):
    """Each detection's box or mask filled with its colour at ``opacity``."""

    def annotator(self, colours: Colours, opacity: float) -> Any:
        return sv.ColorAnnotator(color=colours.palette, color_lookup=colours.lookup, opacity=opacity)


class Halo(ColorableVisualization):
    """A glow around each mask; detections without masks glow around their boxes (as the reference).

    The reference's v1 ignores ``kernel_size`` (always 40); both versions here honour it.
    """

    def annotator(self, colours: Colours, opacity: float, kernel_size: int) -> Any:
        return sv.HaloAnnotator(color=colours.palette, color_lookup=colours.lookup, opacity=opacity,
                                kernel_size=kernel_size)

    def draw(self, annotator: Any, scene: np.ndarray, predictions: sv.Detections,
             config: Mapping[str, Any]) -> np.ndarray:
        if len(predictions) and predictions.mask is None:
            predictions = replace(predictions, mask=masks_from_boxes(predictions, *scene.shape[:2]))
        return np.asarray(annotator.annotate(scene=scene, detections=predictions))


class Crop(ColorableVisualization):
    """Each detection's region, scaled by ``scale_factor``, drawn at its ``position`` with a coloured border."""

    def annotator(self, colours: Colours, position: str, scale_factor: float, border_thickness: int) -> Any:
        return sv.CropAnnotator(position=anchor(position), scale_factor=scale_factor, border_color=colours.palette,
                                border_thickness=border_thickness, border_color_lookup=colours.lookup)


class Blur(PredictionsVisualization):
    def build(self, kernel_size: int) -> Any:
        return sv.BlurAnnotator(kernel_size=kernel_size)


class Pixelate(PredictionsVisualization):
    def build(self, pixel_size: int) -> Any:
        return sv.PixelateAnnotator(pixel_size=pixel_size)


class BackgroundColor(PredictionsVisualization):
    """Everything outside the detections' boxes (masks, when they have them) blended with ``color`` at ``opacity``.

    With no detections the whole image is painted, as the reference.
    """

    def build(self, color: str, opacity: float) -> Any:
        return sv.BackgroundOverlayAnnotator(color=parse_color(color), opacity=opacity_value(opacity))
