"""track_class_lock@v1 on synthetic tracks: votes, lock, challenges, re-attachment, forgetting."""

from collections.abc import Sequence
from typing import Any

import pytest
import supervision as sv

from services.worker.workflows.blocks.video.class_lock import CLASS_LOCKED
from tests.worker.workflows.video_steps import StepRunner, box_at, boxes, image


def lock_step(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/track_class_lock@v1", "name": "lock", "image": "$inputs.image",
            "detections": "$steps.track.tracked_detections", **fields}


Seen = tuple[int, str, float] | tuple[int, str, float, tuple[float, float]]


def tracked(objects: Sequence[Seen], frame: int = 0) -> sv.Detections:
    """Tracked detections of (tracker id, class, confidence[, centre]); an id's default centre is its own."""
    centres = [obj[3] if len(obj) == 4 else (100 + 200 * obj[0], 300) for obj in objects]
    return boxes([box_at(x, y) for x, y in centres], [obj[2] for obj in objects],
                 tracker_id=[obj[0] for obj in objects], class_names=[obj[1] for obj in objects], on=image(frame))


class Lock:
    def __init__(self, **fields: Any) -> None:
        self.runner = StepRunner(lock_step(**fields))
        self.frame = 0

    def __call__(self, *objects: Seen) -> sv.Detections:
        out: sv.Detections = self.runner(image=image(self.frame),
                                         detections=tracked(objects, self.frame))["tracked_detections"]
        self.frame += 1
        return out


def classes(detections: sv.Detections) -> list[str]:
    return [str(name) for name in detections.data["class_name"]]


def test_a_flickering_track_locks_to_its_majority_class_with_the_votes_mean_confidence() -> None:
    lock = Lock(min_votes=4, lead_margin=2)
    frames = [("car", 0.9), ("truck", 0.85), ("car", 0.95), ("car", 0.9), ("truck", 0.9)]
    seen = [lock((1, name, confidence)) for name, confidence in frames]
    assert [classes(out) for out in seen] == [[name] for name, _ in frames]  # car 3, truck 2: not locked yet
    assert not any(out.data[CLASS_LOCKED][0] for out in seen)
    assert classes(lock((1, "car", 0.9))) == ["car"]  # car 4, truck 2: locked
    out = lock((1, "truck", 0.99))
    assert classes(out) == ["car"] and out.data[CLASS_LOCKED].tolist() == [True]
    assert out.confidence[0] == pytest.approx((0.9 + 0.95 + 0.9 + 0.9) / 4)


def test_the_locked_class_brings_its_class_id() -> None:
    lock = Lock(min_votes=2, lead_margin=0)
    lock((1, "car", 0.9))  # class id 0 in these frames' vocabulary
    lock((1, "car", 0.9))
    out = lock((1, "truck", 0.9), (2, "bus", 0.9))  # vocabulary bus 0, truck 1
    assert classes(out) == ["car", "bus"] and out.class_id.tolist() == [0, 0]
    assert tracked([(1, "truck", 0.9), (2, "bus", 0.9)]).class_id.tolist() == [1, 0]


def test_low_confidence_frames_do_not_vote() -> None:
    lock = Lock(min_votes=3, lead_margin=0, vote_confidence=0.8)
    for _ in range(5):
        lock((1, "dog", 0.5))
    lock((1, "cat", 0.9))
    lock((1, "cat", 0.9))
    assert classes(lock((1, "dog", 0.5))) == ["dog"]  # cat has 2 votes, dog none
    assert classes(lock((1, "cat", 0.9))) == ["cat"]
    assert classes(lock((1, "dog", 0.5))) == ["cat"]


def test_a_class_never_leading_by_the_margin_does_not_lock() -> None:
    lock = Lock(min_votes=2, lead_margin=2)  # alternating: car leads by at most 1
    for _ in range(4):
        lock((1, "car", 0.9))
        out = lock((1, "truck", 0.9))
    assert classes(out) == ["truck"] and not out.data[CLASS_LOCKED][0]


