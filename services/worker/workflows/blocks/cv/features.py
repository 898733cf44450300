"""Template matching and SIFT: find a known pattern in a frame, or tell whether two pictures show the same thing.

template_matching@v1: every place where the grey template's normalised correlation (TM_CCOEFF_NORMED) with the
grey image reaches ``matching_threshold`` is a ``template_match`` box of the template's size (class id 0,
confidence 1.0) on the image; overlapping boxes are reduced by NMS at ``nms_threshold`` unless ``apply_nms`` is
false.

sift@v1: OpenCV's SIFT keypoints and their 128-value descriptors on the grey image; ``image`` is the grey image
(as BGR) with the keypoints drawn. sift_comparison v1 matches two descriptor sets (FLANN, two nearest neighbours)
and keeps the matches that pass Lowe's ratio test; the images match with at least ``good_matches_threshold`` of
them. v2 also takes images (SIFT is run on them), may use a brute-force matcher, and with ``visualize`` draws the
keypoints and the good matches.

Unlike the reference, sift leaves its input image as it is (the reference draws over the input frame's pixels),
and an image without keypoints gives an empty (0 x 128) descriptor array instead of null, so a comparison with it
says 0 matches instead of being skipped.
"""

import uuid
from typing import Any

import cv2
import numpy as np

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.cv.gray import grayscale
from services.worker.workflows.values import WorkflowImage, detections_on

TEMPLATE_MATCH = "template_match"  # the class of every template matching box
DESCRIPTOR_SIZE = 128
BRUTE_FORCE = "BFMatcher"
_FLANN_KD_TREE = 1


class TemplateMatching:
    """``roboflow_core/template_matching@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, template: WorkflowImage, matching_threshold: float = 0.8,
            apply_nms: bool = True, nms_threshold: float = 0.5) -> dict[str, Any]:
        gray, pattern = grayscale(image.image), grayscale(template.image)
        height, width = pattern.shape
        if height > gray.shape[0] or width > gray.shape[1]:
            raise ValueError(f"template_matching: the template ({width} x {height}) is larger than the image "
                             f"({gray.shape[1]} x {gray.shape[0]})")
        scores = cv2.matchTemplate(gray, pattern, cv2.TM_CCOEFF_NORMED)
        ys, xs = np.nonzero(scores >= float(matching_threshold))
        boxes = np.column_stack([xs, ys, xs + width, ys + height]).astype(np.float32).reshape(-1, 4)
        count = len(boxes)
        matches = detections_on(image, boxes, np.ones(count, dtype=np.float32), np.zeros(count, dtype=np.int64),
                                [TEMPLATE_MATCH], str(uuid.uuid4()))
        if apply_nms and count:
            matches = matches.with_nms(threshold=float(nms_threshold))
        return {"predictions": matches, "number_of_matches": len(matches)}


class Sift:
    """SIFT on a BGR image, with the keypoints as the reference lists them."""

    def __init__(self) -> None:
        self._sift = cv2.SIFT.create()

    def features(self, pixels: np.ndarray) -> tuple[np.ndarray, tuple[cv2.KeyPoint, ...], np.ndarray]:
        """(the grey image, its keypoints, their descriptors as an N x 128 float32 array)."""
        gray = grayscale(pixels)
        points, descriptors = self._sift.detectAndCompute(gray, None)
        if descriptors is None:
            descriptors = np.zeros((0, DESCRIPTOR_SIZE), dtype=np.float32)
        return gray, tuple(points), descriptors


def keypoint_dicts(points: tuple[cv2.KeyPoint, ...]) -> list[dict[str, Any]]:
    return [{"pt": (float(p.pt[0]), float(p.pt[1])), "size": float(p.size), "angle": float(p.angle),
             "response": float(p.response), "octave": int(p.octave), "class_id": int(p.class_id)} for p in points]


def drawn_keypoints(gray: np.ndarray, points: tuple[cv2.KeyPoint, ...]) -> np.ndarray:
    """The grey image as BGR with each keypoint circled."""
    drawn = np.empty((*gray.shape[:2], 3), dtype=np.uint8)
    return np.asarray(cv2.drawKeypoints(gray, points, drawn))


def good_matches(first: Any, second: Any, ratio_threshold: float, matcher: str = "FlannBasedMatcher"
                 ) -> list[cv2.DMatch]:
    """The nearest-neighbour matches of ``first``'s descriptors in ``second`` that pass Lowe's ratio test (the
    nearest is closer than ``ratio_threshold`` times the second nearest); none when either has < 2 descriptors."""
    if first is None or second is None or len(first) < 2 or len(second) < 2:
        return []
    first, second = np.asarray(first, dtype=np.float32), np.asarray(second, dtype=np.float32)
    if matcher == BRUTE_FORCE:
        pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(first, second, k=2)
    else:
        flann = cv2.FlannBasedMatcher({"algorithm": _FLANN_KD_TREE, "trees": 5}, {"checks": 50})
        pairs = flann.knnMatch(first, second, k=2)
    return [pair[0] for pair in pairs if len(pair) == 2 and pair[0].distance < ratio_threshold * pair[1].distance]


class SiftV1:
    """``roboflow_core/sift@v1``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env
        self._sift = Sift()

    def run(self, image: WorkflowImage) -> dict[str, Any]:
        gray, points, descriptors = self._sift.features(image.image)
        return {"image": image.with_image(drawn_keypoints(gray, points)), "keypoints": keypoint_dicts(points),
                "descriptors": descriptors}


