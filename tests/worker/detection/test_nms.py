"""NMS on small hand-made boxes."""

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.worker.detection.nms import suppress

# Two heavily overlapping boxes (IoU 0.81) and one far away.
BOXES = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
SCORES = np.array([0.9, 0.8, 0.7], np.float32)


def _keep(class_ids: list[int], **overrides: Any) -> list[int]:
    params: dict[str, Any] = {
        "confidence": 0.5,
        "iou_threshold": 0.5,
        "class_agnostic": False,
        "max_candidates": 3000,
        "max_detections": 300,
    }
    params.update(overrides)
    kept: list[int] = suppress(BOXES, SCORES, np.array(class_ids), **params).tolist()
    return kept


def test_same_class_overlap_suppressed() -> None:
    assert _keep([0, 0, 0]) == [0, 2]


def test_class_aware_keeps_overlapping_boxes_of_other_classes() -> None:
    assert _keep([0, 1, 0]) == [0, 1, 2]


def test_class_agnostic_suppresses_across_classes() -> None:
    assert _keep([0, 1, 0], class_agnostic=True) == [0, 2]


def test_iou_threshold_above_overlap_keeps_both() -> None:
    assert _keep([0, 0, 0], iou_threshold=0.9) == [0, 1, 2]


def test_confidence_filters_before_nms() -> None:
    assert _keep([0, 0, 0], confidence=0.75) == [0]
    assert _keep([0, 0, 0], confidence=0.95) == []


def test_max_detections_caps_after_nms() -> None:
    assert _keep([0, 1, 2], max_detections=2) == [0, 1]


def test_max_candidates_keeps_top_scores_before_nms() -> None:
    assert _keep([0, 1, 2], max_candidates=1) == [0]


def test_results_sorted_by_score() -> None:
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    keep = suppress(
        BOXES,
        scores,
        np.array([0, 1, 2]),
        confidence=0.5,
        iou_threshold=0.5,
        class_agnostic=False,
        max_candidates=10,
        max_detections=10,
    )
    assert keep.tolist() == [1, 2, 0]


def test_empty_input() -> None:
    keep = suppress(
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.float32),
        np.zeros(0, np.int64),
        confidence=0.1,
        iou_threshold=0.5,
        class_agnostic=False,
        max_candidates=10,
        max_detections=10,
    )
    assert keep.shape == (0,)


def _pairwise_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(0, 40),
    agnostic=st.booleans(),
    iou_threshold=st.floats(0.1, 0.9),
)
def test_nms_invariants(seed: int, count: int, agnostic: bool, iou_threshold: float) -> None:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(-20, 100, (count, 2)).astype(np.float32)
    boxes = np.concatenate([corner, corner + rng.uniform(1, 40, (count, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, count).astype(np.float32)
    classes = rng.integers(0, 3, count)
    keep = suppress(
        boxes,
        scores,
        classes,
        confidence=0.3,
        iou_threshold=iou_threshold,
        class_agnostic=agnostic,
        max_candidates=1000,
        max_detections=1000,
    ).tolist()

    def rivals(i: int, j: int) -> bool:
        return agnostic or classes[i] == classes[j]

    assert all(scores[i] >= 0.3 for i in keep)
    for n, i in enumerate(keep):  # no two kept rivals overlap too much
        later = [j for j in keep[n + 1 :] if rivals(i, j)]
        assert all(_pairwise_iou(boxes[i], boxes[j]) <= iou_threshold + 1e-5 for j in later)
    for i in set(np.flatnonzero(scores >= 0.3).tolist()) - set(keep):  # every drop has a better rival
        assert any(
            _pairwise_iou(boxes[i], boxes[j]) > iou_threshold - 1e-5
            for j in keep
            if rivals(i, j) and scores[j] >= scores[i]
        )
