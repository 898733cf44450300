"""perspective_correction v1 against hand-computed points: a symmetric trapezoid onto a 10 x 20 rectangle (its
corners onto the rectangle's, its diagonals' crossing onto the rectangle's centre), boxes as the box around their
corners' images, masks, what the detections keep, the warped image, the polygon picked from several, the extension by
the detections' anchors (the reference's own cases), the cached transform, velocity@v1 reading the result, and the
polygons and values refused."""

from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from services.worker.workflows import values
from services.worker.workflows.blocks.transforms import perspective
from services.worker.workflows.blocks.transforms.perspective import extended_plane, ordered_corners
from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.video_steps import StepRunner, box_at, boxes, image, video

# A road seen from above at an angle: 368 px wide far away, 768 px near.
TRAPEZOID = [[200, 100], [568, 100], [768, 500], [0, 500]]
# The diagonals cross at x = 384 (symmetry), where 200 + 568 t = 384 on the diagonal (200, 100) -> (768, 500).
CROSSING = (384.0, 100 + 400 * 184 / 568)


def correction(**fields: Any) -> StepRunner:
    return StepRunner({"type": "roboflow_core/perspective_correction@v1", "name": "perspective",
                       "images": "$inputs.image", "predictions": "$steps.track.tracked_detections",
                       "perspective_polygons": TRAPEZOID, "transformed_rect_width": 10,
                       "transformed_rect_height": 20, **fields})


def corrected(runner: StepRunner, detections: sv.Detections, frame: int = 0, **runtime: Any) -> dict[str, Any]:
    return runner(images=runtime.pop("images", image(frame, 10.0)), predictions=detections, **runtime)


def selected(runner: StepRunner, **runtime: Any) -> dict[str, Any]:
    """The block run with ``runtime`` standing for what selectors would give in place of its literals."""
    outputs: dict[str, Any] = runner.block.run(**{**runner.step.params, "images": image(0, 10.0), **runtime})
    return outputs


def points(*xy: tuple[float, float]) -> sv.Detections:
    """Zero-sized boxes at the points, so that each corrected box is the point's image."""
    return boxes([[x, y, x, y] for x, y in xy])


def test_the_corners_land_on_the_rectangle_s_and_the_diagonals_crossing_on_its_centre() -> None:
    result = corrected(correction(), points((0, 500), (200, 100), (568, 100), (768, 500), CROSSING))
    moved = result["corrected_coordinates"].xyxy
    # the rectangle spans 0..w-1 x 0..h-1, as the reference's (its corners at pixel centres of a w x h image)
    np.testing.assert_allclose(moved[:, :2], [[0, 19], [0, 0], [9, 0], [9, 19], [4.5, 9.5]], atol=1e-3)
    np.testing.assert_allclose(moved[:, 2:], moved[:, :2])
    assert (result["extended_transformed_rect_width"], result["extended_transformed_rect_height"]) == (10, 20)


def test_the_corners_may_come_in_any_order() -> None:
    shuffled = [TRAPEZOID[2], TRAPEZOID[0], TRAPEZOID[3], TRAPEZOID[1]]
    result = corrected(correction(perspective_polygons=shuffled), points((0, 500), (200, 100)))
    np.testing.assert_allclose(result["corrected_coordinates"].xyxy[:, :2], [[0, 19], [0, 0]], atol=1e-3)


def test_a_box_becomes_the_box_around_its_four_corners_images() -> None:
    # (200, 100) -> (0, 0) and (568, 100) -> (9, 0); on the bottom edge, x' = 9 x / 768: (568, 500) -> 6.65625, 19
    # and (200, 500) -> 2.34375, 19. Mapping only the box's two corners would give [0, 0, 6.65625, 19].
    result = corrected(correction(), boxes([[200, 100, 568, 500]]))
    np.testing.assert_allclose(result["corrected_coordinates"].xyxy, [[0, 0, 9, 19]], atol=1e-3)


def test_tracker_ids_ids_classes_lineage_and_data_fields_are_kept() -> None:
    detections = boxes([box_at(384, 300), box_at(300, 200)], confidence=[0.9, 0.6], tracker_id=[7, 3],
                       class_names=["person", "car"])
    detections.data[values.TIME_IN_ZONE] = np.array([1.5, 2.5])
    result = corrected(correction(), detections)["corrected_coordinates"]
    assert result.tracker_id.tolist() == [7, 3]
    assert result.confidence.tolist() == pytest.approx([0.9, 0.6])
    assert result.data[values.CLASS_NAME].tolist() == ["person", "car"]
    for key in (values.DETECTION_ID, values.PARENT_ID, values.ROOT_PARENT_ID, values.TIME_IN_ZONE):
        assert result.data[key].tolist() == detections.data[key].tolist(), key
    assert result.metadata[values.IMAGE_SIZE] == (576, 768)
    assert ((result.xyxy >= 0) & (result.xyxy <= [9, 19, 9, 19])).all()  # both inside the trapezoid
    assert detections.xyxy.tolist()[0] == box_at(384, 300)  # the input is left alone