class SiftComparisonV1:
    """``roboflow_core/sift_comparison@v1``: two descriptor sets compared."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, descriptor_1: Any, descriptor_2: Any, good_matches_threshold: int = 50,
            ratio_threshold: float = 0.7) -> dict[str, Any]:
        count = len(good_matches(descriptor_1, descriptor_2, float(ratio_threshold)))
        return {"good_matches_count": count, "images_match": count >= good_matches_threshold}


class SiftComparisonV2:
    """``roboflow_core/sift_comparison@v2``: two images or descriptor sets compared, optionally drawn."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env
        self._sift = Sift()

    def run(self, input_1: Any, input_2: Any, good_matches_threshold: int = 50, ratio_threshold: float = 0.7,
            matcher: str = "FlannBasedMatcher", visualize: bool = False) -> dict[str, Any]:
        sides = [self._side(value, visualize) for value in (input_1, input_2)]
        (points_1, descriptors_1, drawn_1), (points_2, descriptors_2, drawn_2) = sides
        matches = good_matches(descriptors_1, descriptors_2, float(ratio_threshold), matcher)
        pictured = None  # as the reference: not drawn when either side has fewer than 2 descriptors
        if (visualize and isinstance(input_1, WorkflowImage) and isinstance(input_2, WorkflowImage)
                and min(len(descriptors_1), len(descriptors_2)) >= 2):
            pictured = input_1.with_image(self._matches_drawn(input_1, input_2, points_1, points_2, matches, matcher))
        return {
            "images_match": len(matches) >= good_matches_threshold, "good_matches_count": len(matches),
            "keypoints_1": None if points_1 is None else keypoint_dicts(points_1), "descriptors_1": descriptors_1,
            "keypoints_2": None if points_2 is None else keypoint_dicts(points_2), "descriptors_2": descriptors_2,
            "visualization_1": drawn_1, "visualization_2": drawn_2, "visualization_matches": pictured,
        }

    def _side(self, value: Any, visualize: bool) -> tuple[tuple[cv2.KeyPoint, ...] | None, Any, WorkflowImage | None]:
        """(keypoints, descriptors, keypoints drawn) of an image; (None, the value, None) of descriptors."""
        if not isinstance(value, WorkflowImage):
            return None, value, None
        gray, points, descriptors = self._sift.features(value.image)
        return points, descriptors, value.with_image(drawn_keypoints(gray, points)) if visualize else None

    @staticmethod
    def _matches_drawn(first: WorkflowImage, second: WorkflowImage, points_1: Any, points_2: Any,
                       matches: list[cv2.DMatch], matcher: str) -> np.ndarray:
        """The two images side by side, each good match a line between its keypoints (brute force: the matched
        keypoints only; FLANN: green matches, the other keypoints red)."""
        if matcher == BRUTE_FORCE:
            style: dict[str, Any] = {"flags": cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS}
        else:
            style = {"matchColor": (0, 255, 0), "singlePointColor": (0, 0, 255),
                     "flags": cv2.DrawMatchesFlags_DEFAULT}
        height = max(first.height, second.height)
        drawn = np.empty((height, first.width + second.width, 3), dtype=np.uint8)
        return np.asarray(cv2.drawMatchesKnn(first.image, points_1, second.image, points_2, [[m] for m in matches],
                                             drawn, **style))

