"""Classical CV image operations (OpenCV, no model): grayscale, blur, threshold, morphology (v1, v2), contrast
equalization, contrast enhancement and contours, with the reference's fields, defaults and OpenCV calls.

Each result takes the place of the image it came from (same id, lineage and video metadata: ``with_image``), as
the reference's ``copy_and_replace``. Every image they output is 3-channel BGR uint8, as ``WorkflowImage`` holds
everywhere here: a single-channel result (grayscale, a threshold, a v1 morphology) is written into all three
channels. Unlike the reference, whose grayscale images have one channel, the result then feeds whatever takes an
image (a model, a visualisation, the WebRTC video, which takes only 3-channel pixels), and the blocks that work
on one channel take it back losslessly (OpenCV's BGR -> gray of three equal channels is that channel).

Values that come from other steps' selectors are checked when the block runs: a bad one fails the step on that
frame with the field, what it must be and what it was.
"""

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from services.core.workflows.catalogue.classical_cv import (
    BLUR_TYPES,
    EQUALIZATION_TYPES,
    MORPHOLOGY_OPERATIONS,
    OPENING_THEN_CLOSING,
    THRESHOLD_TYPES,
)
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.cv.gray import bgr, grayscale
from services.worker.workflows.values import WorkflowImage

CONTOUR_COLOUR = (255, 0, 255)  # BGR magenta, as the reference draws them
_FIXED_THRESHOLDS = {"binary": cv2.THRESH_BINARY, "binary_inv": cv2.THRESH_BINARY_INV, "trunc": cv2.THRESH_TRUNC,
                     "tozero": cv2.THRESH_TOZERO, "tozero_inv": cv2.THRESH_TOZERO_INV}
_ADAPTIVE_THRESHOLDS = {"adaptive_mean": cv2.ADAPTIVE_THRESH_MEAN_C,
                        "adaptive_gaussian": cv2.ADAPTIVE_THRESH_GAUSSIAN_C}
_ADAPTIVE_BLOCK_SIZE, _ADAPTIVE_CONSTANT = 11, 2  # the reference's fixed neighbourhood and offset
_MORPHOLOGY = {"Opening": cv2.MORPH_OPEN, "Closing": cv2.MORPH_CLOSE, "Gradient": cv2.MORPH_GRADIENT,
               "Top Hat": cv2.MORPH_TOPHAT, "Black Hat": cv2.MORPH_BLACKHAT}
_BILATERAL_SIGMA = 75  # colour and space sigmas of the reference's bilateral blur
_STRETCH_PERCENTILES = (2, 98)  # contrast stretching maps these percentiles to 0 and 255
# Adaptive equalization: the reference's CLAHE (scikit-image, clip 0.03 of a tile's pixels, tiles 1/8 of the image)
# as OpenCV's, whose clip limit is relative to a tile's mean bin count (256 bins): 0.03 * 256.
_CLAHE_CLIP_LIMIT, _CLAHE_TILES = 0.03 * 256, (8, 8)
_BRIGHTENING_GAMMA = 1 / 1.3  # contrast_enhancement's normalize_brightness: midtones brightened
_MID_GREY = 128.0  # contrast_enhancement's multiplier stretches about it


def checked_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int within [minimum, maximum], else ValueError naming the field and the value."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum or (
            maximum is not None and value > maximum):
        expected = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be an integer {expected}, got {value!r}")
    return int(value)


def checked_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def odd(size: int) -> int:
    """The kernel size Gaussian and median blurs accept: the next odd number (as the reference)."""
    return size if size % 2 else size + 1


class _ImageOperation:
    """A block that keeps nothing between frames (its ``run`` is the whole of it)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env


class ConvertGrayscale(_ImageOperation):
    """``roboflow_core/convert_grayscale@v1``: OpenCV's weighted luminance, in all three channels."""

    def run(self, image: WorkflowImage) -> dict[str, Any]:
        return {"image": image.with_image(bgr(grayscale(image.image)))}


def blurred(pixels: np.ndarray, blur_type: str, kernel_size: int) -> np.ndarray:
    if blur_type == "average":
        return cv2.blur(pixels, (kernel_size, kernel_size))
    if blur_type == "gaussian":
        return cv2.GaussianBlur(pixels, (odd(kernel_size),) * 2, 0)
    if blur_type == "median":
        return cv2.medianBlur(pixels, odd(kernel_size))
    return cv2.bilateralFilter(pixels, kernel_size, _BILATERAL_SIGMA, _BILATERAL_SIGMA)


