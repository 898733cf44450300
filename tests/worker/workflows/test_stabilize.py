"""stabilize_detections@v1 on synthetic tracks: averaged boxes, gaps filled from the velocity filter, dropping."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows import values
from tests.worker.workflows.video_steps import StepRunner, box_at, boxes, image

Box = Sequence[float]
# The velocity filter's gain on a track's second displacement: its error variance (1, plus the process noise
# 0.001 of one frame) over itself plus the measurement noise 0.01.
SECOND_GAIN = 1.001 / 1.011


def stabilize_step(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/stabilize_detections@v1", "name": "stabilize", "image": "$inputs.image",
            "detections": "$steps.track.tracked_detections", **fields}


def tracked(seen: dict[int, Box], frame: int = 0, **extra: Any) -> sv.Detections:
    """Tracked detections of {tracker id: box} (in that order when their confidences are equal)."""
    return boxes(list(seen.values()), tracker_id=list(seen), on=image(frame), **extra)


class Stabilizer:
    """One source's step, fed a frame at a time."""

    def __init__(self, source_id: int = 0, **fields: Any) -> None:
        self.runner = StepRunner(stabilize_step(**fields), source_id=source_id)
        self.frame = 0

    def __call__(self, detections: sv.Detections | dict[int, Box]) -> sv.Detections:
        if isinstance(detections, dict):
            detections = tracked(detections, self.frame)
        out: sv.Detections = self.runner(image=image(self.frame), detections=detections)["tracked_detections"]
        self.frame += 1
        return out


def by_id(detections: sv.Detections) -> dict[int, list[float]]:
    return {int(i): box.tolist() for i, box in zip(detections.tracker_id, detections.xyxy, strict=True)}


def moved(box: Box, dx: float, dy: float) -> list[float]:
    return [box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy]


def test_a_track_s_box_is_averaged_with_its_previous_box_as_it_came() -> None:
    stabilize = Stabilizer()
    first, second, third = [80, 80, 120, 120], [90, 80, 130, 120], [105, 75, 155, 125]
    assert by_id(stabilize({1: first})) == {1: first}  # a new track as it is
    assert by_id(stabilize({1: second})) == {1: pytest.approx([82, 80, 122, 120])}  # 0.2 * second + 0.8 * first
    # averaged with the second box as detected (not as output): 0.2 * third + 0.8 * second
    assert by_id(stabilize({1: third})) == {1: pytest.approx([93, 79, 135, 121])}


def test_the_coefficient_weighs_the_current_box() -> None:
    stabilize = Stabilizer(bbox_smoothing_coefficient=0.75)
    stabilize({1: [0, 0, 40, 40]})
    assert by_id(stabilize({1: [40, 8, 80, 48]})) == {1: pytest.approx([30, 6, 70, 46])}


def test_a_missing_track_is_filled_in_where_its_filtered_velocity_takes_it_then_dropped() -> None:
    stabilize = Stabilizer(bbox_smoothing_coefficient=0.5)
    last = box_at(130, 304)
    for centre in ((100, 300), (110, 304)):
        stabilize({1: box_at(*centre), 2: box_at(400, 100)})
    stabilize({1: last, 2: box_at(400, 100)})  # displacements (10, 4) then (20, 0)
    # The filter's velocity: its first displacement, then moved by the gain towards the history's mean (15, 2).
    velocity = np.array([10 + SECOND_GAIN * (15 - 10), 4 + SECOND_GAIN * (2 - 4)])
    step = 0.5 * velocity  # the average of the previous box and the previous box moved by the velocity
    filled = stabilize({2: box_at(400, 100)})
    assert by_id(filled) == {2: [380, 80, 420, 120], 1: pytest.approx(moved(last, *step), abs=1e-4)}
    # Two displacements in its history: filled in for two frames, the velocity held, then dropped.
    assert by_id(stabilize({2: box_at(400, 100)}))[1] == pytest.approx(moved(last, *2 * step), abs=1e-4)
    assert list(by_id(stabilize({2: box_at(400, 100)}))) == [2]
    back = stabilize({1: box_at(200, 300), 2: box_at(400, 100)})
    assert by_id(back)[1] == box_at(200, 300)  # back after that: a new track, as it is


