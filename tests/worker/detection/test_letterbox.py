"""Letterboxing: layout of the tensor and the round trip of boxes."""

import numpy as np
import pytest

from services.worker.detection.letterbox import PAD_VALUE, LetterboxTransform, letterbox


def test_wide_frame_padded_top_and_bottom() -> None:
    image = np.zeros((576, 768, 3), np.uint8)
    image[..., 0], image[..., 2] = 255, 10  # blue frame in BGR
    tensor, transform = letterbox(image, 416, 416)
    assert tensor.shape == (1, 3, 416, 416) and tensor.dtype == np.float32
    assert (transform.pad_x, transform.pad_y) == (0, 52)
    assert transform.scale == pytest.approx(416 / 768)
    assert tensor[0, :, 0, 0] == pytest.approx([PAD_VALUE / 255] * 3)
    assert tensor[0, :, 200, 200] == pytest.approx([10 / 255, 0, 1])  # RGB order


def test_tall_frame_padded_left_and_right() -> None:
    _, transform = letterbox(np.zeros((400, 100, 3), np.uint8), 320, 320)
    assert (transform.scale, transform.pad_x, transform.pad_y) == (0.8, 120, 0)


def test_round_trip_of_boxes() -> None:
    transform = LetterboxTransform(scale=416 / 768, pad_x=0, pad_y=52, source_width=768, source_height=576)
    boxes = np.array([[10, 20, 110, 220], [700, 500, 768, 576]], np.float32)
    assert transform.to_source(transform.to_input(boxes)) == pytest.approx(boxes, abs=1e-3)


def test_to_source_clips_to_frame() -> None:
    transform = LetterboxTransform(scale=0.5, pad_x=0, pad_y=10, source_width=100, source_height=60)
    out = transform.to_source(np.array([[-5, 0, 60, 50]], np.float32))
    assert out.tolist() == [[0, 0, 100, 60]]