def test_no_predictions_give_none_and_none_found_give_none_found() -> None:
    runner = correction()
    without = runner(images=image(0, 10.0), predictions=None)
    assert without["corrected_coordinates"] is None and without["extended_transformed_rect_width"] == 10
    empty = corrected(runner, boxes([]))["corrected_coordinates"]
    assert len(empty) == 0 and empty.metadata[values.IMAGE_SIZE] == (576, 768)


def test_a_mask_is_warped_and_the_box_is_around_its_outline() -> None:
    # A square onto 51 x 51: halves coordinates. The diamond's outline (15, 10) .. (20, 15) .. lands at half of it.
    square = [[0, 0], [100, 0], [100, 100], [0, 100]]
    detections = boxes([[0, 0, 40, 40]])
    mask = np.zeros((576, 768), dtype=np.uint8)
    cv2.fillPoly(mask, [np.array([[10, 15], [15, 10], [20, 15], [15, 20]], dtype=np.int32)], 1)
    detections.mask = mask[None].astype(bool)
    runner = correction(perspective_polygons=square, transformed_rect_width=51, transformed_rect_height=51)
    result = corrected(runner, detections)["corrected_coordinates"]
    np.testing.assert_allclose(result.xyxy, [[5, 5, 10, 10]], atol=1e-3)  # not [0, 0, 20, 20], the box's
    assert result.mask.shape == (1, 51, 51)
    # the diamond (5, 7.5), (7.5, 5), (10, 7.5), (7.5, 10), rounded as the reference: 8 at its top, 5 at its left
    assert result.mask[0, 7, 7] and result.mask[0, 5, 8] and result.mask[0, 8, 5]
    assert not result.mask[0, 5, 5] and not result.mask[0, 10, 10] and result.mask.sum() < 40


def test_warp_image_gives_the_rectangle_seen_from_above() -> None:
    pixels = np.zeros((576, 768, 3), dtype=np.uint8)
    cv2.circle(pixels, (384, 230), 8, (255, 255, 255), -1)  # a white spot on the diagonals' crossing
    frame = WorkflowImage.frame(pixels, "image", video(0, 10.0))
    runner = correction(transformed_rect_width=100, transformed_rect_height=200, warp_image=True)
    result = corrected(runner, boxes([]), images=frame)
    warped = result["warped_image"]
    assert warped.image.shape == (200, 100, 3)
    assert warped.image[99, 49].tolist() == [255, 255, 255]  # the centre, (49.5, 99.5)
    assert warped.image[5, 5].tolist() == [0, 0, 0] and warped.image[190, 90].tolist() == [0, 0, 0]
    assert (warped.parent_id, warped.root_origin) == (frame.parent_id, frame.root_origin)
    assert corrected(correction(), boxes([]), images=frame)["warped_image"] is frame  # not asked: as given


def test_the_largest_four_point_polygon_is_used_others_ignored() -> None:
    large_pentagon = [[0, 0], [700, 0], [760, 300], [700, 570], [0, 570]]
    small = [[300, 300], [400, 300], [400, 400], [300, 400]]
    large = [[100.4, 100.4], [600, 100], [600, 500], [100, 500]]  # vertices rounded, as the reference
    result = corrected(correction(perspective_polygons=[large_pentagon, small, large]), points((100, 100), (600, 500)))
    np.testing.assert_allclose(result["corrected_coordinates"].xyxy[:, :2], [[0, 0], [9, 19]], atol=1e-3)


def test_extension_by_anchors_outside_grows_the_rectangle_as_the_reference() -> None:
    # The reference's own case: a 10 px square and four detections, one beyond each side (bottom centres at
    # (91, 106), (121, 106), (105.5, 92) and (105.5, 122)): the sides move there and the square becomes 30 px.
    square = [[100, 110], [100, 100], [110, 100], [110, 110]]
    outside = boxes([[90, 105, 92, 106], [120, 105, 122, 106], [105, 90, 106, 92], [105, 120, 106, 122]])
    runner = correction(perspective_polygons=square, transformed_rect_width=10, transformed_rect_height=10,
                        extend_perspective_polygon_by_detections_anchor="BOTTOM_CENTER")
    result = corrected(runner, outside)
    assert (result["extended_transformed_rect_width"], result["extended_transformed_rect_height"]) == (30, 30)
    # the grown square [91..121] x [92..122] maps onto 0..29: a point at its top-left lands at the origin
    np.testing.assert_allclose(corrected(runner, points((91, 92), (121, 122)))["corrected_coordinates"].xyxy[:, :2],
                               [[0, 0], [29, 29]], atol=1e-3)
    inside = corrected(runner, boxes([[104, 104, 106, 106]]))  # computed anew each frame: back to the square
    assert (inside["extended_transformed_rect_width"], inside["extended_transformed_rect_height"]) == (10, 10)


