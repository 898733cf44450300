"""detections_list_rollup@v1 through its compiled step: detections made on dynamic_crop's crops (their real lineage)
rolled up into the frame and merged per class as the reference (union box, max / mean / min confidence, any
overlap or an IoU threshold, transitively), masks by their masks and keypoint detections by their keypoints; the
crop zones; what fails the step."""

import json
import uuid
from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows import values
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.transformations_support import Step, as_frame, detector, found, step_of

FRAME = as_frame(np.zeros((300, 400, 3), np.uint8))
CROPS = {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
         "predictions": "$steps.detect.predictions"}
ON_CROPS = detector("on_crops", "$steps.crops.crops")
COLLAPSE = {"type": "roboflow_core/dimension_collapse@v1", "name": "collapse", "data": "$steps.on_crops.predictions"}
Rows = list[tuple[float, float, float, float, float, str]]


def rollup(**fields: Any) -> Step:
    step = {"type": "roboflow_core/detections_list_rollup@v1", "name": "rollup",
            "parent_detection": "$steps.detect.predictions", "child_detections": "$steps.collapse.output", **fields}
    return step_of(step, detector("detect"), CROPS, ON_CROPS, COLLAPSE)


def crops_of(parent: sv.Detections) -> list[WorkflowImage]:
    """dynamic_crop's crops of ``parent``'s boxes on FRAME (in the parent detections' order)."""
    crop_step = step_of(CROPS)
    return [item["crops"] for item in crop_step.run(images=FRAME, predictions=parent)]


def rolled(parent: sv.Detections, children: list[sv.Detections | None], **fields: Any) -> dict[str, Any]:
    result = rollup(**fields).run(parent_detection=parent, child_detections=children)
    assert set(result) == {"rolled_up_detections", "crop_zones"}
    return result


def rows_of(detections: sv.Detections) -> list[tuple[list[float], float, str]]:
    return [(box, round(confidence, 4), str(name)) for box, confidence, name in
            zip(detections.xyxy.tolist(), detections.confidence.tolist(), detections.data["class_name"], strict=True)]


def test_each_crop_s_detections_land_where_its_crop_lies_and_the_zones_are_the_parent_boxes() -> None:
    people = found(FRAME, [(20, 30, 120, 230, 0.9, "person"), (200, 50, 300, 250, 0.8, "person")])
    left, right = crops_of(people)
    children = [found(left, [(10, 20, 40, 60, 0.7, "dog")]), found(right, [(5, 5, 25, 45, 0.6, "car")])]

    result = rolled(people, children)

    assert rows_of(result["rolled_up_detections"]) == [([30, 50, 60, 90], 0.7, "dog"), ([205, 55, 225, 95], 0.6, "car")]
    assert result["crop_zones"] == [[(20, 30), (120, 30), (120, 230), (20, 230)],
                                    [(200, 50), (300, 50), (300, 250), (200, 250)]]
    assert json.loads(json.dumps(serialise(result["crop_zones"]))) == [
        [[20, 30], [120, 30], [120, 230], [20, 230]], [[200, 50], [300, 50], [300, 250], [200, 250]]]


def test_the_rolled_up_detections_are_placed_on_the_parent_image_with_new_ids() -> None:
    people = found(FRAME, [(20, 30, 120, 230, 0.9, "person")])
    child = found(crops_of(people)[0], [(10, 20, 40, 60, 0.7, "dog")], inference_id="second-model")

    detections = rolled(people, [child])["rolled_up_detections"]

    assert detections.data[values.DETECTION_ID][0] not in (child.data[values.DETECTION_ID][0],
                                                           people.data[values.DETECTION_ID][0])
    assert uuid.UUID(str(detections.data[values.DETECTION_ID][0]))
    assert str(detections.data[values.INFERENCE_ID][0]) == "second-model"  # its own fields: the first member's
    serialised = serialise(detections)
    assert serialised["image"] == {"width": 400, "height": 300}
    prediction = serialised["predictions"][0]
    assert prediction["parent_id"] == FRAME.parent_id and "parent_origin" not in prediction  # on the frame itself
    assert (prediction["x"], prediction["y"], prediction["width"], prediction["height"]) == (45, 70, 30, 40)
    assert (prediction["class"], prediction["class_id"]) == ("dog", 2)


