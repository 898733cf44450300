"""detections_difference@v1 (before / after: removed, persisted, new) and overlap_analysis@v1 (pairs whose
intersection covers enough of the reference box), built by the compiler and run on real detections."""

from typing import Any

import numpy as np
import pytest

from services.worker.workflows.blocks.transforms.difference import greedy_pairs, spatial_costs
from tests.worker.workflows.transformations_support import Step, as_frame, detector, found, step_of

FRAME = as_frame(np.zeros((200, 300, 3), np.uint8))
BEFORE = found(FRAME, [(10, 10, 50, 50, 0.9, "person"), (100, 10, 140, 50, 0.8, "car"), (200, 100, 240, 140, 0.7,
                                                                                          "dog")])
AFTER = found(FRAME, [(12, 12, 52, 52, 0.9, "person"), (100, 10, 140, 50, 0.6, "dog"), (250, 150, 290, 190, 0.5,
                                                                                        "car")])


def difference(**fields: Any) -> Step:
    step = {"type": "DetectionsDifference", "name": "diff", "reference_predictions": "$steps.before.predictions",
            "candidate_predictions": "$steps.after.predictions", **fields}
    return step_of(step, detector("before"), detector("after"))


def names(detections: Any) -> list[str]:
    return [str(name) for name in detections.data["class_name"]]


def test_removed_persisted_and_new_with_the_manifest_defaults() -> None:
    step = difference()
    assert step.step.params == {"reference_predictions": "$steps.before.predictions",
                                "candidate_predictions": "$steps.after.predictions", "spatial_weight": 0.4,
                                "class_mismatch_penalty": 0.15, "reject_cost": 0.75, "class_strict": False,
                                "min_removed_to_verify": 1}
    result = step.run(reference_predictions=BEFORE, candidate_predictions=AFTER)

    # the person moved 2 px: matched; the car became a dog in place (cost 0.4 * 0 + 0.15): matched; the dog and the
    # new car are apart (0.4 * (1 + 0.56) + 0.15 > 0.75): removed and new
    assert names(result["persisted_detections"]) == ["person", "dog"]
    assert names(result["removed_detections"]) == ["dog"] and names(result["new_detections"]) == ["car"]
    assert (result["removed_count"], result["new_count"], result["verified"]) == (1, 1, True)


def test_class_strict_never_matches_other_classes() -> None:
    result = difference(class_strict=True).run(reference_predictions=BEFORE, candidate_predictions=AFTER)
    # the car and the dog each match their own class across the frame: 0.4 * (1 + 0.78) and 0.4 * (1 + 0.70)
    assert names(result["persisted_detections"]) == ["person", "dog", "car"] and result["removed_count"] == 0
    near = difference(class_strict=True, reject_cost=0.5).run(reference_predictions=BEFORE, candidate_predictions=AFTER)
    assert names(near["persisted_detections"]) == ["person"]
    assert names(near["removed_detections"]) == ["car", "dog"] and names(near["new_detections"]) == ["dog", "car"]


def test_verified_needs_a_reference_and_enough_removals() -> None:
    empty = BEFORE[np.array([], dtype=int)]
    step = difference(min_removed_to_verify=2)
    assert step.run(reference_predictions=BEFORE, candidate_predictions=AFTER)["verified"] is False
    nothing_before = step.run(reference_predictions=empty, candidate_predictions=AFTER)
    assert (nothing_before["verified"], nothing_before["new_count"], len(nothing_before["removed_detections"])) == (
        False, 3, 0)
    all_gone = step.run(reference_predictions=BEFORE, candidate_predictions=empty)
    assert (all_gone["removed_count"], all_gone["verified"]) == (3, True)


def test_overlap_beats_any_distance_and_pairs_are_taken_cheapest_first() -> None:
    boxes = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], dtype=np.float64)
    costs = spatial_costs(boxes, np.array([[5, 0, 15, 10], [10, 0, 20, 10]], dtype=np.float64))
    assert costs[0, 0] == pytest.approx(1 - 50 / 150)  # overlapping: 1 - IoU
    assert costs[0, 1] == pytest.approx(1 + 10 / np.hypot(20, 10))  # touching only: 1 + centre distance / diagonal
    assert costs[1].min() > 1
    assert greedy_pairs(np.array([[0.2, 0.1], [0.1, 0.5]]), 0.75) == [(0, 1), (1, 0)]
    assert greedy_pairs(np.array([[0.2, 0.9], [0.8, np.inf]]), 0.75) == [(0, 0)]


def overlap(**fields: Any) -> Step:
    return step_of({"type": "OverlapAnalysis", "name": "overlap", "reference_predictions": "$steps.people.predictions",
                    "candidate_predictions": "$steps.things.predictions", **fields}, detector("people"),
                   detector("things"))


def test_overlap_records_pairs_covering_min_overlap_of_the_reference() -> None:
    people = found(FRAME, [(0, 0, 100, 100, 0.9, "person"), (200, 0, 220, 20, 0.8, "person")])
    things = found(FRAME, [(50, 50, 150, 150, 0.6, "car"), (90, 0, 100, 10, 0.5, "dog"), (100, 0, 120, 20, 0.4, "dog")])
    step = overlap()
    assert step.step.type == "roboflow_core/overlap_analysis@v1" and step.step.params["min_overlap"] == 0.1

    records = step.run(reference_predictions=people, candidate_predictions=things)["overlaps"]

    # person 1 x car: 50 x 50 of 100 x 100; person 1 x the small dog: 1 %, under 10 %; the second dog only touches
    assert records == [{"reference_class": "person", "reference_confidence": pytest.approx(0.9),
                        "candidate_class": "car", "candidate_confidence": pytest.approx(0.6), "overlap_ratio": 0.25,
                        "reference_detection_id": str(people.data["detection_id"][0]),
                        "candidate_detection_id": str(things.data["detection_id"][0])}]
    assert len(step.run(reference_predictions=people, candidate_predictions=things, min_overlap=0.0)["overlaps"]) == 2
    reverse = step.run(reference_predictions=things, candidate_predictions=people)["overlaps"]
    assert [(r["reference_class"], r["overlap_ratio"]) for r in reverse] == [("car", 0.25), ("dog", 1.0)]


def test_overlap_of_nothing_is_no_record_and_masks_are_refused() -> None:
    people = found(FRAME, [(0, 0, 100, 100, 0.9, "person")])
    step = overlap()
    assert step.run(reference_predictions=people, candidate_predictions=people[np.array([], dtype=int)]) == {
        "overlaps": []}
    masked = found(FRAME, [(0, 0, 10, 10, 0.9, "person")])
    masked.mask = np.ones((1, 200, 300), dtype=bool)
    with pytest.raises(ValueError, match="candidate_predictions: detections with masks are not supported"):
        step.run(reference_predictions=people, candidate_predictions=masked)
