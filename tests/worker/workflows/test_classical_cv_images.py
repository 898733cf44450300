"""The classical CV image operations (grayscale, blur, threshold, morphology v1/v2, contrast equalization and
enhancement, contours, background subtraction) through their compiled steps, checked on pixels against
hand-computed values or OpenCV's own calls; the lineage each result keeps; bad values from selectors."""

import json
from typing import Any

import cv2
import numpy as np
import pytest

from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.video_steps import StepRunner, video

HEIGHT, WIDTH = 40, 60


def frame(pixels: np.ndarray, number: int = 0) -> WorkflowImage:
    return WorkflowImage.frame(pixels, "frame", video(number))


def blank(value: int | tuple[int, int, int] = 0) -> np.ndarray:
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:] = value
    return pixels


def step(block: str, number: int = 1, **fields: Any) -> StepRunner:
    return StepRunner({"type": f"roboflow_core/{block}@v{number}", "name": "cv", "image": "$inputs.image", **fields})


def output(block: str, pixels: np.ndarray, number: int = 1, **fields: Any) -> np.ndarray:
    """The pixels of the step's ``image`` output on ``pixels``."""
    result: WorkflowImage = step(block, number, **fields)(image=frame(pixels))["image"]
    return result.image


def grey_ramp() -> np.ndarray:
    """A horizontal ramp 0..236 (steps of 4) in all three channels."""
    return np.repeat(np.repeat((np.arange(WIDTH) * 4).astype(np.uint8)[None, :, None], HEIGHT, 0), 3, 2)


def white_square(size: int = 10, at: tuple[int, int] = (15, 20)) -> np.ndarray:
    pixels = blank()
    y, x = at
    pixels[y:y + size, x:x + size] = 255
    return pixels


def assert_grey(pixels: np.ndarray) -> np.ndarray:
    """A 3-channel uint8 image whose channels are equal: its one channel."""
    assert pixels.shape == (HEIGHT, WIDTH, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 1])
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])
    return pixels[..., 0]


# ---------------------------------------------------------------------------- grayscale


def test_grayscale_is_the_weighted_luminance_in_all_three_channels() -> None:
    gray = assert_grey(output("convert_grayscale", blank((10, 200, 50))))  # B, G, R
    assert set(gray.ravel().tolist()) == {133}  # 0.114 * 10 + 0.587 * 200 + 0.299 * 50 = 133.49


# ---------------------------------------------------------------------------- blur


def test_average_blur_spreads_a_point_over_its_kernel() -> None:
    pixels = blank()
    pixels[20, 30] = 225
    blurred = output("image_blur", pixels, blur_type="average", kernel_size=3)
    assert (blurred[19:22, 29:32] == 25).all()  # 225 / 9 in each of the 3 x 3 around it
    assert blurred.sum() == 9 * 25 * 3


def test_gaussian_blur_is_the_default_and_takes_the_next_odd_kernel() -> None:
    pixels = white_square()
    np.testing.assert_array_equal(output("image_blur", pixels), cv2.GaussianBlur(pixels, (5, 5), 0))
    np.testing.assert_array_equal(output("image_blur", pixels, blur_type="gaussian", kernel_size=6),
                                  cv2.GaussianBlur(pixels, (7, 7), 0))


def test_median_blur_removes_a_speck_and_keeps_a_square() -> None:
    pixels = white_square()
    pixels[5, 5] = 255  # salt
    out = output("image_blur", pixels, blur_type="median", kernel_size=4)  # 5 x 5
    np.testing.assert_array_equal(out, cv2.medianBlur(pixels, 5))
    assert out[5, 5].max() == 0 and (out[16:24, 21:29] == 255).all()  # only the square's corners are rounded


def test_bilateral_blur_is_opencvs_with_the_reference_sigmas() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    np.testing.assert_array_equal(output("image_blur", pixels, blur_type="bilateral", kernel_size=7),
                                  cv2.bilateralFilter(pixels, 7, 75, 75))


# ---------------------------------------------------------------------------- threshold

RAMP = grey_ramp()[..., 0].astype(int)


