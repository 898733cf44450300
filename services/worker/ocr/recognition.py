"""Text recognition's pre- and post-processing: a text box cut out upright, text lines resized to the recogniser's
height and padded into a batch, and the recogniser's per-step probabilities decoded (CTC, greedy)."""

import math
from collections.abc import Sequence

import cv2
import numpy as np

TALL = 1.5  # a crop this many times higher than wide is a vertical line: turned a quarter, as PaddleOCR does


def crop_text_line(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quadrilateral ``quad`` (top-left, top-right, bottom-right, bottom-left) of ``image`` warped into an
    upright rectangle as wide and high as its longer opposite sides; a tall one is turned a quarter
    counter-clockwise."""
    quad = np.asarray(quad, dtype=np.float32)
    width = max(1, int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3]))))
    height = max(1, int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    crop = cv2.warpPerspective(image, cv2.getPerspectiveTransform(quad, target), (width, height),
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if height / width >= TALL:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def fitted_width(height: int, width: int, target_height: int, max_width: int) -> int:
    """The width of a ``width`` x ``height`` line resized to ``target_height`` high (aspect kept), at most
    ``max_width``."""
    return max(1, min(max_width, math.ceil(target_height * width / height)))


def batch_width(crops: Sequence[np.ndarray], height: int, min_width: int, max_width: int) -> int:
    """The width of a batch of lines: the widest at ``height``, at least ``min_width``, at most ``max_width``."""
    widest = max((fitted_width(c.shape[0], c.shape[1], height, max_width) for c in crops), default=min_width)
    return min(max_width, max(min_width, widest))


def line_batch(crops: Sequence[np.ndarray], height: int, width: int, normalise: "Normaliser") -> np.ndarray:
    """[N, 3, height, width] float32: each crop resized to ``height`` (aspect kept, at most ``width`` wide),
    normalised, and padded on the right with zeros (PaddleOCR pads after normalising)."""
    batch = np.zeros((len(crops), 3, height, width), dtype=np.float32)
    for index, crop in enumerate(crops):
        if crop.shape[0] == 0 or crop.shape[1] == 0:
            raise ValueError(f"cannot read text in an empty crop ({crop.shape[1]}x{crop.shape[0]})")
        fitted = fitted_width(crop.shape[0], crop.shape[1], height, width)
        resized = cv2.resize(crop, (fitted, height), interpolation=cv2.INTER_LINEAR)
        batch[index, :, :, :fitted] = normalise(resized)
    return batch


class Normaliser:
    """A BGR uint8 HxWx3 image as a model's [3, H, W] float32 input: channel order, scale, mean, std."""

    def __init__(self, color: str, scale: float, mean: Sequence[float], std: Sequence[float]) -> None:
        self._rgb = color == "RGB"
        self._scale = np.float32(scale)
        self._mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self._inv_std = (1.0 / np.asarray(std, dtype=np.float32)).reshape(3, 1, 1)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        pixels = image[:, :, ::-1] if self._rgb else image
        chw = np.transpose(pixels, (2, 0, 1)).astype(np.float32) * self._scale
        return np.asarray((chw - self._mean) * self._inv_std, dtype=np.float32)


def ctc_decode(probabilities: np.ndarray, labels: Sequence[str]) -> list[tuple[str, float]]:
    """Greedy CTC decoding of [N, T, C] per-step probabilities: the most likely class at each step, repeats
    collapsed, blanks (class 0) dropped; class ``i`` > 0 is ``labels[i - 1]``. The confidence is the mean
    probability of the characters kept (0.0 for no text)."""
    best = probabilities.argmax(axis=2)
    best_probability = probabilities.max(axis=2)
    decoded: list[tuple[str, float]] = []
    for classes, scores in zip(best, best_probability, strict=True):
        keep = classes != 0
        keep[1:] &= classes[1:] != classes[:-1]
        text = "".join(labels[int(index) - 1] for index in classes[keep] if int(index) <= len(labels))
        decoded.append((text, float(scores[keep].mean()) if keep.any() else 0.0))
    return decoded
