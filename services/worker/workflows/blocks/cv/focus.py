"""camera_focus v1 and v2: how sharp a camera's picture is (a dirty or defocused lens scores low).

v1 (Brenner): the squared largest positive grey-level step two pixels apart (rightwards or downwards) at each
pixel; ``focus_measure`` is its mean, ``image`` that map scaled to 0..255 with the value written top-left.

v2 (Tenengrad): the squared 3 x 3 Sobel gradient (gx² + gy²) at each pixel; ``focus_measure`` is its mean over
the image, ``bbox_focus_measures`` its mean inside each given box (null for a box outside the image). ``image``
is the frame with the camera aids the step asks for, drawn in this order: zebra stripes on under- (blue) and
over-exposed (red) areas, focus peaking (green on the sharpest areas), a centre cross, a composition grid and a
heads-up display (the value and the exposure histograms); with none of them it is the input image itself.

As the reference, both measures depend on the picture's content and size: compare a camera with itself.
"""

from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.cv.gray import bgr, grayscale
from services.worker.workflows.values import WorkflowImage

GRID_DIVISIONS = {"None": 0, "2x2": 2, "3x3": 3, "4x4": 4, "5x5": 5}
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE, _BLUE, _GREEN, _RED = (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255)
_ZEBRA_SPACING = 8  # px: the width of a diagonal stripe
_ZEBRA_OPACITY = 0.5
_PEAKING_PERCENT = 30.0  # of the sharpest pixel's measure: what counts as in focus
_PEAKING_OPACITY = 0.6
_GRID_COLOUR = (128, 128, 128)
_HUD_OPACITY = 0.7


def brenner(gray: np.ndarray) -> np.ndarray:
    """Brenner's focus map of a 2-D grey image (float64, same size; the last two rows/columns see one way only)."""
    levels = gray.astype(np.int16)
    rightwards = np.zeros(levels.shape)
    downwards = np.zeros(levels.shape)
    rightwards[:, :-2] = np.clip(levels[:, 2:] - levels[:, :-2], 0, None)
    downwards[:-2, :] = np.clip(levels[2:, :] - levels[:-2, :], 0, None)
    return np.square(np.maximum(rightwards, downwards))