def test_the_velocity_is_the_box_centre_s() -> None:
    """A box growing around a still centre has no velocity (its right and bottom edges move)."""
    stabilize = Stabilizer()
    stabilize({1: box_at(200, 200, size=40)})
    stabilize({1: box_at(200, 200, size=60)})
    assert by_id(stabilize({})) == {1: pytest.approx(box_at(200, 200, size=60))}


def test_a_track_returning_from_a_gap_is_averaged_with_its_filled_in_box() -> None:
    stabilize = Stabilizer(bbox_smoothing_coefficient=0.5)
    stabilize({1: box_at(100, 100)})
    stabilize({1: box_at(110, 100)})  # velocity (10, 0)
    assert by_id(stabilize({})) == {1: box_at(115, 100)}
    assert by_id(stabilize({1: box_at(125, 100)})) == {1: box_at(120, 100)}


def test_tracks_are_filled_in_for_at_most_the_window_and_not_after_a_single_sighting() -> None:
    stabilize = Stabilizer(smoothing_window_size=2)
    for x in range(100, 160, 10):
        stabilize({1: box_at(x, 100)})
    stabilize({1: box_at(160, 100), 2: box_at(400, 400)})
    assert list(by_id(stabilize({}))) == [1]  # 2 was seen once: no velocity, dropped at once
    assert list(by_id(stabilize({}))) == [1]
    assert list(by_id(stabilize({}))) == []
    assert by_id(stabilize({2: box_at(300, 300)})) == {2: box_at(300, 300)}  # forgotten: new again


def test_the_window_is_the_first_frame_s() -> None:
    """As a value from another step, which may change from frame to frame: the filter keeps its first."""
    block = StepRunner(stabilize_step()).block
    frames = [{1: box_at(100 + 10 * n, 100)} for n in range(4)] + [{}, {}]
    seen = [len(block.run(image=image(n), detections=tracked(objects, n), smoothing_window_size=1 if n == 0 else 5,
                          bbox_smoothing_coefficient=0.2)["tracked_detections"]) for n, objects in enumerate(frames)]
    assert seen == [1, 1, 1, 1, 1, 0]  # a window of 1: filled in for one frame only (5: for three)


def test_output_is_the_frame_s_detections_in_order_then_the_filled_in_tracks_by_first_velocity() -> None:
    stabilize = Stabilizer()
    stabilize({5: box_at(100, 100), 3: box_at(300, 100)})
    stabilize({3: box_at(305, 100), 5: box_at(105, 100)})
    stabilize({7: box_at(500, 100), 3: box_at(310, 100), 5: box_at(110, 100)})
    out = stabilize({8: box_at(600, 300), 7: box_at(505, 100)})
    assert out.tracker_id.tolist() == [8, 7, 3, 5]  # 3's velocity came first (listed first on the second frame)
    assert out.tracker_id.dtype == np.int64


def test_filled_in_detections_keep_every_field_of_the_track_s_last_detection() -> None:
    stabilize = Stabilizer()
    stabilize(tracked({1: box_at(100, 100)}, class_names=["car"]))
    last = tracked({1: box_at(104, 100), 2: box_at(300, 100)}, class_names=["car", "bus"], confidence=[0.7, 0.8])
    kept = stabilize(last)
    out = stabilize(tracked({2: box_at(300, 100)}, 2, class_names=["bus"]))
    assert out.tracker_id.tolist() == [2, 1]
    row = int(np.flatnonzero(last.tracker_id == 1)[0])
    assert out.data[values.DETECTION_ID][1] == last.data[values.DETECTION_ID][row]
    assert out.data[values.CLASS_NAME][1] == "car" and out.class_id[1] == last.class_id[row]
    assert out.confidence[1] == pytest.approx(0.7)
    for field in (values.PARENT_ID, values.ROOT_PARENT_ID, values.INFERENCE_ID):
        assert out.data[field][1] == last.data[field][row]
    for field in (values.PARENT_COORDINATES, values.ROOT_PARENT_DIMENSIONS, values.IMAGE_DIMENSIONS):
        assert out.data[field][1].tolist() == last.data[field][row].tolist()
    assert out.metadata == kept.metadata
    # The smoothed ones keep their own fields.
    assert kept.data[values.DETECTION_ID].tolist() == last.data[values.DETECTION_ID].tolist()
    assert kept.data[values.CLASS_NAME].tolist() == last.data[values.CLASS_NAME].tolist()


