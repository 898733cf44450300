"""Letterboxing: layout of the tensor and the round trip of boxes."""

import cv2
import numpy as np
import pytest

from services.worker.detection.letterbox import (
    PAD_VALUE,
    LetterboxTransform,
    as_tensor,
    letterbox,
    letterbox_image,
    to_tensor,
)


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


@pytest.mark.parametrize(("height", "width"), [(576, 768), (400, 100), (416, 416), (37, 1001)])
def test_the_canvas_and_its_tensor_are_the_frame_resized_centred_on_grey_in_rgb_over_255(height: int,
                                                                                         width: int) -> None:
    image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    canvas, transform = letterbox_image(image, 416, 416)
    assert canvas.shape == (1, 416, 416, 3) and canvas.dtype == np.uint8
    new_w, new_h = round(width * transform.scale), round(height * transform.scale)
    expected = np.full((416, 416, 3), PAD_VALUE, np.uint8)
    inner = image if (new_w, new_h) == (width, height) else cv2.resize(image, (new_w, new_h))
    expected[transform.pad_y:transform.pad_y + new_h, transform.pad_x:transform.pad_x + new_w] = inner
    np.testing.assert_array_equal(canvas[0], expected)
    tensor = to_tensor(canvas)
    assert tensor.shape == (1, 3, 416, 416) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0], expected[:, :, ::-1].transpose(2, 0, 1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(letterbox(image, 416, 416)[0], tensor)
    assert as_tensor(tensor) is tensor  # a tensor passes through; canvases are converted
    np.testing.assert_array_equal(as_tensor(canvas), tensor)
