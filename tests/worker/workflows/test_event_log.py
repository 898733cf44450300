"""detection_event_log v1: pending then logged objects, stale flushes, complete events, relative times."""

from typing import Any

import pytest

from tests.worker.workflows.video_steps import START, StepRunner, box_at, boxes, image

EVENT_FIELDS = ["tracker_id", "class_name", "first_seen_frame", "first_seen_timestamp", "last_seen_frame",
                "last_seen_timestamp", "first_seen_relative", "last_seen_relative", "frame_count"]


def log_step(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/detection_event_log@v1", "name": "log", "image": "$inputs.image",
            "detections": "$steps.track.tracked_detections", **fields}


def run(runner: StepRunner, frame: int, tracker_ids: list[int], names: list[str] | None = None) -> dict[str, Any]:
    """Frame ``frame`` of a 10 fps file whose first frame is frame 100 (timestamps START + frame / 10)."""
    frame_image = image(frame, 10.0)
    detections = boxes([box_at(100 + 50 * i, 100) for i in range(len(tracker_ids))], tracker_id=tracker_ids,
                       class_names=names, on=frame_image)
    return runner(image=frame_image, detections=detections)


def test_objects_are_pending_until_seen_on_frame_threshold_frames() -> None:
    runner = StepRunner(log_step(frame_threshold=3))
    for frame in range(100, 102):
        outputs = run(runner, frame, [1])
    assert (outputs["total_logged"], outputs["total_pending"]) == (0, 1)
    outputs = run(runner, 102, [1, 2], ["person", "car"])
    assert (outputs["total_logged"], outputs["total_pending"]) == (1, 1)
    logged = outputs["event_log"]["logged"]["1"]
    assert list(logged) == EVENT_FIELDS
    assert logged == {
        "tracker_id": 1, "class_name": "person", "first_seen_frame": 1,
        "first_seen_timestamp": pytest.approx(START.timestamp() + 10.0), "last_seen_frame": 3,
        "last_seen_timestamp": pytest.approx(START.timestamp() + 10.2), "first_seen_relative": 0.0,
        "last_seen_relative": pytest.approx(0.2), "frame_count": 3}
    pending = outputs["event_log"]["pending"]["2"]
    assert (pending["class_name"], pending["first_seen_frame"], pending["first_seen_relative"]) == (
        "car", 3, pytest.approx(0.2))
    assert outputs["detections"].tracker_id.tolist() == [1, 2]
    assert outputs["complete_events"] == {}


def test_stale_objects_are_flushed_and_logged_ones_complete_once() -> None:
    runner = StepRunner(log_step(frame_threshold=2, flush_interval=2, stale_frames=2))
    run(runner, 0, [1, 2])  # block frame 1
    run(runner, 1, [1])  # frame 2: 1 logged, 2 pending
    completes = {}
    for frame in range(2, 9):  # frames 3..9 with nothing in view
        outputs = run(runner, frame, [])
        completes[frame + 1] = sorted(outputs["complete_events"])
    # Flushes on frames 3, 5, 7, 9; "not seen for more than 2 frames" from frame 5 (1 last seen on 2).
    assert completes == {3: [], 4: [], 5: ["1"], 6: [], 7: [], 8: [], 9: []}
    assert outputs["event_log"] == {"logged": {}, "pending": {}}


def test_untracked_detections_pass_through_and_log_nothing() -> None:
    """As the reference (its tests ask for it): no error, the log as it was."""
    runner = StepRunner(log_step())
    run(runner, 0, [4])
    untracked = boxes([box_at(100, 100)])
    outputs = runner(image=image(1), detections=untracked)
    assert outputs["detections"] is untracked
    assert (outputs["total_pending"], outputs["event_log"]["pending"]["4"]["frame_count"]) == (1, 1)
    assert runner(image=image(2), detections=boxes([], []))["total_pending"] == 1


def test_two_instances_keep_separate_logs() -> None:
    one, two = StepRunner(log_step(frame_threshold=1), 0), StepRunner(log_step(frame_threshold=1), 1)
    run(one, 0, [1, 2])
    assert sorted(run(two, 0, [3])["event_log"]["logged"]) == ["3"]
    assert sorted(run(one, 1, [])["event_log"]["logged"]) == ["1", "2"]