def tenengrad(gray: np.ndarray) -> np.ndarray:
    """The Tenengrad focus map of a 2-D grey image: gx² + gy² of 3 x 3 Sobel gradients (float32)."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return np.asarray(gx * gx + gy * gy, dtype=np.float32)


def box_means(measure: np.ndarray, detections: sv.Detections | None) -> list[float | None]:
    """The mean of ``measure`` inside each detection's box (truncated to whole pixels and clipped to the image);
    None for a box with nothing inside the image."""
    if detections is None:
        return []
    height, width = measure.shape
    means: list[float | None] = []
    for box in detections.xyxy:
        x1, y1, x2, y2 = (int(c) for c in box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
        means.append(float(measure[y1:y2, x1:x2].mean()) if x2 > x1 and y2 > y1 else None)
    return means


def _blend(pixels: np.ndarray, where: np.ndarray, colour: tuple[int, int, int], opacity: float) -> None:
    """Tint ``pixels`` towards ``colour`` by ``opacity`` where ``where`` is true (in place)."""
    pixels[where] = (pixels[where] * (1.0 - opacity) + np.array(colour) * opacity).astype(np.uint8)


def _zebra(pixels: np.ndarray, gray: np.ndarray, under: int, over: int) -> None:
    rows, columns = np.indices(gray.shape)
    stripes = ((rows + columns) // _ZEBRA_SPACING) % 2 == 0
    _blend(pixels, stripes & (gray < under), _BLUE, _ZEBRA_OPACITY)
    _blend(pixels, stripes & (gray > over), _RED, _ZEBRA_OPACITY)


def _peaking(pixels: np.ndarray, measure: np.ndarray) -> None:
    sharpest = float(measure.max())
    if sharpest > 0:
        levels = (measure / sharpest * 255).astype(np.uint8)
        _blend(pixels, levels > int(_PEAKING_PERCENT * 255 / 100), _GREEN, _PEAKING_OPACITY)


def _scale(pixels: np.ndarray) -> float:
    """How big to draw the aids: 1 at 720 px on the short side, between 0.4 and 2.5."""
    return float(min(max(min(pixels.shape[:2]) / 720, 0.4), 2.5))


def _centre_cross(pixels: np.ndarray) -> None:
    scale = _scale(pixels)
    half, thickness = int(20 * scale), max(1, int(1.6 * scale))
    x, y = pixels.shape[1] // 2, pixels.shape[0] // 2
    cv2.line(pixels, (x - half, y), (x + half, y), _WHITE, thickness)
    cv2.line(pixels, (x, y - half), (x, y + half), _WHITE, thickness)


def _grid(pixels: np.ndarray, divisions: int) -> None:
    height, width = pixels.shape[:2]
    for i in range(1, divisions):
        cv2.line(pixels, (width * i // divisions, 0), (width * i // divisions, height), _GRID_COLOUR, 1)
        cv2.line(pixels, (0, height * i // divisions), (width, height * i // divisions), _GRID_COLOUR, 1)


def _text(pixels: np.ndarray, text: str, at: tuple[int, int], size: float, colour: tuple[int, int, int],
          thickness: int) -> None:
    """Text with a black outline, readable on any background."""
    cv2.putText(pixels, text, at, _FONT, size, (0, 0, 0), thickness + 2)
    cv2.putText(pixels, text, at, _FONT, size, colour, thickness)


def _hud(pixels: np.ndarray, focus_value: float, gray: np.ndarray, original: np.ndarray) -> np.ndarray:
    """A dark panel top-left: the focus value, then the exposure histograms (B, G, R and grey)."""
    scale = _scale(pixels)
    thickness, padding, margin = max(1, int(1.6 * scale)), int(14 * scale), int(12 * scale)
    chart_width, chart_height = int(180 * scale), int(50 * scale)
    value = f"{focus_value:.1f}"
    (label_w, label_h), _ = cv2.getTextSize("TFM Focus", _FONT, 0.5 * scale, thickness)
    (value_w, _), _ = cv2.getTextSize(value, _FONT, 0.5 * scale, thickness)
    (_, exposure_h), _ = cv2.getTextSize("Exposure", _FONT, 0.4 * scale, thickness)
    spacing = int(12 * scale)
    panel_w = max(label_w + value_w + int(20 * scale), chart_width) + 2 * padding
    panel_h = label_h + spacing + exposure_h + int(6 * scale) + chart_height + 2 * padding
    right, bottom = margin + panel_w, margin + panel_h
    shaded = pixels.copy()
    cv2.rectangle(shaded, (margin, margin), (right, bottom), (0, 0, 0), -1)
    output = cv2.addWeighted(shaded, _HUD_OPACITY, pixels, 1.0 - _HUD_OPACITY, 0)
    cv2.rectangle(output, (margin, margin), (right, bottom), (80, 80, 80), 1)
    left, line_y = margin + padding, margin + padding + label_h
    _text(output, "TFM Focus", (left, line_y), 0.5 * scale, _WHITE, thickness)
    _text(output, value, (right - padding - value_w, line_y), 0.5 * scale, _WHITE, thickness)
    cv2.line(output, (left, line_y + spacing // 2), (right - padding, line_y + spacing // 2), (60, 60, 60), 1)
    line_y += spacing + exposure_h
    _text(output, "Exposure", (left, line_y), 0.4 * scale, (180, 180, 180), thickness)
    top = line_y + int(6 * scale)
    base = top + chart_height - 1
    cv2.rectangle(output, (left, top), (left + chart_width, base), (0, 0, 0), -1)
    xs = np.linspace(left, left + chart_width - 1, 256).astype(np.int32)
    channels = [(original, c, colour) for c, colour in enumerate((_BLUE, _GREEN, _RED))] if original.ndim == 3 else []
    for source, channel, colour in [*channels, (gray, 0, _WHITE)]:
        counts = cv2.calcHist([source], [channel], None, [256], [0, 256]).ravel()
        if counts.max() > 0:
            heights = (counts / counts.max() * chart_height).astype(np.int32)
            cv2.polylines(output, [np.column_stack([xs, base - heights])], False, colour, thickness)
    return output


class CameraFocusV1:
    """``roboflow_core/camera_focus@v1``: the Brenner measure and its map."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage) -> dict[str, Any]:
        measure = brenner(grayscale(image.image))
        value = float(measure.mean())
        sharpest = float(measure.max())
        levels = (measure / sharpest * 255).astype(np.uint8) if sharpest > 0 else np.zeros(measure.shape, np.uint8)
        picture = bgr(levels)
        cv2.putText(picture, f"Focus value: {value:.2f}", (10, 30), _FONT, 1, _WHITE, 2)
        return {"image": image.with_image(picture), "focus_measure": value}


class CameraFocusV2:
    """``roboflow_core/camera_focus@v2``: the Tenengrad measure, per box too, and the camera aids drawn."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, underexposed_threshold_percent: float = 3.0,
            overexposed_threshold_percent: float = 97.0, show_zebra_warnings: bool = True,
            grid_overlay: str = "3x3", show_hud: bool = True, show_focus_peaking: bool = True,
            show_center_marker: bool = True, detections: sv.Detections | None = None) -> dict[str, Any]:
        gray = grayscale(image.image)
        measure = tenengrad(gray)
        value = float(measure.mean())
        outputs = {"image": image, "focus_measure": value, "bbox_focus_measures": box_means(measure, detections)}
        divisions = GRID_DIVISIONS.get(grid_overlay, 0)
        if not (show_zebra_warnings or show_focus_peaking or show_center_marker or divisions or show_hud):
            return outputs
        pixels = bgr(image.image).copy()
        if show_zebra_warnings:
            _zebra(pixels, gray, int(underexposed_threshold_percent * 255 / 100),
                   int(overexposed_threshold_percent * 255 / 100))
        if show_focus_peaking:
            _peaking(pixels, measure)
        if show_center_marker:
            _centre_cross(pixels)
        if divisions:
            _grid(pixels, divisions)
        if show_hud:
            pixels = _hud(pixels, value, gray, image.image)
        return {**outputs, "image": image.with_image(pixels)}
