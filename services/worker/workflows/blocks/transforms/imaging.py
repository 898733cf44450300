"""camera-calibration@v1, stitch_images@v1 and qr_code_generator@v1: images made from images, or from text.

camera_calibration removes lens distortion as the reference does (OpenCV's pinhole model with k1, k2, p1, p2,
k3 and ``getOptimalNewCameraMatrix`` at alpha 1, or the one-parameter division model for fisheye lenses); the
result takes the place of its image (same id and lineage). Its pixel maps depend on the parameters and the frame
size only, so they are computed once and reused while those stay the same (a stream calls it on every frame).

stitch_images aligns ``image2`` to ``image1`` (SIFT features, Lowe's ratio test, a RANSAC homography) and pastes
``image1`` over the warped ``image2`` on a canvas holding both. Images that cannot be stitched (too little texture,
too few matches, no homography) fail the step with the reason: its output reads null, as the reference's.

qr_code_generator draws ``text`` as a QR code (zxing-cpp; automatic version, 10 px per module, ``border`` modules
of quiet zone). Both new images are images of their own (their own root, no place in the frame), with the
reference's ids and the video metadata of the frame they were made on.
"""

import uuid
from collections.abc import Hashable
from typing import Any

import cv2
import numpy as np
import zxingcpp

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.visualization.colours import parse_color
from services.worker.workflows.values import WorkflowImage

# ---------------------------------------------------------------- camera_calibration


def undistortion_maps(width: int, height: int, fx: float, fy: float, cx: float, cy: float, k1: float, k2: float,
                      k3: float, p1: float, p2: float, fisheye: bool) -> tuple[np.ndarray, np.ndarray]:
    """The maps ``cv2.remap`` takes from a distorted ``width`` x ``height`` image to its undistorted one."""
    if fx <= 0 or fy <= 0:
        raise ValueError(f"fx and fy must be greater than 0, got {fx} and {fy}")
    if fisheye:
        return _division_model_maps(width, height, fx, fy, cx, cy, k1)
    camera = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    distortion = np.array([k1, k2, p1, p2, k3], dtype=np.float64)
    # alpha 1: every source pixel stays in view (black where the corrected image has none), as the reference.
    new_camera, _ = cv2.getOptimalNewCameraMatrix(camera, distortion, (width, height), 1, (width, height))
    map_xy, map_interpolation = cv2.initUndistortRectifyMap(camera, distortion, None, new_camera, (width, height),
                                                            cv2.CV_16SC2)
    return map_xy, map_interpolation  # the fixed-point maps cv2.undistort uses, so the pixels are its own


