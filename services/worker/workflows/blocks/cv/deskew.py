"""auto_rotate_on_edges@v1: an image turned so that its dominant straight edges (a document's sides, a shelf, a
panel, a building's walls) become vertical, horizontal, or whichever of the two is nearer.

As the reference: the angle is searched on a grey copy whose longest side is at most ``internal_resolution`` px
(area interpolation), after CLAHE (clip 3, 8 x 8 tiles) and a 5 x 5 Gaussian blur. The 3 x 3 Sobel gradients
whose magnitude is in the top fifth vote, weighted by magnitude, in a histogram of their orientation modulo 180°
(one bin a degree, smoothed over 5 bins circularly): the gradient of a line is perpendicular to it, so vertical
edges pile up about 0° and horizontal ones about 90°. A histogram without a distinct peak ((max - median) / std
below 1.5), like a flat image (grey-level std below 3), gives no angle. Otherwise the peak is refined by the
magnitude-weighted circular mean of the doubled orientations within 3° of it; ``horizontal`` subtracts 90°; the
angle is folded into (-90, 90] (``either``: (-45, 45]). Under ``skip_below_degrees`` or over
``max_correction_degrees`` (in absolute value), or with no angle, the input image comes back as it is with
``angle`` 0.0; else the full-size image is turned by ``angle`` degrees (OpenCV's sense: positive is
counter-clockwise) about its centre onto a canvas grown to hold all of it (black corners, bilinear), as
image_preprocessing's rotate does. The result takes the input's place (same id, lineage and video metadata), as
the reference's ``copy_and_replace``.
"""

from typing import Any

import cv2
import numpy as np

from services.core.workflows.catalogue.classical_cv import TARGET_ORIENTATIONS
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.cv.gray import grayscale
from services.worker.workflows.blocks.cv.images import checked_choice, checked_int
from services.worker.workflows.values import WorkflowImage

_FLAT_STD = 3.0  # grey-level standard deviation under which an image has nothing to align to
_STRONG_PERCENTILE = 80.0  # gradients at or above this percentile of the magnitudes vote
_MIN_PEAK_RATIO = 1.5  # (peak - median) / std of the smoothed histogram below this: no dominant orientation
_REFINE_DEGREES = 3.0  # orientations this close to the peak refine it


def rotation_matrix(width: int, height: int, degrees: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The 2 x 3 matrix turning an image of ``width`` x ``height`` by ``degrees`` (counter-clockwise) about its
    centre (integer halves, as the reference) onto a canvas that holds all of it, and that canvas's (w, h)."""
    centre = (width // 2, height // 2)
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(height * sin + width * cos), int(height * cos + width * sin))
    matrix[0, 2] += size[0] / 2 - centre[0]
    matrix[1, 2] += size[1] / 2 - centre[1]
    return matrix, size


def rotated_full_size(pixels: np.ndarray, degrees: float) -> np.ndarray:
    matrix, size = rotation_matrix(pixels.shape[1], pixels.shape[0], degrees)
    return cv2.warpAffine(pixels, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def analysis_gray(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """The grey image, shrunk (area interpolation) so that its longest side is at most ``max_side``."""
    gray = grayscale(pixels)
    height, width = gray.shape
    if max(height, width) <= max_side:
        return gray
    scale = max_side / float(max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def dominant_gradient_angle(gray: np.ndarray) -> float | None:
    """The dominant gradient orientation of a grey image in degrees [0, 180) (0: vertical edges), refined to a
    fraction of a degree; None when no orientation stands out."""
    enhanced = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(gray)
    smooth = cv2.GaussianBlur(enhanced, (5, 5), 0).astype(np.float32)
    dx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    dy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.hypot(dx, dy)
    strong = magnitude >= max(float(np.percentile(magnitude, _STRONG_PERCENTILE)), 1e-6)
    if not strong.any():
        return None
    orientation = np.mod(np.degrees(np.arctan2(dy[strong], dx[strong])), 180.0)
    weights = magnitude[strong].astype(np.float64)
    votes, _ = np.histogram(orientation, bins=180, range=(0.0, 180.0), weights=weights)
    wrapped = np.concatenate([votes[-2:], votes, votes[:2]])  # 0° and 180° are one orientation
    smoothed = np.convolve(wrapped, np.ones(5) / 5.0, mode="same")[2:-2]
    if (float(smoothed.max()) - float(np.median(smoothed))) / (float(smoothed.std()) + 1e-9) < _MIN_PEAK_RATIO:
        return None
    peak = float(np.argmax(smoothed)) + 0.5
    distance = np.abs(orientation - peak)
    near = np.minimum(distance, 180.0 - distance) <= _REFINE_DEGREES
    if not near.any():
        return peak
    doubled = np.radians(2.0 * orientation[near])
    near_weights = weights[near]
    return 0.5 * float(np.degrees(np.arctan2(float((near_weights * np.sin(doubled)).sum()),
                                             float((near_weights * np.cos(doubled)).sum()))))


def folded(angle: float, period: float) -> float:
    """``angle`` in (-period / 2, period / 2]."""
    result = angle % period
    return result - period if result > period / 2.0 else result


def correction_angle(pixels: np.ndarray, target_orientation: str, internal_resolution: int) -> float | None:
    """The rotation (degrees, counter-clockwise) that aligns the image's dominant edges to ``target_orientation``;
    None for a flat image or one without a dominant orientation."""
    gray = analysis_gray(pixels, internal_resolution)
    if float(gray.std()) < _FLAT_STD:
        return None
    angle = dominant_gradient_angle(gray)
    if angle is None:
        return None
    if target_orientation == "horizontal":
        angle -= 90.0
    return folded(angle, 90.0 if target_orientation == "either" else 180.0)


def _checked_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


class AutoRotateOnEdges:
    """``roboflow_core/auto_rotate_on_edges@v1``: ``image`` (turned, or the input as it is) and ``angle``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, target_orientation: str = "vertical", skip_below_degrees: float = 0.4,
            max_correction_degrees: float = 90.0, internal_resolution: int = 1000) -> dict[str, Any]:
        target = checked_choice("target_orientation", target_orientation, TARGET_ORIENTATIONS)
        skip_below = _checked_number("skip_below_degrees", skip_below_degrees)
        at_most = _checked_number("max_correction_degrees", max_correction_degrees)
        angle = correction_angle(image.image, target, checked_int("internal_resolution", internal_resolution, 1))
        if angle is None or abs(angle) < skip_below or abs(angle) > at_most:
            return {"image": image, "angle": 0.0}
        return {"image": image.with_image(rotated_full_size(image.image, angle)), "angle": angle}
