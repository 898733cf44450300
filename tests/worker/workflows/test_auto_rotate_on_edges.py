"""auto_rotate_on_edges@v1 through its compiled step, on the reference's test images (stripes and grids turned by a
known angle): the angle that cancels the turn (the reference's sign: a turn of +5° comes back as -5°), the image
upright again on a grown canvas in the input's place, and the cases that leave the image as it is."""

from typing import Any

import cv2
import numpy as np
import pytest

from services.worker.workflows.blocks.cv.deskew import analysis_gray, rotation_matrix
from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.video_steps import StepRunner, video


def stripes(vertical: bool = True, horizontal: bool = False, width: int = 800, height: int = 600) -> np.ndarray:
    """White lines 3 px thick every 40 px on black."""
    pixels = np.zeros((height, width, 3), np.uint8)
    for x in range(0, width, 40) if vertical else ():
        cv2.rectangle(pixels, (x, 0), (x + 3, height), (255, 255, 255), -1)
    for y in range(0, height, 40) if horizontal else ():
        cv2.rectangle(pixels, (0, y), (width, y + 3), (255, 255, 255), -1)
    return pixels


def turned(pixels: np.ndarray, degrees: float) -> np.ndarray:
    """``pixels`` turned counter-clockwise by ``degrees`` onto a canvas that holds all of it (computed here)."""
    height, width = pixels.shape[:2]
    radians = np.radians(degrees)
    size = (int(height * abs(np.sin(radians)) + width * abs(np.cos(radians))),
            int(height * abs(np.cos(radians)) + width * abs(np.sin(radians))))
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    matrix[:, 2] += (size[0] - width) / 2, (size[1] - height) / 2
    return cv2.warpAffine(pixels, matrix, size)


def frame(pixels: np.ndarray) -> WorkflowImage:
    return WorkflowImage.frame(pixels, "frame", video(3))


def deskew(pixels: np.ndarray | WorkflowImage, **fields: Any) -> dict[str, Any]:
    step = StepRunner({"type": "roboflow_core/auto_rotate_on_edges@v1", "name": "deskew", "image": "$inputs.image",
                       **fields})
    return step(image=pixels if isinstance(pixels, WorkflowImage) else frame(pixels))


def centre(pixels: np.ndarray, width: int = 400, height: int = 300) -> np.ndarray:
    y, x = pixels.shape[0] // 2, pixels.shape[1] // 2
    return pixels[y - height // 2:y + height // 2, x - width // 2:x + width // 2].astype(int)


@pytest.mark.parametrize("degrees", [5.0, -12.0, 20.0])
def test_turned_vertical_stripes_come_back_upright(degrees: float) -> None:
    skewed = frame(turned(stripes(), degrees))
    result = deskew(skewed)

    assert result["angle"] == pytest.approx(-degrees, abs=0.5)
    upright = result["image"]
    assert isinstance(upright, WorkflowImage) and upright is not skewed
    assert (upright.parent_id, upright.origin, upright.video) == (skewed.parent_id, skewed.origin, skewed.video)
    radians = np.radians(result["angle"])
    height, width = skewed.image.shape[:2]
    assert upright.image.shape == (int(height * abs(np.cos(radians)) + width * abs(np.sin(radians))),
                                   int(height * abs(np.sin(radians)) + width * abs(np.cos(radians))), 3)
    # the middle of the result is the middle of the stripes before they were turned, within a pixel
    original = centre(stripes())
    error = min(np.abs(np.roll(centre(upright.image), shift, axis=1) - original).mean() for shift in (-1, 0, 1))
    assert error < 12 < np.abs(centre(skewed.image) - original).mean()
    assert abs(deskew(upright)["angle"]) < 0.5


def test_stripes_turned_a_right_angle_need_a_right_angle() -> None:
    result = deskew(cv2.rotate(stripes(), cv2.ROTATE_90_CLOCKWISE))
    assert min(abs(result["angle"] - 90), abs(result["angle"] + 90)) < 0.5


def test_horizontal_and_either_targets() -> None:
    assert deskew(turned(stripes(False, True), 7.0), target_orientation="horizontal")["angle"] == pytest.approx(
        -7.0, abs=0.5)
    # the same lines made vertical: a quarter turn the other way
    assert deskew(turned(stripes(False, True), 7.0), target_orientation="vertical")["angle"] == pytest.approx(
        83.0, abs=0.5)
    assert deskew(turned(stripes(True, True), 8.0), target_orientation="either")["angle"] == pytest.approx(
        -8.0, abs=0.5)
    # stripes turned 50°: 'vertical' turns them back the whole 50°, 'either' 40° on to the nearer (horizontal) axis
    assert deskew(turned(stripes(), 50.0), target_orientation="vertical")["angle"] == pytest.approx(-50.0, abs=0.5)
    assert deskew(turned(stripes(), 50.0), target_orientation="either")["angle"] == pytest.approx(40.0, abs=0.5)


def test_the_input_comes_back_as_it_is_when_there_is_nothing_to_do() -> None:
    flat = frame(np.full((300, 300, 3), 128, np.uint8))
    assert deskew(flat) == {"image": flat, "angle": 0.0} and deskew(flat)["image"] is flat
    blobs = frame(cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8),
                                   (0, 0), 5))
    assert deskew(blobs)["image"] is blobs  # no orientation stands out
    straight = frame(stripes())
    assert deskew(straight, skip_below_degrees=2.0) == {"image": straight, "angle": 0.0}
    slightly = frame(turned(stripes(), 1.0))
    assert deskew(slightly, skip_below_degrees=2.0)["image"] is slightly
    assert deskew(slightly)["angle"] == pytest.approx(-1.0, abs=0.3)
    beyond = frame(turned(stripes(), 20.0))
    assert deskew(beyond, max_correction_degrees=10.0) == {"image": beyond, "angle": 0.0}
    assert deskew(beyond, max_correction_degrees=45.0)["angle"] == pytest.approx(-20.0, abs=0.5)


def test_the_search_runs_on_a_copy_no_larger_than_the_internal_resolution() -> None:
    assert analysis_gray(stripes(), 500).shape == (375, 500)
    assert analysis_gray(stripes(), 1000).shape == (600, 800)
    assert deskew(turned(stripes(), 5.0), internal_resolution=500)["angle"] == pytest.approx(-5.0, abs=0.5)


def test_the_canvas_matrix_keeps_the_whole_image() -> None:
    matrix, size = rotation_matrix(800, 600, 0.0)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert size == (800, 600)
    matrix, size = rotation_matrix(800, 600, 30.0)
    corners = np.array([[0, 0, 1], [800, 0, 1], [800, 600, 1], [0, 600, 1]], dtype=np.float64) @ matrix.T
    assert corners.min() > -1 and (corners.max(axis=0) <= np.array(size) + 1).all()


def test_bad_values_from_selectors_fail_the_step() -> None:
    step = StepRunner({"type": "roboflow_core/auto_rotate_on_edges@v1", "name": "deskew", "image": "$inputs.image"})
    image = frame(stripes())
    with pytest.raises(ValueError, match="target_orientation must be one of vertical, horizontal, either"):
        step.block.run(image=image, target_orientation="diagonal")
    with pytest.raises(ValueError, match="internal_resolution must be an integer >= 1, got 0"):
        step.block.run(image=image, internal_resolution=0)
    with pytest.raises(ValueError, match="skip_below_degrees must be a number, got 'x'"):
        step.block.run(image=image, skip_below_degrees="x")
