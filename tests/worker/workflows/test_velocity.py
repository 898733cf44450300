"""velocity v1: per-track velocity, speed and their exponential moving averages, in video time."""

from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows.values import SMOOTHED_SPEED, SMOOTHED_VELOCITY, SPEED, VELOCITY
from tests.worker.workflows.video_steps import StepRunner, box_at, boxes, image


def velocity_step(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/velocity@v1", "name": "velocity", "image": "$inputs.image",
            "detections": "$steps.track.tracked_detections", **fields}


def run(runner: StepRunner, frame: int, detections: sv.Detections, fps: float | None = 10.0,
        **video_kwargs: Any) -> sv.Detections:
    result: sv.Detections = runner(image=image(frame, fps, **video_kwargs), detections=detections)[
        "velocity_detections"]
    return result


def test_velocity_speed_and_smoothing() -> None:
    runner = StepRunner(velocity_step(smoothing_alpha=0.5, pixels_per_meter=10.0))
    rows = []
    for frame in range(4):  # 10 px right and 5 px down per frame at 10 fps = (100, 50) px/s
        result = run(runner, frame, boxes([box_at(100 + 10 * frame, 100 + 5 * frame)], tracker_id=[1]))
        rows.append((result.data[VELOCITY][0].tolist(), result.data[SMOOTHED_VELOCITY][0].tolist()))
    np.testing.assert_allclose(rows, [([0.0, 0.0], [0.0, 0.0]), ([10.0, 5.0], [5.0, 2.5]),
                                      ([10.0, 5.0], [7.5, 3.75]), ([10.0, 5.0], [8.75, 4.375])])
    assert result.data[SPEED].tolist() == [pytest.approx(np.hypot(10, 5))]
    assert result.data[SMOOTHED_SPEED].tolist() == [pytest.approx(np.hypot(8.75, 4.375))]


def test_tracks_are_independent_and_gaps_use_the_elapsed_time() -> None:
    runner = StepRunner(velocity_step())
    run(runner, 0, boxes([box_at(100, 100), box_at(300, 300)], tracker_id=[1, 2]))
    run(runner, 1, boxes([box_at(110, 100)], tracker_id=[1]))
    result = run(runner, 3, boxes([box_at(130, 100), box_at(300, 330)], tracker_id=[1, 2]))
    assert result.tracker_id.tolist() == [1, 2]
    np.testing.assert_allclose(result.data[VELOCITY], [[100.0, 0.0], [0.0, 100.0]])  # track 2: 30 px in 0.3 s


def test_a_live_stream_uses_timestamps() -> None:
    runner = StepRunner(velocity_step())
    run(runner, 0, boxes([box_at(100, 100)], tracker_id=[1]), fps=None, file=False, seconds=5.0)
    result = run(runner, 1, boxes([box_at(150, 100)], tracker_id=[1]), fps=None, file=False, seconds=5.5)
    np.testing.assert_allclose(result.data[VELOCITY], [[100.0, 0.0]])


def test_input_is_left_alone_and_untracked_is_an_error() -> None:
    runner = StepRunner(velocity_step())
    detections = boxes([box_at(100, 100)], tracker_id=[1])
    result = run(runner, 0, detections)
    assert VELOCITY not in detections.data  # the reference writes into its input
    assert result.data["detection_id"].tolist() == detections.data["detection_id"].tolist()
    with pytest.raises(ValueError, match="tracker_id"):
        run(runner, 1, boxes([box_at(100, 100)]))
    empty = run(runner, 2, boxes([], []))
    assert len(empty) == 0 and empty.data[VELOCITY].shape == (0, 2)


def test_two_instances_keep_separate_positions() -> None:
    one, two = StepRunner(velocity_step(), 0), StepRunner(velocity_step(), 1)
    run(one, 0, boxes([box_at(100, 100)], tracker_id=[1]))
    run(two, 0, boxes([box_at(500, 100)], tracker_id=[1]))
    np.testing.assert_allclose(run(one, 1, boxes([box_at(110, 100)], tracker_id=[1])).data[VELOCITY], [[100, 0]])
    np.testing.assert_allclose(run(two, 1, boxes([box_at(490, 100)], tracker_id=[1])).data[VELOCITY], [[-100, 0]])
