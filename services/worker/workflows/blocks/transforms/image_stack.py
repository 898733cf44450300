"""image_stack@v1: this source's last ``stack_size`` frames as JPEG bytes (quality 75), newest first, and how many.

Each frame larger than ``resolution_width`` x ``resolution_height`` is scaled down to fit, its aspect ratio kept
(OpenCV's area interpolation), before it is encoded, so the stack's memory stays bounded. ``clear`` empties the
stack before the frame is added. Values fed by selectors are clamped to the manifest's bounds (1-64 frames,
64-1920 x 64-1080 px) as the reference clamps them; literals are checked at INIT.

The block is built per video source, so each source has its own stack (the reference keys its stacks by video
identifier inside one block). When ``stack_size`` shrinks, the newest frames are kept (the reference keeps the
oldest ones then, and drops them as new frames come).
"""

from collections import deque
from typing import Any

import cv2
import numpy as np

from services.core.workflows.blocks import is_int
from services.core.workflows.catalogue.transformations import (
    MAX_STACK_HEIGHT,
    MAX_STACK_SIZE,
    MAX_STACK_WIDTH,
    MIN_STACK_RESOLUTION,
)
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import WorkflowImage

JPEG_QUALITY = 75


def fitted(pixels: np.ndarray, max_width: int, max_height: int) -> np.ndarray:
    """``pixels`` scaled down (aspect ratio kept) to fit within max_width x max_height; as they are if they fit."""
    height, width = pixels.shape[:2]
    if width <= max_width and height <= max_height:
        return pixels
    scale = min(max_width / width, max_height / height)
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def jpeg(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("image_stack: the frame cannot be encoded as JPEG")
    return encoded.tobytes()


def _bounded(name: str, value: Any, low: int, high: int) -> int:
    if not is_int(value):
        raise ValueError(f"image_stack: {name} must be an integer, got {value!r}")
    return max(low, min(int(value), high))


class ImageStack:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._frames: deque[bytes] = deque()

    def run(self, image: WorkflowImage, stack_size: Any = 10, resolution_width: Any = MAX_STACK_WIDTH,
            resolution_height: Any = MAX_STACK_HEIGHT, clear: Any = False) -> dict[str, Any]:
        size = _bounded("stack_size", stack_size, 1, MAX_STACK_SIZE)
        width = _bounded("resolution_width", resolution_width, MIN_STACK_RESOLUTION, MAX_STACK_WIDTH)
        height = _bounded("resolution_height", resolution_height, MIN_STACK_RESOLUTION, MAX_STACK_HEIGHT)
        if self._frames.maxlen != size:
            self._frames = deque(list(self._frames)[:size], maxlen=size)  # the newest ones
        if clear:
            self._frames.clear()
        self._frames.appendleft(jpeg(fitted(image.image, width, height)))
        return {"frames": list(self._frames), "frames_count": len(self._frames)}