class ImageBlur(_ImageOperation):
    """``roboflow_core/image_blur@v1``: average, Gaussian, median or bilateral, on each channel."""

    def run(self, image: WorkflowImage, blur_type: str = "gaussian", kernel_size: int = 5) -> dict[str, Any]:
        blur_type = checked_choice("blur_type", blur_type, BLUR_TYPES)
        pixels = blurred(image.image, blur_type, checked_int("kernel_size", kernel_size, 1))
        return {"image": image.with_image(pixels)}


def thresholded(pixels: np.ndarray, threshold_type: str, thresh_value: int, max_value: int) -> np.ndarray:
    """The reference's thresholds. The fixed ones work on each channel (a grayscale image's three equal channels
    give its threshold in each); adaptive and Otsu, which OpenCV runs on one channel only, on the image's gray
    (the reference fails on a colour image there)."""
    if threshold_type in _FIXED_THRESHOLDS:
        return cv2.threshold(pixels, thresh_value, max_value, _FIXED_THRESHOLDS[threshold_type])[1]
    if threshold_type == "otsu":
        return bgr(cv2.threshold(grayscale(pixels), 0, max_value, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1])
    return bgr(cv2.adaptiveThreshold(grayscale(pixels), max_value, _ADAPTIVE_THRESHOLDS[threshold_type],
                                     cv2.THRESH_BINARY, _ADAPTIVE_BLOCK_SIZE, _ADAPTIVE_CONSTANT))


class ImageThreshold(_ImageOperation):
    """``roboflow_core/threshold@v1``: ``thresh_value`` is used by the fixed types only."""

    def run(self, image: WorkflowImage, thresh_value: int, threshold_type: str = "binary",
            max_value: int = 255) -> dict[str, Any]:
        threshold_type = checked_choice("threshold_type", threshold_type, THRESHOLD_TYPES)
        pixels = thresholded(image.image, threshold_type, checked_int("thresh_value", thresh_value, 0, 255),
                             checked_int("max_value", max_value, 0, 255))
        return {"image": image.with_image(pixels)}


