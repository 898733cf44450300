"""Letterboxing a BGR frame into a model input tensor, and mapping boxes back to the frame.

The frame is resized keeping its aspect ratio, centred on a (114, 114, 114) canvas of the model's
size, converted BGR -> RGB, HWC -> CHW and scaled to float32 [0, 1]. This runs once per frame,
so it resizes once and writes each channel straight into the output tensor.
"""

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114
_INV_255 = np.float32(1.0 / 255.0)


@dataclass(frozen=True, slots=True)
class LetterboxTransform:
    """How a source frame was placed in the model input: ``input = source * scale + pad``."""

    scale: float
    pad_x: int
    pad_y: int
    source_width: int
    source_height: int

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Boxes (N, 4) from model-input pixels to source-frame pixels, clipped to the frame."""
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, 0::2] = (xyxy[:, 0::2] - self.pad_x) / self.scale
        out[:, 1::2] = (xyxy[:, 1::2] - self.pad_y) / self.scale
        np.clip(out[:, 0::2], 0, self.source_width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.source_height, out=out[:, 1::2])
        return out

    def to_input(self, xyxy: np.ndarray) -> np.ndarray:
        """Boxes (N, 4) from source-frame pixels to model-input pixels."""
        out = np.asarray(xyxy, dtype=np.float32) * self.scale
        out[:, 0::2] += self.pad_x
        out[:, 1::2] += self.pad_y
        return out


def letterbox(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, LetterboxTransform]:
    """Model input [1, 3, height, width] float32 RGB/255 of a BGR uint8 HxWx3 image."""
    src_h, src_w = image.shape[:2]
    scale = min(width / src_w, height / src_h)
    new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
    if (new_w, new_h) != (src_w, src_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    tensor = np.empty((1, 3, height, width), dtype=np.float32)
    _fill_padding(tensor[0], pad_x, pad_y, new_w, new_h)
    for channel in range(3):  # BGR -> RGB while scaling, one pass per channel
        np.multiply(
            image[:, :, 2 - channel],
            _INV_255,
            out=tensor[0, channel, pad_y : pad_y + new_h, pad_x : pad_x + new_w],
        )
    return tensor, LetterboxTransform(scale, pad_x, pad_y, src_w, src_h)


def _fill_padding(chw: np.ndarray, pad_x: int, pad_y: int, new_w: int, new_h: int) -> None:
    value = np.float32(PAD_VALUE) * _INV_255
    chw[:, :pad_y, :] = value
    chw[:, pad_y + new_h :, :] = value
    chw[:, pad_y : pad_y + new_h, :pad_x] = value
    chw[:, pad_y : pad_y + new_h, pad_x + new_w :] = value