def _division_model_maps(width: int, height: int, fx: float, fy: float, cx: float, cy: float,
                         k1: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference's fisheye model: an undistorted point p comes from p (1 - sqrt(1 - 4 k1 r^2)) / (2 k1 r^2)."""
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = (grid_x - cx) / fx, (grid_y - cy) / fy
    radius2 = x * x + y * y
    scale = np.ones_like(radius2)
    if abs(k1) >= 1e-8:
        far = radius2 >= 1e-8  # the centre maps to itself
        discriminant = np.clip(1 - 4 * k1 * radius2[far], 0, None)
        scale[far] = (1 - np.sqrt(discriminant)) / (2 * k1 * radius2[far])
    return (x * scale * fx + cx).astype(np.float32), (y * scale * fy + cy).astype(np.float32)


class CameraCalibration:
    """``roboflow_core/camera-calibration@v1``: the last maps are kept with the parameters and size they are for."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env
        self._maps_key: Hashable = None
        self._maps: tuple[np.ndarray, np.ndarray] | None = None

    def run(self, image: WorkflowImage, fx: float, fy: float, cx: float, cy: float, k1: float, k2: float,
            k3: float, p1: float, p2: float, use_fisheye_model: bool = False) -> dict[str, Any]:
        parameters = (image.width, image.height, fx, fy, cx, cy, k1, k2, k3, p1, p2, use_fisheye_model)
        if self._maps is None or parameters != self._maps_key:
            self._maps = undistortion_maps(image.width, image.height, float(fx), float(fy), float(cx), float(cy),
                                           float(k1), float(k2), float(k3), float(p1), float(p2),
                                           bool(use_fisheye_model))
            self._maps_key = parameters
        pixels = cv2.remap(image.image, *self._maps, interpolation=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT)
        return {"calibrated_image": image.with_image(pixels)}


# ---------------------------------------------------------------- stitch_images

_RATIO_TEST = 0.75  # Lowe's: a match is kept when clearly better than the next best
_MIN_MATCHES = 4  # a homography needs four point pairs
_MAX_CANVAS_GROWTH = 4  # a canvas over 4 times both images' area means a degenerate homography


def _features(pixels: np.ndarray) -> tuple[list[Any], np.ndarray]:
    keypoints, descriptors = cv2.SIFT.create().detectAndCompute(pixels, None)
    if descriptors is None or len(keypoints) < 2:
        raise ValueError(f"cannot stitch: an image has too little texture ({len(keypoints)} SIFT keypoints)")
    return list(keypoints), descriptors


def homography(image1: np.ndarray, image2: np.ndarray, matches_per_descriptor: int,
               max_reprojection_error: float) -> np.ndarray:
    """The homography taking ``image2``'s pixels onto ``image1``'s, from their matched SIFT features."""
    keypoints1, descriptors1 = _features(image1)
    keypoints2, descriptors2 = _features(image2)
    candidates = cv2.BFMatcher().knnMatch(descriptors2, descriptors1, k=matches_per_descriptor)
    good = [pair[0] for pair in candidates if len(pair) >= 2 and pair[0].distance < _RATIO_TEST * pair[1].distance]
    if len(good) < _MIN_MATCHES:
        raise ValueError(f"cannot stitch: {len(good)} matching features between the images, "
                         f"{_MIN_MATCHES} at least are needed (do they overlap?)")
    points2 = np.array([keypoints2[m.queryIdx].pt for m in good], dtype=np.float32).reshape(-1, 1, 2)
    points1 = np.array([keypoints1[m.trainIdx].pt for m in good], dtype=np.float32).reshape(-1, 1, 2)
    matrix, _ = cv2.findHomography(points2, points1, cv2.RANSAC, max_reprojection_error)
    if matrix is None:
        raise ValueError(f"cannot stitch: no homography fits the {len(good)} matching features")
    return np.asarray(matrix, dtype=np.float64)


def stitched(image1: np.ndarray, image2: np.ndarray, matches_per_descriptor: int = 2,
             max_reprojection_error: float = 3.0) -> np.ndarray:
    """``image2`` warped into ``image1``'s plane, with ``image1`` pasted over it, on a canvas holding both."""
    if matches_per_descriptor < 2:
        raise ValueError(f"count_of_best_matches_per_query_descriptor must be at least 2, got {matches_per_descriptor}")
    matrix = homography(image1, image2, matches_per_descriptor, abs(max_reprojection_error))
    height1, width1 = image1.shape[:2]
    height2, width2 = image2.shape[:2]
    corners2 = np.array([[0, 0], [width2, 0], [width2, height2], [0, height2]], dtype=np.float32).reshape(-1, 1, 2)
    corners = np.vstack([cv2.perspectiveTransform(corners2, matrix).reshape(-1, 2),
                         [[0, 0], [width1, height1]]])
    left, top = np.floor(corners.min(axis=0)).astype(int)
    right, bottom = np.ceil(corners.max(axis=0)).astype(int)
    width, height = int(right - left), int(bottom - top)
    if width * height > _MAX_CANVAS_GROWTH * (width1 * height1 + width2 * height2):
        raise ValueError(f"cannot stitch: the homography found would need a {width} x {height} canvas")
    shift = np.array([[1, 0, -left], [0, 1, -top], [0, 0, 1]], dtype=np.float64)
    canvas = cv2.warpPerspective(image2, shift @ matrix, (width, height))
    canvas[-top:-top + height1, -left:-left + width1] = image1
    return canvas


class StitchImages:
    """``roboflow_core/stitch_images@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image1: WorkflowImage, image2: WorkflowImage, max_allowed_reprojection_error: float = 3,
            count_of_best_matches_per_query_descriptor: int = 2) -> dict[str, Any]:
        pixels = stitched(image1.image, image2.image, count_of_best_matches_per_query_descriptor,
                          float(max_allowed_reprojection_error))
        return {"stitched_image": WorkflowImage.frame(pixels, f"{image1.parent_id} + {image2.parent_id}",
                                                      image1.video)}


# ---------------------------------------------------------------- qr_code_generator

# The manifest's error correction choices, by the level zxing-cpp names them.
ERROR_CORRECTION = {
    "Low (~7% word recovery / highest data capacity)": "L",
    "Medium (~15% word recovery)": "M",
    "Quartile (~25% word recovery)": "Q",
    "High (~30% word recovery / lowest data capacity)": "H",
}
_MODULE_PIXELS = 10  # the reference's fixed box_size


def qr_code_pixels(text: str, error_correct: str, border: int, fill_color: str, back_color: str) -> np.ndarray:
    """A BGR QR code of ``text``: 10 px per module, ``border`` modules of ``back_color`` around it."""
    if error_correct not in ERROR_CORRECTION:
        raise ValueError(f"error_correct must be one of {', '.join(map(repr, ERROR_CORRECTION))}, "
                         f"got {error_correct!r}")
    if border < 0:
        raise ValueError(f"border must be 0 or more modules, got {border}")
    if not text:
        raise ValueError("text must not be empty")
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=ERROR_CORRECTION[error_correct])
    modules = np.asarray(zxingcpp.write_barcode_to_image(code, scale=1, add_quiet_zones=False)) < 128
    modules = np.pad(modules, int(border), constant_values=False)
    modules = np.kron(modules, np.ones((_MODULE_PIXELS, _MODULE_PIXELS), dtype=bool))
    fill, back = parse_color(fill_color).as_bgr(), parse_color(back_color).as_bgr()
    return np.where(modules[..., None], np.array(fill, np.uint8), np.array(back, np.uint8)).astype(np.uint8)


class QRCodeGenerator:
    """``roboflow_core/qr_code_generator@v1``: the code is drawn again only when its parameters change; each
    frame's image is a new one (``qr_code.<uuid>``, as the reference's) with that frame's video metadata."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step
        self._env = env
        self._drawn_key: Hashable = None
        self._drawn: np.ndarray | None = None

    def run(self, text: str, error_correct: str = "Medium (~15% word recovery)", border: int = 4,
            fill_color: str = "BLACK", back_color: str = "WHITE") -> dict[str, Any]:
        if self._env.video is None:
            raise RuntimeError("qr_code_generator runs on a frame: no frame's video metadata is set")
        key = (str(text), error_correct, int(border), fill_color, back_color)
        if self._drawn is None or key != self._drawn_key:
            self._drawn = qr_code_pixels(*key)
            self._drawn_key = key
        return {"qr_code": WorkflowImage.frame(self._drawn.copy(), f"qr_code.{uuid.uuid4()}", self._env.video)}
