"""Known text to put in test frames: black text on a white plate, drawn with OpenCV's putText, pasted on a frame."""

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 (pixel edges: x2, y2 exclusive)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def plate(text: str, scale: float = 1.2, thickness: int = 2, pad: int = 16) -> np.ndarray:
    """A white plate (BGR) with ``text`` in black, ``pad`` px of white around the text."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    pixels = np.full((height + baseline + 2 * pad, width + 2 * pad, 3), 255, np.uint8)
    cv2.putText(pixels, text, (pad, pad + height), FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return pixels


def paste(frame: np.ndarray, pixels: np.ndarray, x: int, y: int) -> Box:
    """``pixels`` pasted at (x, y) on ``frame``; the box of its ink (its dark pixels) there."""
    frame[y:y + pixels.shape[0], x:x + pixels.shape[1]] = pixels
    rows, columns = np.nonzero(pixels.min(axis=2) < 128)
    return float(x + columns.min()), float(y + rows.min()), float(x + columns.max() + 1), float(y + rows.max() + 1)


def iou(a: Box, b: Box) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