@pytest.mark.parametrize(("strategy", "confidence"), [("max", 0.9), ("mean", 0.7), ("min", 0.5)])
def test_one_object_seen_in_two_overlapping_crops_is_merged_into_the_box_around_both(strategy: str,
                                                                                      confidence: float) -> None:
    people = found(FRAME, [(0, 0, 200, 200, 0.9, "person"), (100, 0, 300, 200, 0.8, "person")])
    first, second = crops_of(people)
    # the same dog at x 150..190 (first crop) and 148..186 (second crop, which starts at x 100)
    children = [found(first, [(150, 50, 190, 90, 0.9, "dog")]), found(second, [(48, 52, 86, 94, 0.5, "dog")])]

    detections = rolled(people, children, confidence_strategy=strategy)["rolled_up_detections"]

    assert rows_of(detections) == [([148, 50, 190, 94], confidence, "dog")]


def test_groups_are_per_class_transitive_and_need_an_intersection() -> None:
    people = found(FRAME, [(0, 0, 400, 300, 0.9, "person")])
    children = [found(crops_of(people)[0], [
        (0, 0, 20, 20, 0.9, "dog"), (15, 0, 35, 20, 0.8, "dog"), (30, 0, 50, 20, 0.7, "dog"),  # a chain: one
        (50, 0, 70, 20, 0.6, "dog"),  # touches the chain's last box, shares no pixel: its own
        (0, 0, 20, 20, 0.5, "car"),  # over the first dog, another class: its own
    ])]

    detections = rolled(people, children)["rolled_up_detections"]

    assert rows_of(detections) == [([0, 0, 50, 20], 0.9, "dog"), ([50, 0, 70, 20], 0.6, "dog"),
                                   ([0, 0, 20, 20], 0.5, "car")]


def test_an_overlap_threshold_merges_only_pairs_with_that_iou() -> None:
    people = found(FRAME, [(0, 0, 400, 300, 0.9, "person")])
    # IoU 0.6 / 1.4 = 0.43 for the first pair, 0.9 / 1.1 = 0.82 for the second
    children = [found(crops_of(people)[0], [(0, 0, 10, 10, 0.9, "dog"), (4, 0, 14, 10, 0.8, "dog"),
                                            (100, 0, 110, 10, 0.7, "dog"), (101, 0, 111, 10, 0.6, "dog")])]

    assert len(rolled(people, children)["rolled_up_detections"]) == 2
    assert rows_of(rolled(people, children, overlap_threshold=0.5)["rolled_up_detections"]) == [
        ([0, 0, 10, 10], 0.9, "dog"), ([4, 0, 14, 10], 0.8, "dog"), ([100, 0, 111, 10], 0.7, "dog")]
    assert len(rolled(people, children, overlap_threshold=0.9)["rolled_up_detections"]) == 4


def test_the_crop_s_real_place_is_used_where_the_parent_box_left_the_image_or_had_fractions() -> None:
    people = found(FRAME, [(-20, 10.6, 80, 110.6, 0.9, "person"), (350.7, 100, 450, 200, 0.8, "person")])
    left, right = crops_of(people)
    assert (left.origin.offset_x, left.origin.offset_y, right.origin.offset_x) == (0, 11, 351)  # clipped, rounded
    children = [found(left, [(0, 0, 10, 10, 0.9, "dog")]), found(right, [(0, 0, 10, 10, 0.8, "car")])]

    result = rolled(people, children)

    # the reference would add the parent box's truncated corner: (-20, 10) and (350, 100)
    assert rows_of(result["rolled_up_detections"]) == [([0, 11, 10, 21], 0.9, "dog"), ([351, 100, 361, 110], 0.8,
                                                                                        "car")]
    assert result["crop_zones"][0][0] == (-20, pytest.approx(10.6))


def test_detections_without_lineage_use_the_parent_box_corner_as_the_reference() -> None:
    people = found(FRAME, [(20.9, 30.2, 120, 230, 0.9, "person")])
    bare = sv.Detections(xyxy=np.array([[1, 2, 11, 12]], dtype=np.float32), confidence=np.array([0.5]),
                         class_id=np.array([0]), data={"class_name": np.array(["dot"])})

    assert rows_of(rolled(people, [bare])["rolled_up_detections"]) == [([21, 32, 31, 42], 0.5, "dot")]


def test_a_crop_without_result_counts_as_nothing_and_no_detections_give_an_empty_result() -> None:
    people = found(FRAME, [(20, 30, 120, 230, 0.9, "person"), (200, 50, 300, 250, 0.8, "person")])
    left, right = crops_of(people)
    result = rolled(people, [None, found(right, [(5, 5, 25, 45, 0.6, "car")])])
    assert rows_of(result["rolled_up_detections"]) == [([205, 55, 225, 95], 0.6, "car")]

    empty = rolled(people, [found(left, []), None])["rolled_up_detections"]
    assert len(empty) == 0 and serialise(empty) == {"image": {"width": 400, "height": 300}, "predictions": []}
    nobody = rolled(found(FRAME, []), [])
    assert len(nobody["rolled_up_detections"]) == 0 and nobody["crop_zones"] == []
    assert serialise(nobody["rolled_up_detections"])["image"] == {"width": 400, "height": 300}


