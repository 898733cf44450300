"""image_preprocessing@v1: resize, rotate and flip checked on pixels, and the lineage the result keeps."""

from typing import Any

import numpy as np
import pytest

from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.transformations_support import step_of
from tests.worker.workflows.video_steps import video


def picture() -> WorkflowImage:
    """A 40 x 30 image: black, a white top-left 10 x 5 block, a red pixel at (x 39, y 29)."""
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    pixels[:5, :10] = 255
    pixels[29, 39] = (0, 0, 255)
    return WorkflowImage.frame(pixels, "frame-1", video(0))


def run(**fields: Any) -> WorkflowImage:
    step = step_of({"type": "roboflow_core/image_preprocessing@v1", "name": "prep", "image": "$inputs.image",
                    **fields})
    result: WorkflowImage = step.run(image=picture())["image"]
    return result


def test_resize_to_the_given_size_with_area_interpolation() -> None:
    out = run(task_type="resize", width=20, height=15)
    assert out.image.shape == (15, 20, 3)
    assert out.image[:2, :5].min() == 255 and out.image[3:, 6:].max() < 128  # the block, halved
    default = run(task_type="resize")
    assert default.image.shape == (640, 640, 3)


@pytest.mark.parametrize(("degrees", "red_at", "shape"), [
    (180, (0, 0), (30, 40)),  # upside down: the bottom-right pixel comes top-left
    (90, (0, 29), (40, 30)),  # counter-clockwise: x 39 goes to the top row, y 29 to the right
    (-90, (39, 0), (40, 30)),
])
def test_rotate_counter_clockwise_about_the_centre_on_a_grown_canvas(degrees: int, red_at: tuple[int, int],
                                                                      shape: tuple[int, int]) -> None:
    out = run(task_type="rotate", rotation_degrees=degrees)
    assert out.image.shape[:2] == shape
    y, x = np.argwhere((out.image[..., 2] > 100) & (out.image[..., 0] < 50))[0]
    assert abs(int(y) - red_at[0]) <= 1 and abs(int(x) - red_at[1]) <= 1, (y, x)


def test_a_45_degree_turn_keeps_all_of_the_image() -> None:
    out = run(task_type="rotate", rotation_degrees=45)
    assert out.image.shape[:2] == (49, 49)  # 30 sin 45 + 40 cos 45 either way
    assert out.image[0, 0].max() == 0  # a black corner where nothing was


@pytest.mark.parametrize(("flip_type", "expected"), [
    ("vertical", lambda p: p[::-1]), ("horizontal", lambda p: p[:, ::-1]), ("both", lambda p: p[::-1, ::-1]),
])
def test_flip(flip_type: str, expected: Any) -> None:
    np.testing.assert_array_equal(run(task_type="flip", flip_type=flip_type).image, expected(picture().image))


def test_the_result_takes_the_place_of_its_image_and_leaves_the_input_alone() -> None:
    source = picture()
    step = step_of({"type": "roboflow_core/image_preprocessing@v1", "name": "prep", "image": "$inputs.image",
                    "task_type": "flip"})
    out: WorkflowImage = step.run(image=source)["image"]
    assert (out.parent_id, out.origin, out.root_origin, out.video) == (
        source.parent_id, source.origin, source.root_origin, source.video)
    np.testing.assert_array_equal(source.image, picture().image)


def test_values_from_other_steps_are_checked_at_run_time() -> None:
    step = step_of({"type": "roboflow_core/image_preprocessing@v1", "name": "prep", "image": "$inputs.image",
                    "task_type": "rotate"})
    with pytest.raises(ValueError, match="rotation_degrees must be between -360 and 360, got 400"):
        step.block.run(image=picture(), task_type="rotate", rotation_degrees=400)
    with pytest.raises(ValueError, match="flip_type must be one of vertical, horizontal, both, got 'sideways'"):
        step.block.run(image=picture(), task_type="flip", flip_type="sideways")
    with pytest.raises(ValueError, match="width and height must be greater than 0, got 0 x 10"):
        step.block.run(image=picture(), task_type="resize", width=0, height=10)