def morphed(pixels: np.ndarray, operation: str, kernel_size: int) -> np.ndarray:
    """One of the reference's operations with a square kernel of ones (one iteration)."""
    kernel = np.ones((kernel_size, kernel_size), np.uint8)
    if operation == "Erosion":
        return cv2.erode(pixels, kernel, iterations=1)
    if operation == "Dilation":
        return cv2.dilate(pixels, kernel, iterations=1)
    if operation == OPENING_THEN_CLOSING:
        return cv2.morphologyEx(cv2.morphologyEx(pixels, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
    return cv2.morphologyEx(pixels, _MORPHOLOGY[operation], kernel)


class MorphologicalTransformationV1(_ImageOperation):
    """``roboflow_core/morphological_transformation@v1``: on the image's gray, as the reference (gray output)."""

    operations: tuple[str, ...] = MORPHOLOGY_OPERATIONS

    def run(self, image: WorkflowImage, kernel_size: int = 5, operation: str = "Closing") -> dict[str, Any]:
        operation = checked_choice("operation", operation, self.operations)
        pixels = self.transformed(image.image, operation, checked_int("kernel_size", kernel_size, 1))
        return {"image": image.with_image(pixels)}

    def transformed(self, pixels: np.ndarray, operation: str, kernel_size: int) -> np.ndarray:
        return bgr(morphed(grayscale(pixels), operation, kernel_size))


class MorphologicalTransformationV2(MorphologicalTransformationV1):
    """``roboflow_core/morphological_transformation@v2``: on each colour channel; adds Opening then Closing."""

    operations = (*MORPHOLOGY_OPERATIONS, OPENING_THEN_CLOSING)

    def run(self, image: WorkflowImage, kernel_size: int = 5,
            operation: str = OPENING_THEN_CLOSING) -> dict[str, Any]:
        return super().run(image, kernel_size, operation)

    def transformed(self, pixels: np.ndarray, operation: str, kernel_size: int) -> np.ndarray:
        return morphed(pixels, operation, kernel_size)


def stretched(pixels: np.ndarray) -> np.ndarray:
    """Contrast stretching: the 2nd..98th percentiles (of all channels together) to 0..255, clipped outside."""
    low, high = np.percentile(pixels, _STRETCH_PERCENTILES)
    if high <= low:
        return pixels.copy()
    scaled: np.ndarray = (np.clip(pixels.astype(np.float64), low, high) - low) / (high - low) * 255.0
    return scaled.astype(np.uint8)


def equalized(pixels: np.ndarray) -> np.ndarray:
    """Histogram equalization as the reference's (scikit-image's ``equalize_hist``): 256 bins over the image's
    range (all channels together), each value mapped to the cumulative share of pixels, interpolated between
    the bins' centres."""
    values = pixels.astype(np.float64)
    counts, edges = np.histogram(values, bins=256)
    cumulative = np.cumsum(counts) / values.size
    mapped = np.interp(values, (edges[:-1] + edges[1:]) / 2, cumulative)
    return (mapped * 255.0).astype(np.uint8)


def adaptively_equalized(pixels: np.ndarray) -> np.ndarray:
    """CLAHE on the brightness (HSV's value) only, so colours keep their hue, as scikit-image does for colour
    images (OpenCV's CLAHE stands in for scikit-image's, which this project does not install)."""
    hsv = cv2.cvtColor(pixels, cv2.COLOR_BGR2HSV)
    clahe = cv2.createCLAHE(clipLimit=_CLAHE_CLIP_LIMIT, tileGridSize=_CLAHE_TILES)
    hsv[..., 2] = clahe.apply(np.ascontiguousarray(hsv[..., 2]))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


_EQUALIZATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = dict(
    zip(EQUALIZATION_TYPES, (stretched, equalized, adaptively_equalized), strict=True))


class ContrastEqualization(_ImageOperation):
    """``roboflow_core/contrast_equalization@v1``."""

    def run(self, image: WorkflowImage, equalization_type: str = "Histogram Equalization") -> dict[str, Any]:
        equalization_type = checked_choice("equalization_type", equalization_type, EQUALIZATION_TYPES)
        return {"image": image.with_image(_EQUALIZATIONS[equalization_type](image.image))}


def enhanced(pixels: np.ndarray, clip_limit: int, contrast_multiplier: float, normalize_brightness: bool
             ) -> np.ndarray:
    """Each channel's [clip_limit, 100 - clip_limit] percentiles (its min and max when 0) stretched to 0..255,
    then its contrast multiplied about mid-grey and, with ``normalize_brightness``, its midtones brightened
    (gamma 1 / 1.3). A flat channel (nothing to stretch) is kept as it is."""
    channels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1).astype(np.float64)
    low, high = np.percentile(channels, (clip_limit, 100 - clip_limit), axis=(0, 1))
    flat = high <= low
    result = (channels - low) / np.where(flat, 1.0, high - low) * 255.0
    if contrast_multiplier != 1.0:
        result = _MID_GREY + (result - _MID_GREY) * contrast_multiplier
    if normalize_brightness:
        result = np.power(np.clip(result, 0, 255) / 255.0, _BRIGHTENING_GAMMA) * 255.0
    result = np.where(flat, channels, np.clip(result, 0, 255))
    return result.astype(np.uint8).reshape(pixels.shape)


class ContrastEnhancement(_ImageOperation):
    """``roboflow_core/contrast_enhancement@v1`` (its fields are literals, checked when the workflow compiles)."""

    def run(self, image: WorkflowImage, clip_limit: int = 0, contrast_multiplier: float = 1.0,
            normalize_brightness: bool = False) -> dict[str, Any]:
        pixels = enhanced(image.image, clip_limit, contrast_multiplier, normalize_brightness)
        return {"image": image.with_image(pixels)}


class ContoursDetection(_ImageOperation):
    """``roboflow_core/contours_detection@v1``: the outer contours of the image's non-zero (gray) pixels, as
    OpenCV finds them (external only, simple chains), drawn in magenta on the gray image, with their hierarchy
    and their number. Meant after a threshold: every non-zero pixel counts as foreground."""

    def run(self, image: WorkflowImage, line_thickness: int = 3) -> dict[str, Any]:
        thickness = checked_int("line_thickness", line_thickness, -1, 32767)
        gray = grayscale(image.image)
        found, hierarchy = cv2.findContours(gray, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        drawn = cv2.drawContours(bgr(gray), found, -1, CONTOUR_COLOUR, thickness)
        if hierarchy is None:  # none found: an empty hierarchy rather than null (null would skip its readers)
            hierarchy = np.zeros((1, 0, 4), dtype=np.int32)
        return {"image": image.with_image(drawn), "contours": list(found), "hierarchy": hierarchy,
                "number_contours": len(found)}
