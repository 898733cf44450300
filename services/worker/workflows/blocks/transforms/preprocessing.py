"""image_preprocessing@v1: an image resized, rotated or flipped (a camera mounted on its side or upside
down, a smaller image for an output).

As the reference: the result takes the place of the image it came from (same id and lineage, its own
pixels and size), so a model run on it gives detections in its pixels; ``resize`` uses area
interpolation, ``rotate`` turns the image by
``rotation_degrees`` counter-clockwise about its centre onto a canvas grown to hold all of it (black
corners), ``flip`` mirrors it vertically, horizontally or both.
"""

from typing import Any

import cv2
import numpy as np

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import WorkflowImage

_FLIPS = {"vertical": 0, "horizontal": 1, "both": -1}


def resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    if width <= 0 or height <= 0:
        raise ValueError(f"resize: width and height must be greater than 0, got {width} x {height}")
    return cv2.resize(pixels, (int(width), int(height)), interpolation=cv2.INTER_AREA)


def rotated(pixels: np.ndarray, degrees: int) -> np.ndarray:
    if not degrees:
        return pixels.copy()
    if not -360 <= degrees <= 360:
        raise ValueError(f"rotate: rotation_degrees must be between -360 and 360, got {degrees}")
    height, width = pixels.shape[:2]
    centre = (width // 2, height // 2)
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[0, 2] += new_width / 2 - centre[0]
    matrix[1, 2] += new_height / 2 - centre[1]
    return cv2.warpAffine(pixels, matrix, (new_width, new_height))


def flipped(pixels: np.ndarray, flip_type: str) -> np.ndarray:
    if flip_type not in _FLIPS:
        raise ValueError(f"flip: flip_type must be one of {', '.join(_FLIPS)}, got {flip_type!r}")
    return cv2.flip(pixels, _FLIPS[flip_type])


class ImagePreprocessing:
    """``roboflow_core/image_preprocessing@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, task_type: str, width: int = 640, height: int = 640,
            rotation_degrees: int = 90, flip_type: str = "vertical") -> dict[str, Any]:
        if task_type == "resize":
            pixels = resized(image.image, width, height)
        elif task_type == "rotate":
            pixels = rotated(image.image, rotation_degrees)
        elif task_type == "flip":
            pixels = flipped(image.image, flip_type)
        else:
            raise ValueError(f"task_type must be resize, rotate or flip, got {task_type!r}")
        return {"image": image.with_image(pixels)}