def test_the_input_detections_are_left_alone_and_the_outputs_share_nothing_with_the_state() -> None:
    stabilize = Stabilizer()
    frames = [tracked({1: box_at(x, 100)}) for x in (100, 110, 120)] + [tracked({}), sv.Detections.empty()]
    before = [(f.xyxy.copy(), None if f.tracker_id is None else f.tracker_id.copy(),
               {key: value.copy() for key, value in f.data.items()}) for f in frames]
    outputs = []
    for frame in frames:
        outputs.append(stabilize(frame))
        outputs[-1].xyxy += 50
        outputs[-1].data[values.CLASS_NAME][:] = "changed"
    for frame, (xyxy, tracker_id, data) in zip(frames, before, strict=True):
        np.testing.assert_array_equal(frame.xyxy, xyxy)
        assert (frame.tracker_id is None and tracker_id is None) or frame.tracker_id.tolist() == tracker_id.tolist()
        assert frame.data.keys() == data.keys()
        assert all(np.array_equal(frame.data[key], value) for key, value in data.items())
    # Filled in on both empty frames (the untracked one too), from the boxes as they came: velocity 10 px.
    assert [len(out) for out in outputs] == [1] * 5
    assert (outputs[4].xyxy - 50).tolist() == [pytest.approx(box_at(124, 100))]
    assert outputs[4].data[values.CLASS_NAME][0] == "changed"
    assert stabilize({1: box_at(130, 100)}).data[values.CLASS_NAME].tolist() == ["person"]


def test_a_later_change_to_an_input_does_not_reach_its_filled_in_detection() -> None:
    stabilize = Stabilizer()
    stabilize({1: box_at(100, 100)})
    second = tracked({1: box_at(110, 100)})
    stabilize(second)
    second.xyxy += 50  # as a step writing into the detections it was given would
    second.data[values.CLASS_NAME][:] = "changed"
    out = stabilize({})
    assert by_id(out) == {1: pytest.approx(box_at(112, 100))} and out.data[values.CLASS_NAME].tolist() == ["person"]


@pytest.mark.parametrize("empty", [tracked({}), sv.Detections.empty()], ids=["tracked", "untracked"])
def test_an_empty_frame_with_nothing_to_fill_in_gives_empty_tracked_detections(empty: sv.Detections) -> None:
    out = Stabilizer()(empty)
    assert len(out) == 0 and out.tracker_id is not None and out.tracker_id.tolist() == []
    assert out.data.keys() == empty.data.keys()


def test_untracked_detections_are_refused() -> None:
    with pytest.raises(ValueError, match=r"stabilize_detections@v1 needs tracked detections \(with tracker_id\)"):
        Stabilizer()(boxes([box_at(100, 100)]))


def test_state_is_per_source() -> None:
    source_0, source_1 = Stabilizer(source_id=0), Stabilizer(source_id=1)
    source_0({1: box_at(100, 100)})
    source_0({1: box_at(110, 100)})
    assert by_id(source_1({1: box_at(300, 300)})) == {1: box_at(300, 300)}  # not averaged with source 0's
    assert list(by_id(source_1({}))) == []  # seen once here: no velocity to fill it in with
    assert by_id(source_0({})) == {1: pytest.approx(box_at(112, 100))}  # source 1's box is not its previous one


@pytest.mark.parametrize(("fields", "expected"), [
    ({"smoothing_window_size": 0}, "smoothing_window_size must be a positive integer"),
    ({"smoothing_window_size": 2.5}, "smoothing_window_size must be a positive integer"),
    ({"bbox_smoothing_coefficient": 1.5}, "bbox_smoothing_coefficient must be between 0 and 1"),
])
def test_bad_values_from_another_step_fail_the_frame(fields: dict[str, Any], expected: str) -> None:
    runner = StepRunner(stabilize_step())
    inputs = {"smoothing_window_size": 3, "bbox_smoothing_coefficient": 0.2, **fields}
    with pytest.raises(ValueError, match=expected):
        runner.block.run(image=image(0), detections=tracked({1: box_at(100, 100)}), **inputs)