def test_only_an_unbroken_streak_of_another_class_switches_the_lock() -> None:
    lock = Lock(min_votes=1, lead_margin=0, switch_after=3)
    lock((1, "car", 0.9))
    assert classes(lock((1, "truck", 0.9))) == ["car"]
    assert classes(lock((1, "truck", 0.9))) == ["car"]
    assert classes(lock((1, "car", 0.9))) == ["car"]  # interrupted: the streak starts over
    assert classes(lock((1, "truck", 0.9))) == ["car"]
    assert classes(lock((1, "truck", 0.4))) == ["car"]  # a frame below vote_confidence interrupts too
    for _ in range(2):
        assert classes(lock((1, "truck", 0.9))) == ["car"]
    out = lock((1, "truck", 0.7 + 0.2))  # third in a row: switched, confidence the streak's mean
    assert classes(out) == ["truck"] and out.confidence[0] == pytest.approx(0.9)
    assert classes(lock((1, "car", 0.9))) == ["truck"]


def test_a_new_id_where_a_locked_track_was_just_lost_inherits_its_lock() -> None:
    lock = Lock(min_votes=2, lead_margin=0, reattach_window=3, reattach_iou=0.3)
    lock((1, "car", 0.9, (300, 300)))
    lock((1, "car", 0.9, (300, 300)))
    lock()  # the tracker lost it for a frame, then gave it a new id
    out = lock((2, "truck", 0.9, (305, 300)))
    assert classes(out) == ["car"] and out.data[CLASS_LOCKED].tolist() == [True]


@pytest.mark.parametrize(("gap", "centre", "why"), [
    (4, (305, 300), "lost longer than reattach_window"),
    (1, (330, 300), "too little overlap (IoU 0.14 < 0.3)"),
])
def test_no_inheritance_without_overlap_or_after_the_window(gap: int, centre: tuple[float, float], why: str) -> None:
    lock = Lock(min_votes=2, lead_margin=0, reattach_window=3, reattach_iou=0.3)
    lock((1, "car", 0.9, (300, 300)))
    lock((1, "car", 0.9, (300, 300)))
    for _ in range(gap):
        lock()
    assert classes(lock((2, "truck", 0.9, centre))) == ["truck"], why


def test_a_track_still_in_view_is_not_inherited() -> None:
    lock = Lock(min_votes=2, lead_margin=0, reattach_window=3, reattach_iou=0.1)
    lock((1, "car", 0.9, (300, 300)))
    lock((1, "car", 0.9, (300, 300)))
    out = lock((1, "car", 0.9, (300, 300)), (2, "truck", 0.9, (310, 300)))
    assert classes(out) == ["car", "truck"]


def test_forgotten_after_state_ttl_frames() -> None:
    lock = Lock(min_votes=2, lead_margin=0, state_ttl=3, reattach_window=0)
    lock((1, "car", 0.9))
    lock((1, "car", 0.9))
    for _ in range(3):
        lock()
    assert classes(lock((1, "truck", 0.9))) == ["car"]  # unseen 3 frames: still remembered
    for _ in range(4):
        lock()
    assert classes(lock((1, "truck", 0.9))) == ["truck"]  # unseen 4 > 3 frames: a new track


def test_the_input_is_left_alone_and_each_source_votes_alone() -> None:
    lock = Lock(min_votes=1, lead_margin=0)
    lock((1, "car", 0.9))
    given = tracked([(1, "bus", 0.9)], 1)
    out = lock.runner(image=image(1), detections=given)["tracked_detections"]
    assert classes(out) == ["car"] and classes(given) == ["bus"] and given.confidence[0] == pytest.approx(0.9)
    other_source = Lock(min_votes=1, lead_margin=0)
    assert classes(other_source((1, "bus", 0.9))) == ["bus"]


def test_untracked_detections_and_bad_rules_fail_with_the_reason() -> None:
    lock = Lock()
    with pytest.raises(ValueError, match="needs tracked detections"):
        lock.runner(image=image(0), detections=boxes([box_at(100, 100)], [0.9]))
    with pytest.raises(ValueError, match=r"reattach_window must be between 0 and state_ttl \(5\), got 9"):
        lock.runner.block.run(image=image(0), detections=tracked([(1, "car", 0.9)]), min_votes=1,
                              vote_confidence=0.5, lead_margin=0, switch_after=1, state_ttl=5, reattach_window=9,
                              reattach_iou=0.3)
    assert len(lock.runner(image=image(0), detections=boxes([], []))["tracked_detections"]) == 0
