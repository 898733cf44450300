"""Detections consensus against hand-computed cases (boxes on a black 768x576 frame)."""

from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows import values
from tests.worker.workflows.transformations_support import Step, as_frame, detector, found, step_of

FRAME = as_frame(np.zeros((576, 768, 3), dtype=np.uint8))
A = (0, 0, 100, 100)
A_SHIFTED = (10, 10, 110, 110)  # IoU with A: 8100 / 11900 = 0.68
FAR = (400, 400, 450, 450)


def consensus(sources: int = 2, **fields: Any) -> Step:
    names = [f"model_{i}" for i in range(sources)]
    step = {"type": "roboflow_core/detections_consensus@v1", "name": "consensus",
            "predictions_batches": [f"$steps.{name}.predictions" for name in names], **fields}
    return step_of(step, *(detector(name) for name in names))


def vote(*rows: tuple[Any, ...]) -> sv.Detections:
    return found(FRAME, [(*box, confidence, name) for box, confidence, name in rows])


def run(step: Step, *sources: sv.Detections) -> dict[str, Any]:
    return step.run(predictions_batches=list(sources))


def test_two_models_agree() -> None:
    result = run(consensus(required_votes=2), vote((A, 0.9, "person")), vote((A_SHIFTED, 0.7, "person")))
    merged = result["predictions"]
    assert len(merged) == 1
    assert np.allclose(merged.xyxy, [[5, 5, 105, 105]]) and np.allclose(merged.confidence, [0.8])
    assert merged.data[values.CLASS_NAME].tolist() == ["person"] and merged.class_id.tolist() == [0]
    assert merged.data[values.PARENT_ID].tolist() == [FRAME.parent_id]
    assert result["object_present"] is True
    assert result["presence_confidence"] == pytest.approx({"person": 0.8})


def test_two_models_disagree() -> None:
    sources = (vote((A, 0.9, "person")), vote((FAR, 0.7, "person")))
    both = run(consensus(required_votes=2), *sources)
    assert len(both["predictions"]) == 0 and both["object_present"] is False and both["presence_confidence"] == {}
    alone = run(consensus(required_votes=1), *sources)
    assert np.allclose(alone["predictions"].xyxy, [A, FAR]) and np.allclose(alone["predictions"].confidence, [0.9, 0.7])
    assert alone["presence_confidence"] == pytest.approx({"person": 0.9})  # "max" by default


def test_iou_must_exceed_the_threshold() -> None:
    sources = (vote((A, 0.9, "person")), vote((A_SHIFTED, 0.7, "person")))
    assert len(run(consensus(required_votes=2, iou_threshold=0.69), *sources)["predictions"]) == 0
    assert len(run(consensus(required_votes=2, iou_threshold=0.68), *sources)["predictions"]) == 1


def test_class_aware_votes_need_the_same_class() -> None:
    sources = (vote((A, 0.9, "person")), vote((A_SHIFTED, 0.7, "car")))
    assert len(run(consensus(required_votes=2), *sources)["predictions"]) == 0
    agnostic = run(consensus(required_votes=2, class_aware=False), *sources)
    assert agnostic["predictions"].data[values.CLASS_NAME].tolist() == ["person"]  # majority tie: first seen
    assert agnostic["presence_confidence"] == pytest.approx({"any_object": 0.8})
    least = run(consensus(required_votes=2, class_aware=False, detections_merge_confidence_aggregation="min"), *sources)
    assert least["predictions"].data[values.CLASS_NAME].tolist() == ["car"]
    assert np.allclose(least["predictions"].confidence, [0.7])


def test_majority_class_of_three() -> None:
    sources = (vote((A, 0.9, "car")), vote((A_SHIFTED, 0.6, "person")), vote((A, 0.5, "person")))
    result = run(consensus(3, required_votes=3, class_aware=False), *sources)
    assert result["predictions"].data[values.CLASS_NAME].tolist() == ["person"]
    assert np.allclose(result["predictions"].confidence, [2.0 / 3.0])
    highest = run(consensus(3, required_votes=3, class_aware=False, detections_merge_confidence_aggregation="max"),
                  *sources)
    assert highest["predictions"].data[values.CLASS_NAME].tolist() == ["car"]


def test_required_votes_of_three_sources() -> None:
    sources = (vote((A, 0.9, "person")), vote((FAR, 0.8, "person")), vote((A_SHIFTED, 0.5, "person")))
    two = run(consensus(3, required_votes=2), *sources)["predictions"]
    assert np.allclose(two.xyxy, [[5, 5, 105, 105]]) and np.allclose(two.confidence, [0.7])
    assert len(run(consensus(3, required_votes=3), *sources)["predictions"]) == 0


