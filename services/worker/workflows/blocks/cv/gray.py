"""Grey levels for the measurement blocks: focus, template matching and SIFT all work on one channel, and
what they draw must go back out as a 3-channel BGR image (the contract of :class:`WorkflowImage`)."""

import cv2
import numpy as np


def grayscale(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (BGR, BGRA, one channel or already 2-D) as a 2-D uint8 grey image."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    elif pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY if pixels.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    elif pixels.ndim != 2:
        raise ValueError(f"expected a grey, BGR or BGRA image, got an array of shape {pixels.shape}")
    return pixels if pixels.dtype == np.uint8 else np.clip(pixels, 0, 255).astype(np.uint8)


def bgr(pixels: np.ndarray) -> np.ndarray:
    """A 2-D (or one-channel) grey image as 3-channel BGR; a BGR image as it is."""
    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR) if pixels.ndim == 2 or pixels.shape[2] == 1 else pixels