def test_masks_merge_by_their_pixels_and_give_the_box_around_the_union() -> None:
    people = found(FRAME, [(0, 0, 100, 100, 0.9, "person"), (50, 0, 150, 100, 0.8, "person")])
    first, second = crops_of(people)

    def masked(crop: WorkflowImage, box: tuple[int, int, int, int], confidence: float,
               pixels: tuple[slice, slice]) -> sv.Detections:
        detections = found(crop, [(*box, confidence, "dog")])
        mask = np.zeros((1, crop.height, crop.width), bool)
        mask[(0, *pixels)] = True
        detections.mask = mask
        return detections

    # in the frame: the first mask covers x 60..79, the second x 70..89 (they share x 70..79), both rows 10..19
    children = [masked(first, (60, 10, 80, 20), 0.9, (slice(10, 20), slice(60, 80))),
                masked(second, (20, 10, 40, 20), 0.7, (slice(10, 20), slice(20, 40)))]
    detections = rolled(people, children, confidence_strategy="mean")["rolled_up_detections"]
    assert rows_of(detections) == [([60, 10, 90, 20], 0.8, "dog")]
    assert detections.mask is not None and detections.mask.shape == (1, 300, 400)
    assert int(detections.mask.sum()) == 300 and detections.mask[0, 10:20, 60:90].all()

    # boxes that overlap, masks that do not (an L and a dot in its corner): two dogs
    apart = [masked(first, (60, 10, 80, 30), 0.9, (slice(10, 12), slice(60, 80))),
             masked(second, (25, 25, 30, 30), 0.7, (slice(25, 30), slice(25, 30)))]
    assert len(rolled(people, apart)["rolled_up_detections"]) == 2

    with pytest.raises(ValueError, match="some crops' detections carry masks and others do not"):
        rolled(people, [children[0], found(second, [(0, 0, 10, 10, 0.5, "dog")])])


def test_keypoint_detections_merge_by_keypoint_distance_not_by_box_overlap() -> None:
    people = found(FRAME, [(0, 0, 200, 200, 0.9, "person"), (100, 0, 300, 200, 0.8, "person")])
    first, second = crops_of(people)

    def pose(crop: WorkflowImage, box: tuple[int, int, int, int], confidence: float,
             points: list[list[float]]) -> sv.Detections:
        detections = found(crop, [(*box, confidence, "person")])
        detections.data[values.PREDICTION_TYPE] = np.array(["keypoint-detection"], dtype=object)
        xy = np.empty(1, dtype=object)
        xy[0] = np.array(points, dtype=np.float64)
        detections.data["keypoints_xy"] = xy
        return detections

    # the same pose in both crops (frame keypoints (150, 50), (160, 90) and (154, 52), (164, 92): 4.5 px apart)
    children = [pose(first, (140, 40, 170, 100), 0.9, [[150, 50], [160, 90]]),
                pose(second, (44, 42, 74, 102), 0.6, [[54, 52], [64, 92]])]
    detections = rolled(people, children, confidence_strategy="min")["rolled_up_detections"]
    assert rows_of(detections) == [([142, 41, 172, 101], 0.6, "person")]  # the mean box
    np.testing.assert_allclose(detections.data["keypoints_xy"][0], [[152, 51], [162, 91]])

    far = rolled(people, children, keypoint_merge_threshold=4.0)["rolled_up_detections"]
    assert len(far) == 2  # the boxes overlap, the keypoints are 4.5 px apart
    np.testing.assert_allclose(far.data["keypoints_xy"][1], [[154, 52], [164, 92]])


def test_what_fails_the_step() -> None:
    people = found(FRAME, [(20, 30, 120, 230, 0.9, "person"), (200, 50, 300, 250, 0.8, "person")])
    block = rollup().block
    with pytest.raises(ValueError, match="child_detections has 1 items for 2 parent detections"):
        block.run(parent_detection=people, child_detections=[None])
    with pytest.raises(ValueError, match="child_detections must be a list of detections"):
        block.run(parent_detection=people, child_detections=["a", "b"])
    with pytest.raises(ValueError, match="confidence_strategy must be one of max, mean, min, got 'median'"):
        block.run(parent_detection=people, child_detections=[None, None], confidence_strategy="median")
    with pytest.raises(ValueError, match="overlap_threshold must be a number between 0 and 1, got 2"):
        block.run(parent_detection=people, child_detections=[None, None], overlap_threshold=2)