def test_box_aggregation_modes() -> None:
    sources = (vote(((0, 0, 100, 100), 0.9, "person")), vote(((0, 0, 90, 80), 0.6, "person")))
    largest = run(consensus(required_votes=2, detections_merge_coordinates_aggregation="max"), *sources)
    smallest = run(consensus(required_votes=2, detections_merge_coordinates_aggregation="min"), *sources)
    assert np.allclose(largest["predictions"].xyxy, [[0, 0, 100, 100]])
    assert np.allclose(smallest["predictions"].xyxy, [[0, 0, 90, 80]])


def test_merged_confidence_threshold() -> None:
    sources = (vote((A, 0.9, "person")), vote((A_SHIFTED, 0.7, "person")))
    assert len(run(consensus(required_votes=2, confidence=0.85), *sources)["predictions"]) == 0
    assert len(run(consensus(required_votes=2, confidence=0.79), *sources)["predictions"]) == 1  # 0.8 in float32


def test_each_detection_votes_once() -> None:
    # Both of model 0's boxes overlap model 1's single box: only the first pairs with it.
    sources = (vote((A, 0.9, "person"), (A_SHIFTED, 0.8, "person")), vote(((5, 5, 105, 105), 0.7, "person")))
    merged = run(consensus(required_votes=2), *sources)["predictions"]
    assert len(merged) == 1 and np.allclose(merged.xyxy, [[2.5, 2.5, 102.5, 102.5]])


def test_classes_to_consider() -> None:
    sources = (vote((A, 0.9, "person"), (FAR, 0.9, "dog")), vote((A_SHIFTED, 0.7, "person"), (FAR, 0.8, "dog")))
    result = run(consensus(required_votes=2, classes_to_consider=["dog"]), *sources)
    assert result["predictions"].data[values.CLASS_NAME].tolist() == ["dog"]
    assert result["presence_confidence"] == pytest.approx({"dog": 0.85})


@pytest.mark.parametrize(("required", "class_aware", "present"), [
    (None, True, True), (2, True, True), (3, True, False), ({"person": 1, "dog": 1}, True, True),
    ({"person": 2}, True, False), ({"cat": 1}, True, False), ({"person": 1, "dog": 1}, False, True),
    ({"person": 2, "dog": 1}, False, False),
])
def test_required_objects(required: Any, class_aware: bool, present: bool) -> None:
    sources = (vote((A, 0.9, "person"), (FAR, 0.6, "dog")), vote((A_SHIFTED, 0.7, "person"), (FAR, 0.4, "dog")))
    result = run(consensus(required_votes=2, required_objects=required, class_aware=class_aware,
                           presence_confidence_aggregation="average"), *sources)
    assert result["object_present"] is present
    if not present:
        assert result["presence_confidence"] == {}
    elif class_aware:
        assert result["presence_confidence"] == pytest.approx({"person": 0.8, "dog": 0.5})
    else:
        assert result["presence_confidence"] == pytest.approx({"any_object": 0.65})


def test_masks_merge_by_union() -> None:
    first, second = vote((A, 0.9, "person")), vote((A_SHIFTED, 0.7, "person"))
    first.mask = np.zeros((1, 576, 768), dtype=bool)
    first.mask[0, 10:50, 10:50] = True
    second.mask = np.zeros((1, 576, 768), dtype=bool)
    second.mask[0, 40:90, 30:60] = True
    union = run(consensus(required_votes=2), first, second)["predictions"]
    assert union.mask is not None and union.mask.sum() == 40 * 40 + 50 * 30 - 10 * 20
    assert np.allclose(union.xyxy, [[10, 10, 59, 89]])  # the mask's extent (supervision's inclusive corners)
    both = run(consensus(required_votes=2, detections_merge_mask_aggregation="intersection"), first, second)
    assert both["predictions"].mask.sum() == 10 * 20


def test_nothing_detected_and_mixed_images() -> None:
    empty = run(consensus(required_votes=1), vote(), vote())
    assert len(empty["predictions"]) == 0 and empty["object_present"] is False and empty["presence_confidence"] == {}
    crop = FRAME.crop(0, 0, 200, 200, crop_id="crop")
    with pytest.raises(ValueError, match="different images"):
        run(consensus(required_votes=1), vote((A, 0.9, "person")), found(crop, [(*A, 0.9, "person")]))