@pytest.mark.parametrize(("threshold_type", "expected"), [
    ("binary", np.where(RAMP > 127, 200, 0)),
    ("binary_inv", np.where(RAMP > 127, 0, 200)),
    ("trunc", np.where(RAMP > 127, 127, RAMP)),
    ("tozero", np.where(RAMP > 127, RAMP, 0)),
    ("tozero_inv", np.where(RAMP > 127, 0, RAMP)),
])
def test_fixed_thresholds(threshold_type: str, expected: np.ndarray) -> None:
    out = output("threshold", grey_ramp(), threshold_type=threshold_type, thresh_value=127, max_value=200)
    np.testing.assert_array_equal(assert_grey(out), expected)


def test_binary_is_the_default_type_with_255_and_a_colour_image_is_thresholded_per_channel() -> None:
    out = output("threshold", blank((100, 150, 200)), thresh_value=120)
    assert out[0, 0].tolist() == [0, 255, 255]


def test_otsu_splits_a_two_level_image_whatever_thresh_value_says() -> None:
    pixels = blank(40)
    pixels[:, WIDTH // 2:] = (180, 200, 220)  # a colour half: thresholded on its gray
    out = assert_grey(output("threshold", pixels, threshold_type="otsu", thresh_value=250))
    assert (out[:, :WIDTH // 2] == 0).all() and (out[:, WIDTH // 2:] == 255).all()


@pytest.mark.parametrize(("threshold_type", "method"), [
    ("adaptive_mean", cv2.ADAPTIVE_THRESH_MEAN_C), ("adaptive_gaussian", cv2.ADAPTIVE_THRESH_GAUSSIAN_C)])
def test_adaptive_thresholds_use_an_11_pixel_neighbourhood_and_an_offset_of_2(threshold_type: str, method: int
                                                                             ) -> None:
    pixels = np.random.default_rng(5).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    out = assert_grey(output("threshold", pixels, threshold_type=threshold_type, thresh_value=0))
    gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(out, cv2.adaptiveThreshold(gray, 255, method, cv2.THRESH_BINARY, 11, 2))


# ---------------------------------------------------------------------------- morphology


def square_with_speck_and_hole() -> np.ndarray:
    """A white 10 x 10 square at (x 20, y 15) with a 1-pixel hole, and a 1-pixel speck apart."""
    pixels = white_square()
    pixels[19, 24] = 0
    pixels[5, 5] = 255
    return pixels


def box(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    """255 in [x1, x2) x [y1, y2), one channel."""
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[y1:y2, x1:x2] = 255
    return mask


def morphology(version: int, operation: str, pixels: np.ndarray | None = None) -> np.ndarray:
    pixels = square_with_speck_and_hole() if pixels is None else pixels
    return output("morphological_transformation", pixels, version, operation=operation, kernel_size=3)


@pytest.mark.parametrize("version", [1, 2])
def test_erosion_and_dilation_by_a_3_by_3_kernel(version: int) -> None:
    eroded = morphology(version, "Erosion", white_square())
    np.testing.assert_array_equal(assert_grey(eroded), box(21, 16, 29, 24))
    dilated = morphology(version, "Dilation", white_square())
    np.testing.assert_array_equal(assert_grey(dilated), box(19, 14, 31, 26))


@pytest.mark.parametrize("version", [1, 2])
def test_opening_drops_the_speck_closing_fills_the_hole_and_the_hats_are_what_they_took(version: int) -> None:
    opened, closed = assert_grey(morphology(version, "Opening")), assert_grey(morphology(version, "Closing"))
    assert opened[5, 5] == 0 and opened[19, 24] == 0 and opened[15, 20] == 255
    assert closed[5, 5] == 255 and closed[19, 24] == 255
    top_hat, black_hat = assert_grey(morphology(version, "Top Hat")), assert_grey(morphology(version, "Black Hat"))
    assert np.argwhere(top_hat).tolist() == [[5, 5]]  # what opening took away
    assert np.argwhere(black_hat).tolist() == [[19, 24]]  # what closing filled
    gradient = assert_grey(morphology(version, "Gradient", white_square()))
    np.testing.assert_array_equal(gradient, box(19, 14, 31, 26) - box(21, 16, 29, 24))  # the outline


def test_v1_works_on_the_gray_and_closes_by_default() -> None:
    pixels = square_with_speck_and_hole()
    pixels[pixels[..., 0] == 255] = (0, 0, 255)  # red
    out = assert_grey(output("morphological_transformation", pixels, 1))  # Closing, kernel 5
    assert out[19, 24] == out[15, 20] == 76  # red's gray (0.299 * 255), the hole filled


def test_v2_keeps_colours_and_opens_then_closes_by_default() -> None:
    pixels = square_with_speck_and_hole()
    pixels[pixels[..., 0] == 255] = (0, 0, 255)
    out = output("morphological_transformation", pixels, 2, kernel_size=3)
    assert out[5, 5].tolist() == [0, 0, 0] and out[19, 24].tolist() == [0, 0, 255]  # speck gone, hole filled
    assert out[15, 20].tolist() == [0, 0, 255]


# ---------------------------------------------------------------------------- contrast equalization


def test_histogram_equalization_maps_each_level_to_its_cumulative_share() -> None:
    pixels = blank(50)
    pixels[:, :WIDTH // 4] = 200  # a quarter at 200, the rest at 50
    out = assert_grey(output("contrast_equalization", pixels))  # the default
    assert set(out[:, WIDTH // 4:].ravel().tolist()) == {191}  # 0.75 of the pixels are <= 50: int(0.75 * 255)
    assert set(out[:, :WIDTH // 4].ravel().tolist()) == {255}


def test_contrast_stretching_maps_the_2nd_to_98th_percentiles_to_the_full_range() -> None:
    pixels = blank(100)
    pixels[:, :WIDTH // 2] = 120  # half 100, half 120...
    pixels[0, 0], pixels[0, 1] = 0, 255  # ...and two outliers the percentiles leave out
    out = assert_grey(output("contrast_equalization", pixels, equalization_type="Contrast Stretching"))
    assert out[0, 0] == 0 and out[0, 1] == 255  # clipped
    assert set(out[1:, WIDTH // 2:].ravel().tolist()) == {0} and set(out[1:, :WIDTH // 2].ravel().tolist()) == {255}


def test_a_flat_image_is_left_as_it_is_by_stretching() -> None:
    out = output("contrast_equalization", blank(90), equalization_type="Contrast Stretching")
    assert set(out.ravel().tolist()) == {90}


def test_adaptive_equalization_is_clahe_on_the_brightness() -> None:
    """OpenCV's CLAHE in 8 x 8 tiles, clipped at 0.03 of a tile's pixels per level (0.03 * 256 of the mean)."""
    pixels = grey_ramp() // 8 + 100  # 100..129: low contrast
    out = assert_grey(output("contrast_equalization", pixels, equalization_type="Adaptive Equalization"))
    expected = cv2.createCLAHE(clipLimit=7.68, tileGridSize=(8, 8)).apply(np.ascontiguousarray(pixels[..., 0]))
    np.testing.assert_array_equal(out, expected)
    assert int(out.max()) - int(out.min()) > 29 + 5  # wider than it was
    coloured = blank((40, 90, 160))
    coloured[:, WIDTH // 2:] = (60, 120, 200)
    hsv_in, hsv_out = (cv2.cvtColor(p, cv2.COLOR_BGR2HSV).astype(int) for p in (
        coloured, output("contrast_equalization", coloured, equalization_type="Adaptive Equalization")))
    assert np.abs(hsv_out[..., 0] - hsv_in[..., 0]).max() <= 2  # the hues stay


# ---------------------------------------------------------------------------- contrast enhancement


def three_levels() -> np.ndarray:
    """Blue 100, 150 or 200 by thirds; green flat at 30; red 0..255 by thirds."""
    pixels = blank((0, 30, 0))
    for index, (blue, red) in enumerate([(100, 0), (150, 128), (200, 255)]):
        pixels[:, index * 20:(index + 1) * 20, 0] = blue
        pixels[:, index * 20:(index + 1) * 20, 2] = red
    return pixels


@pytest.mark.parametrize(("fields", "blues"), [
    ({}, [0, 127, 255]),  # min..max to 0..255 (150 is 127.5)
    ({"contrast_multiplier": 2.0}, [0, 127, 255]),  # about 128: 127.5 -> 127, the ends clipped
    ({"contrast_multiplier": 0.5}, [64, 127, 191]),
    ({"normalize_brightness": True}, [0, 149, 255]),  # (127.5 / 255) ** (1 / 1.3) * 255 = 149.6
])
def test_contrast_enhancement_stretches_each_channel(fields: dict[str, Any], blues: list[int]) -> None:
    out = output("contrast_enhancement", three_levels(), **fields)
    assert out[0, ::20, 0].tolist() == blues
    assert set(out[..., 1].ravel().tolist()) == {30}  # a flat channel is kept


def test_contrast_enhancement_clip_limit_leaves_out_the_percentiles() -> None:
    pixels = blank(0)
    pixels[:, :, 0] = np.arange(WIDTH, dtype=np.uint8)[None, :] + 100  # 100..159 along x
    out = output("contrast_enhancement", pixels, clip_limit=10)
    low, high = np.percentile(pixels[..., 0], (10, 90))
    assert (out[:, :6, 0] == 0).all() and (out[:, -6:, 0] == 255).all()  # below the 10th, above the 90th
    assert out[0, 30, 0] == int((130 - low) / (high - low) * 255)


# ---------------------------------------------------------------------------- contours


def two_rectangles() -> np.ndarray:
    pixels = blank()
    pixels[5:15, 5:25] = 255
    pixels[20:35, 30:50] = 255
    return pixels


def test_contours_are_the_outer_outlines_of_the_non_zero_pixels_drawn_and_counted() -> None:
    pixels = two_rectangles()
    pixels[25, 40] = 0  # a hole: external contours only
    outputs = step("contours_detection", line_thickness=1)(image=frame(pixels))
    assert outputs["number_contours"] == 2 and len(outputs["contours"]) == 2
    corners = sorted(sorted(c.reshape(-1, 2).tolist()) for c in outputs["contours"])
    assert corners == [[[5, 5], [5, 14], [24, 5], [24, 14]], [[30, 20], [30, 34], [49, 20], [49, 34]]]
    assert outputs["hierarchy"].shape == (1, 2, 4)
    drawn = outputs["image"].image
    assert drawn[5, 10].tolist() == [255, 0, 255] and drawn[34, 40].tolist() == [255, 0, 255]  # on the outlines
    assert drawn[10, 10].tolist() == [255, 255, 255] and drawn[0, 0].tolist() == [0, 0, 0]  # the gray image
    json.dumps(serialise(outputs))  # every output serialises


def test_contours_default_thickness_is_3_and_minus_1_fills_them() -> None:
    drawn = step("contours_detection")(image=frame(two_rectangles()))["image"].image
    assert drawn[3, 10].tolist() == [255, 0, 255] and drawn[2, 10].tolist() == [0, 0, 0]  # 1 px out of 3
    filled = step("contours_detection", line_thickness=-1)(image=frame(two_rectangles()))["image"].image
    assert (filled[5:15, 5:25] == (255, 0, 255)).all()


def test_no_contours_gives_zero_and_an_empty_hierarchy() -> None:
    outputs = step("contours_detection")(image=frame(blank()))
    assert outputs["number_contours"] == 0 and outputs["contours"] == []
    assert outputs["hierarchy"].shape == (1, 0, 4)


# ---------------------------------------------------------------------------- background subtraction

NOISE = np.random.default_rng(11)
BACKGROUND = NOISE.integers(40, 80, (HEIGHT, WIDTH, 3), dtype=np.uint8)
SCENE = [np.clip(BACKGROUND + NOISE.integers(-3, 4, BACKGROUND.shape), 0, 255).astype(np.uint8) for _ in range(12)]


def test_background_subtraction_is_opencvs_mog2_and_shows_what_moves() -> None:
    moved = BACKGROUND.copy()
    moved[10:20, 10:25] = 255
    frames = [*SCENE, moved]
    runner = step("background_subtraction", history=10)
    masks = [assert_grey(runner(image=frame(pixels, number))["image"].image) for number, pixels in enumerate(frames)]
    expected = cv2.createBackgroundSubtractorMOG2(history=10, varThreshold=16, detectShadows=True)
    for mask, pixels in zip(masks, frames, strict=True):
        np.testing.assert_array_equal(mask, expected.apply(pixels))
    assert (masks[-1][10:20, 10:25] > 0).all() and np.count_nonzero(masks[-1]) == 150  # only the rectangle
    assert not masks[-2].any()  # the learnt background


def test_each_source_has_its_own_background_model() -> None:
    first, second = step("background_subtraction"), step("background_subtraction")
    for number, pixels in enumerate(SCENE):
        first(image=frame(pixels, number))
    moved = BACKGROUND.copy()
    moved[10:20, 10:25] = 255
    assert np.count_nonzero(first(image=frame(moved))["image"].image) == 150 * 3  # the rectangle
    assert np.count_nonzero(second(image=frame(moved))["image"].image) != 150 * 3  # its first frame: all unknown


# ---------------------------------------------------------------------------- every block


BLOCKS = [("convert_grayscale", 1, {}), ("image_blur", 1, {}), ("threshold", 1, {"thresh_value": 100}),
          ("morphological_transformation", 1, {}), ("morphological_transformation", 2, {}),
          ("contrast_equalization", 1, {}), ("contrast_enhancement", 1, {}), ("contours_detection", 1, {}),
          ("background_subtraction", 1, {})]


@pytest.mark.parametrize(("block", "version", "fields"), BLOCKS)
def test_each_result_takes_its_images_place_in_bgr_and_leaves_the_input_alone(block: str, version: int,
                                                                              fields: dict[str, Any]) -> None:
    pixels = square_with_speck_and_hole()
    pixels[..., 2] //= 2
    source = frame(pixels.copy(), 7).crop(5, 5, 55, 35, crop_id="crop-1")
    out: WorkflowImage = step(block, version, **fields)(image=source)["image"]
    assert (out.parent_id, out.origin, out.root_origin, out.video) == (
        source.parent_id, source.origin, source.root_origin, source.video)
    assert out.image.shape == (30, 50, 3) and out.image.dtype == np.uint8
    np.testing.assert_array_equal(source.image, pixels[5:35, 5:55])


@pytest.mark.parametrize(("block", "version", "values", "message"), [
    ("image_blur", 1, {"kernel_size": 0}, "kernel_size must be an integer >= 1, got 0"),
    ("image_blur", 1, {"blur_type": "motion"}, "blur_type must be one of average, gaussian, median, bilateral, "
                                              "got 'motion'"),
    ("threshold", 1, {"thresh_value": 300}, "thresh_value must be an integer between 0 and 255, got 300"),
    ("threshold", 1, {"thresh_value": 1.5}, "thresh_value must be an integer between 0 and 255, got 1.5"),
    ("threshold", 1, {"max_value": -1}, "max_value must be an integer between 0 and 255, got -1"),
    ("threshold", 1, {"threshold_type": "triangle"}, "threshold_type must be one of binary, binary_inv, trunc, "
                                                     "tozero, tozero_inv, adaptive_mean, adaptive_gaussian, otsu"),
    ("morphological_transformation", 1, {"operation": "Opening then Closing"}, "operation must be one of Erosion, "
                                                                               "Dilation, Opening, Closing, Gradient"),
    ("morphological_transformation", 2, {"kernel_size": True}, "kernel_size must be an integer >= 1, got True"),
    ("contrast_equalization", 1, {"equalization_type": "Gamma"}, "equalization_type must be one of Contrast "
                                                                 "Stretching, Histogram Equalization, Adaptive"),
    ("contours_detection", 1, {"line_thickness": -2}, "line_thickness must be an integer between -1 and 32767"),
    ("background_subtraction", 1, {"history": 0}, "history must be an integer >= 1, got 0"),
    ("background_subtraction", 1, {"threshold": "16"}, "threshold must be an integer >= 1, got '16'"),
])
def test_bad_values_from_selectors_fail_with_the_field_and_the_value(block: str, version: int,
                                                                     values: dict[str, Any], message: str) -> None:
    runner = step(block, version, **({"thresh_value": 100} if block == "threshold" else {}))
    with pytest.raises(ValueError, match=message):
        runner.block.run(**{**runner.step.params, "image": frame(blank()), **values})
