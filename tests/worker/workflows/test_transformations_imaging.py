"""camera-calibration, stitch_images and qr_code_generator checked on pixels: OpenCV's own undistortion, a
textured image stitched back from two overlapping crops, a QR code zxing-cpp reads back; and their lineage."""

from typing import Any

import cv2
import numpy as np
import pytest
import zxingcpp

from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.transformations_support import as_frame, step_of
from tests.worker.workflows.video_steps import video

INTRINSICS = {"fx": 300.0, "fy": 310.0, "cx": 160.0, "cy": 118.0}
COEFFICIENTS = {"k1": -0.25, "k2": 0.08, "k3": 0.0, "p1": 0.001, "p2": -0.002}


def grid(width: int = 320, height: int = 240) -> np.ndarray:
    """White lines every 20 px on black, with a colour gradient so every pixel's value says where it was."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 1] = np.linspace(0, 200, width, dtype=np.uint8)[None, :]
    pixels[..., 2] = np.linspace(0, 200, height, dtype=np.uint8)[:, None]
    pixels[::20] = 255
    pixels[:, ::20] = 255
    return pixels


def textured(width: int = 480, height: int = 240) -> np.ndarray:
    """Random blobs and shapes: plenty of SIFT features, none repeated."""
    rng = np.random.default_rng(7)
    noise = cv2.resize(rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    for _ in range(60):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(noise, (x, y), int(rng.integers(3, 15)), colour, -1)
    return noise


def calibrate(pixels: np.ndarray, **fields: Any) -> WorkflowImage:
    step = step_of({"type": "roboflow_core/camera-calibration@v1", "name": "calibration", "image": "$inputs.image",
                    **INTRINSICS, **COEFFICIENTS, **fields})
    result: WorkflowImage = step.run(image=as_frame(pixels))["calibrated_image"]
    return result


def test_undistortion_is_opencv_s_with_the_optimal_new_camera_matrix() -> None:
    distorted = grid()
    camera = np.array([[300.0, 0, 160.0], [0, 310.0, 118.0], [0, 0, 1]])
    distortion = np.array([-0.25, 0.08, 0.001, -0.002, 0.0])
    new_camera, _ = cv2.getOptimalNewCameraMatrix(camera, distortion, (320, 240), 1, (320, 240))
    expected = cv2.undistort(distorted, camera, distortion, None, new_camera)

    out = calibrate(distorted)
    np.testing.assert_array_equal(out.image, expected)
    assert not np.array_equal(out.image, distorted)  # the coefficients did something


def test_undistortion_straightens_lines_a_known_distortion_bent() -> None:
    """A straight-lined grid distorted with known coefficients (OpenCV's model) comes back straight."""
    camera = np.array([[300.0, 0, 160.0], [0, 310.0, 118.0], [0, 0, 1]])
    distortion = np.array([-0.25, 0.08, 0.001, -0.002, 0.0])
    straight = cv2.dilate(grid(), np.ones((3, 3), np.uint8))  # 3 px lines: they survive two resamplings
    # Where each distorted pixel's ray lands undistorted: sample the straight grid there.
    ys, xs = np.mgrid[0:240, 0:320].astype(np.float32)
    rays = cv2.undistortPoints(np.stack([xs, ys], -1).reshape(-1, 1, 2), camera, distortion, P=camera)
    distorted = cv2.remap(straight, rays[:, 0, 0].reshape(240, 320), rays[:, 0, 1].reshape(240, 320),
                          cv2.INTER_LINEAR)

    out = calibrate(distorted)
    # The straight grid seen by the new camera (alpha 1 zooms out to keep every source pixel).
    new_camera, _ = cv2.getOptimalNewCameraMatrix(camera, distortion, (320, 240), 1, (320, 240))
    expected = cv2.warpPerspective(straight, new_camera @ np.linalg.inv(camera), (320, 240))
    centre = (slice(60, 180), slice(80, 240))
    assert np.abs(out.image[centre].astype(int) - expected[centre]).mean() < 8
    assert np.abs(distorted[centre].astype(int) - expected[centre]).mean() > 30  # it was bent


def test_zero_coefficients_leave_the_image_as_it_was() -> None:
    out = calibrate(grid(), **{name: 0.0 for name in COEFFICIENTS})
    np.testing.assert_array_equal(out.image, grid())


def test_fisheye_model_with_k1_zero_is_the_identity_and_otherwise_bends() -> None:
    np.testing.assert_array_equal(calibrate(grid(), use_fisheye_model=True, k1=0.0).image, grid())
    assert not np.array_equal(calibrate(grid(), use_fisheye_model=True, k1=0.3).image, grid())


def test_the_result_takes_the_place_of_its_image_and_the_maps_follow_the_frame_size() -> None:
    step = step_of({"type": "roboflow_core/camera-calibration@v1", "name": "calibration", "image": "$inputs.image",
                    **INTRINSICS, **COEFFICIENTS})
    source = as_frame(grid())
    out: WorkflowImage = step.run(image=source)["calibrated_image"]
    assert (out.parent_id, out.origin, out.root_origin, out.video) == (
        source.parent_id, source.origin, source.root_origin, source.video)
    np.testing.assert_array_equal(source.image, grid())
    smaller: WorkflowImage = step.run(image=as_frame(grid(160, 120)))["calibrated_image"]
    assert smaller.image.shape == (120, 160, 3)
    with pytest.raises(ValueError, match=r"fx and fy must be greater than 0, got 0\.0 and 310\.0"):
        step.block.run(image=source, **{**INTRINSICS, **COEFFICIENTS, "fx": 0.0})


def stitch(image1: WorkflowImage, image2: WorkflowImage) -> WorkflowImage:
    step = step_of({"type": "roboflow_core/stitch_images@v1", "name": "stitch", "image1": "$inputs.image",
                    "image2": "$inputs.image"})
    result: WorkflowImage = step.run(image1=image1, image2=image2)["stitched_image"]
    return result


@pytest.mark.parametrize("left_first", [True, False])
def test_two_overlapping_crops_stitch_back_into_the_image(left_first: bool) -> None:
    source = textured()
    frame = as_frame(source)
    left, right = frame.crop(0, 0, 300, 240, "left"), frame.crop(180, 0, 480, 240, "right")
    out = stitch(left, right) if left_first else stitch(right, left)

    assert abs(out.width - 480) <= 3 and abs(out.height - 240) <= 3, out.image.shape
    first = left if left_first else right
    # image1 is pasted as it is, image2 warped next to it: together, the source again.
    scores = cv2.matchTemplate(out.image, first.image, cv2.TM_SQDIFF)  # float32 sums: ~1e3 of rounding on some CPUs
    _, _, (x, y), _ = cv2.minMaxLoc(scores)
    assert np.array_equal(out.image[y:y + first.height, x:x + first.width], first.image)
    source_x = x - first.origin.offset_x  # where the source's left edge lies on the canvas
    placed = out.image[y:y + 240, max(source_x, 0):source_x + 480]
    seen = source[:placed.shape[0], max(-source_x, 0):][:, :placed.shape[1]]
    assert placed.shape[1] >= 476
    assert np.abs(placed[4:-4, 4:-4].astype(int) - seen[4:-4, 4:-4]).mean() < 4
    assert out.parent_id == ("left + right" if left_first else "right + left") and out.video == frame.video
    assert out.root_origin.parent_id == out.parent_id and out.origin.parent_width == out.width  # its own root


def test_images_that_do_not_overlap_are_not_stitched_and_say_why() -> None:
    frame = as_frame(textured())
    blank = as_frame(np.zeros((240, 200, 3), np.uint8))
    with pytest.raises(ValueError, match="cannot stitch: an image has too little texture"):
        stitch(frame, blank)
    unrelated = as_frame(cv2.resize(np.random.default_rng(1).integers(0, 256, (30, 60, 3), dtype=np.uint8),
                                    (480, 240), interpolation=cv2.INTER_CUBIC))
    with pytest.raises(ValueError, match="cannot stitch"):
        stitch(frame, unrelated)


def qr_code(**fields: Any) -> WorkflowImage:
    step = step_of({"type": "roboflow_core/qr_code_generator@v1", "name": "qr", "text": "https://roboflow.com",
                    **fields})
    step.block._env.video = video(3)  # the executor sets the frame's before each frame
    result: WorkflowImage = step.run()["qr_code"]
    return result


def test_the_qr_code_reads_back_as_its_text_in_its_colours() -> None:
    out = qr_code()
    assert [code.text for code in zxingcpp.read_barcodes(out.image)] == ["https://roboflow.com"]
    assert out.image.shape == (330, 330, 3)  # version 2 (25 modules) + 2 x 4 border, 10 px each
    assert out.image[:40, :40].min() == 255 and out.image[40:50, 40:50].max() == 0  # quiet zone, then a finder
    red = qr_code(fill_color="#ff0000", back_color="rgb(255, 255, 0)", border=1,
                  error_correct="High (~30% word recovery / lowest data capacity)")
    assert red.image.shape == (310, 310, 3)  # version 3 at High (29 modules) + 2 x 1
    assert tuple(red.image[0, 0]) == (0, 255, 255) and tuple(red.image[10, 10]) == (0, 0, 255)  # BGR
    assert [code.text for code in zxingcpp.read_barcodes(red.image)] == ["https://roboflow.com"]


def test_each_qr_image_is_a_new_image_of_the_frame() -> None:
    step = step_of({"type": "roboflow_core/qr_code_generator@v1", "name": "qr", "text": "id-42"})
    step.block._env.video = video(3)
    first: WorkflowImage = step.run()["qr_code"]
    step.block._env.video = video(4)
    second: WorkflowImage = step.run()["qr_code"]
    assert first.parent_id.startswith("qr_code.") and first.parent_id != second.parent_id
    assert (first.video.frame_number, second.video.frame_number) == (3, 4)
    assert first.root_origin.parent_id == first.parent_id and first.origin.parent_width == first.width
    np.testing.assert_array_equal(first.image, second.image)
    first.image[:] = 0  # a drawing on one frame's code leaves the next frame's alone
    assert second.image.max() == 255


def test_qr_values_from_other_steps_are_checked_at_run_time() -> None:
    step = step_of({"type": "roboflow_core/qr_code_generator@v1", "name": "qr", "text": "x"})
    with pytest.raises(RuntimeError, match="no frame's video metadata"):
        step.run()
    step.block._env.video = video(0)
    with pytest.raises(ValueError, match="invalid colour 'chartreuse-ish'"):
        step.run(fill_color="chartreuse-ish")
    with pytest.raises(ValueError, match="text must not be empty"):
        step.run(text="")
    with pytest.raises(ValueError, match="border must be 0 or more modules, got -1"):
        step.run(border=-1)
