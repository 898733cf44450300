"""line_counter v1/v2 against supervision's own LineZone fed the same tracked detections."""

from typing import Any

import numpy as np
import pytest
import supervision as sv

from tests.worker.workflows.video_steps import StepRunner, box_at, boxes, image, video

LINE = [[0, 300], [768, 300]]


def counter_step(version: str, **fields: Any) -> dict[str, Any]:
    source = {"metadata": "$inputs.video_metadata"} if version == "v1" else {"image": "$inputs.image"}
    return {"type": f"roboflow_core/line_counter@{version}", "name": "count", "line_segment": LINE,
            "detections": "$steps.track.tracked_detections", **source, **fields}


def crossing_scene(frame: int) -> sv.Detections:
    """Track 1 walks up across the line (y 400 -> 100), track 2 walks down (y 190 -> 490), 20 px a frame."""
    return boxes([box_at(200, 400 - 20 * frame), box_at(500, 190 + 20 * frame)], [0.9, 0.8], tracker_id=[1, 2],
                 on=image(frame))


def run(runner: StepRunner, version: str, frame: int, detections: sv.Detections) -> dict[str, Any]:
    source = {"metadata": video(frame)} if version == "v1" else {"image": image(frame)}
    return runner(detections=detections, **source)


@pytest.mark.parametrize(("version", "anchor", "anchors"), [
    ("v1", "CENTER", [sv.Position.CENTER]),
    ("v1", "BOTTOM_CENTER", [sv.Position.BOTTOM_CENTER]),
    ("v2", None, None),  # supervision's default: the four corners
    ("v2", "TOP_LEFT", [sv.Position.TOP_LEFT]),
])
def test_counts_like_supervision_line_zone(version: str, anchor: str | None, anchors: list[sv.Position] | None
                                           ) -> None:
    fields = {"triggering_anchor": anchor} if anchor else {}
    runner = StepRunner(counter_step(version, **fields))
    start, end = sv.Point(0, 300), sv.Point(768, 300)
    zone = sv.LineZone(start, end) if anchors is None else sv.LineZone(start, end, triggering_anchors=anchors)
    for frame in range(16):
        detections = crossing_scene(frame)
        outputs = run(runner, version, frame, detections)
        crossed_in, crossed_out = zone.trigger(detections)
        assert (outputs["count_in"], outputs["count_out"]) == (zone.in_count, zone.out_count)
        if version == "v2":
            assert outputs["detections_in"].tracker_id.tolist() == detections.tracker_id[crossed_in].tolist()
            assert outputs["detections_out"].tracker_id.tolist() == detections.tracker_id[crossed_out].tolist()
    assert (outputs["count_in"], outputs["count_out"]) == (1, 1)


def test_a_crossing_counts_on_the_first_frame_on_the_new_side() -> None:
    """Upwards is "in" for the line (0,300)->(768,300); with the corners, the whole box must be past it."""
    runner = StepRunner(counter_step("v2"))
    crossings: dict[int, tuple[list[int], list[int]]] = {}
    for frame in range(16):
        outputs = run(runner, "v2", frame, crossing_scene(frame))
        if len(outputs["detections_in"]) or len(outputs["detections_out"]):
            crossings[frame] = (outputs["detections_in"].tracker_id.tolist(),
                                outputs["detections_out"].tracker_id.tolist())
    # Track 1's box bottom (y + 20) passes 300 at y = 260 (frame 7); track 2's top (y - 20) at y = 330 (frame 7).
    assert crossings == {7: ([1], [2])}


def test_detections_in_keep_their_fields() -> None:
    runner = StepRunner(counter_step("v2", triggering_anchor="CENTER"))
    for frame in range(7):
        detections = crossing_scene(frame)
        outputs = run(runner, "v2", frame, detections)
    assert outputs["detections_in"].data["detection_id"].tolist() == detections.data["detection_id"][:1].tolist()
    assert outputs["detections_out"].data["class_name"].tolist() == ["person"]


def test_a_track_missing_two_frames_loses_its_side() -> None:
    runner = StepRunner(counter_step("v1"))
    below, above = box_at(200, 350), box_at(200, 250)
    frames = [[below], [below], [], [], [above], [above]]
    for frame, xyxy in enumerate(frames):
        outputs = run(runner, "v1", frame, boxes(xyxy, [0.9] * len(xyxy), tracker_id=[1] * len(xyxy)))
    assert (outputs["count_in"], outputs["count_out"]) == (0, 0)
    runner = StepRunner(counter_step("v1"))
    for frame, xyxy in enumerate([[below], [below], [], [above]]):  # one frame missing: still counted
        outputs = run(runner, "v1", frame, boxes(xyxy, [0.9] * len(xyxy), tracker_id=[1] * len(xyxy)))
    assert (outputs["count_in"], outputs["count_out"]) == (1, 0)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_untracked_detections_are_a_clear_error(version: str) -> None:
    runner = StepRunner(counter_step(version))
    with pytest.raises(ValueError, match="tracker_id"):
        run(runner, version, 0, boxes([box_at(100, 100)], [0.9]))
    outputs = run(runner, version, 1, boxes([], []))  # nothing to count needs no ids
    assert (outputs["count_in"], outputs["count_out"]) == (0, 0)


def test_two_instances_count_separately() -> None:
    one, two = StepRunner(counter_step("v2"), 0), StepRunner(counter_step("v2"), 1)
    for frame in range(16):
        first = run(one, "v2", frame, crossing_scene(frame))
        second = run(two, "v2", frame, crossing_scene(frame)[np.array([0])])
    assert (first["count_in"], first["count_out"]) == (1, 1)
    assert (second["count_in"], second["count_out"]) == (1, 0)


def test_a_line_from_another_step_is_checked_at_run_time() -> None:
    runner = StepRunner(counter_step("v2"))
    detections = crossing_scene(0)
    with pytest.raises(ValueError, match="line_segment"):
        runner.block.run(image=image(0), detections=detections, line_segment=[[1, 2]], triggering_anchor=None)
    with pytest.raises(ValueError, match="two distinct points"):
        runner.block.run(image=image(0), detections=detections, line_segment=[[1, 2], [1, 2]],
                         triggering_anchor=None)
    with pytest.raises(ValueError, match="triggering_anchor 'MIDDLE'"):
        runner.block.run(image=image(0), detections=detections, line_segment=LINE, triggering_anchor="MIDDLE")