def test_extension_of_a_skewed_polygon_moves_its_corners_as_the_reference() -> None:
    corners = ordered_corners(np.array([[300, 700], [250, 400], [700, 300], [600, 800]], dtype=np.float64))
    outside = sv.Detections(xyxy=np.array([[199, 599, 201, 601], [399, 199, 401, 201], [799, 599, 801, 601],
                                           [399, 899, 401, 901]], dtype=np.float64))
    plane = extended_plane(corners, 100, 100, outside, "BOTTOM_CENTER")
    grown = np.array([[242, 848], [142, 258], [903, 90], [718, 1007]], dtype=np.float64)  # the reference's result
    target = [[0, plane.height - 1], [0, 0], [plane.width - 1, 0], [plane.width - 1, plane.height - 1]]
    np.testing.assert_allclose(cv2.perspectiveTransform(grown[None], plane.matrix)[0], target, atol=1e-3)


def test_extension_by_all_corners_holds_whole_boxes() -> None:
    square = [[100, 100], [200, 100], [200, 200], [100, 200]]
    across_the_right_side = boxes([[150, 140, 230, 160]])  # centre inside, right corners 30 px beyond
    centre = corrected(correction(perspective_polygons=square, transformed_rect_width=100, transformed_rect_height=100,
                                  extend_perspective_polygon_by_detections_anchor="CENTER"), across_the_right_side)
    every_corner = corrected(correction(perspective_polygons=square, transformed_rect_width=100,
                                        transformed_rect_height=100,
                                        extend_perspective_polygon_by_detections_anchor="ALL"), across_the_right_side)
    assert centre["extended_transformed_rect_width"] == 100
    assert (every_corner["extended_transformed_rect_width"], every_corner["extended_transformed_rect_height"]) == (
        130, 100)
    assert every_corner["corrected_coordinates"].xyxy[0, 2] == pytest.approx(129, abs=1e-3)


def test_the_transform_is_computed_once_per_polygon(monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[np.ndarray] = []
    compute = cv2.getPerspectiveTransform

    def counted(source: np.ndarray, target: np.ndarray) -> np.ndarray:
        computed.append(source)
        return compute(source, target)

    monkeypatch.setattr(perspective.cv2, "getPerspectiveTransform", counted)
    runner = StepRunner({"type": "PerspectiveCorrection", "name": "perspective", "images": "$inputs.image",
                         "predictions": "$steps.track.tracked_detections", "perspective_polygons": TRAPEZOID})
    for frame in range(3):
        corrected(runner, points((200, 100)), frame)
    moved = [[210, 100], *TRAPEZOID[1:]]  # a selector's polygon changed: computed again, not the first kept
    result = selected(runner, predictions=points((210, 100)), perspective_polygons=moved)
    assert len(computed) == 2
    np.testing.assert_allclose(result["corrected_coordinates"].xyxy[0, :2], [0, 0], atol=1e-3)


def test_velocity_reads_the_corrected_coordinates_in_the_rectangle_s_units() -> None:
    # A 200 x 400 px rectangle onto 11 x 21 units: 20 px a unit. 4 px a frame to the right at 10 fps = 2 units/s.
    rectangle = [[100, 100], [300, 100], [300, 500], [100, 500]]
    runner = correction(perspective_polygons=rectangle, transformed_rect_width=11, transformed_rect_height=21)
    velocity = StepRunner({"type": "roboflow_core/velocity@v1", "name": "velocity", "image": "$inputs.image",
                           "detections": "$steps.track.tracked_detections", "smoothing_alpha": 1.0})
    for frame in range(3):
        moved = corrected(runner, boxes([box_at(150 + 4 * frame, 300)], tracker_id=[4]), frame)
        result = velocity(image=image(frame, 10.0), detections=moved["corrected_coordinates"])["velocity_detections"]
    assert result.tracker_id.tolist() == [4]
    np.testing.assert_allclose(result.data[values.VELOCITY], [[2.0, 0.0]], atol=1e-4)


@pytest.mark.parametrize(("polygons", "expected"), [
    ([[0, 0], [100, 0], [100, 100]], "must be a polygon of 4 points"),
    ([[0, 0], [100, 0], [120, 50], [100, 100], [0, 100]], "must be a polygon of 4 points"),
    ([[[0, 0], [100, 0], [100, 100]]], "must be a polygon of 4 points"),
    ("[[0, 0], [1, 0], [1, 1], [0, 1]]", "must be a polygon of 4 points"),
    ([[0, 0], [100, 0], [200, 0], [0, 100]], "is not a convex quadrilateral"),  # three on a line
    ([[0, 0], [100, 0], [20, 20], [0, 100]], "is not a convex quadrilateral"),  # one inside the others' triangle
    ([[0, 0], [100, 0], [100, 100], [100, 100]], "is not a convex quadrilateral"),  # a corner twice
])
def test_bad_polygons_from_a_selector_fail_the_frame_with_the_reason(polygons: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        selected(correction(), predictions=None, perspective_polygons=polygons)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("transformed_rect_width", 0, "transformed_rect_width must be a positive integer"),
    ("transformed_rect_height", 2.5, "transformed_rect_height must be a positive integer"),
    ("extend_perspective_polygon_by_detections_anchor", "MIDDLE",
     "extend_perspective_polygon_by_detections_anchor must be one of"),
])
def test_bad_values_from_a_selector_fail_the_frame_with_the_reason(field: str, value: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        selected(correction(), predictions=boxes([]), **{field: value})
