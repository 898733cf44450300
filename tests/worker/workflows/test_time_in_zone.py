"""time_in_zone v1/v2/v3: membership as supervision's PolygonZone, time in video seconds."""

from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows.values import TIME_IN_ZONE
from tests.worker.workflows.video_steps import StepRunner, box_at, boxes, image, video

ZONE = [[100, 100], [300, 100], [300, 300], [100, 300]]
INSIDE, OUTSIDE = box_at(200, 200), box_at(500, 200)
FPS = 10.0


def zone_step(version: str, **fields: Any) -> dict[str, Any]:
    metadata = {"metadata": "$inputs.video_metadata"} if version == "v1" else {}
    return {"type": f"roboflow_core/time_in_zone@{version}", "name": "timer", "image": "$inputs.image",
            "detections": "$steps.track.tracked_detections", "zone": ZONE, **metadata, **fields}


def run(runner: StepRunner, frame: int, places: list[list[float]], tracker_ids: list[int], fps: float | None = FPS,
        **video_kwargs: Any) -> sv.Detections:
    frame_image = image(frame, fps, **video_kwargs)
    detections = boxes(places, [0.9] * len(places), tracker_id=tracker_ids, on=frame_image)
    source = {"metadata": video(frame, fps, **video_kwargs)} if "metadata" in runner.step.params else {}
    timed: sv.Detections = runner(image=frame_image, detections=detections, **source)["timed_detections"]
    return timed


def times(timed: sv.Detections) -> dict[int, float]:
    return {int(t): round(float(s), 6) for t, s in zip(timed.tracker_id, timed.data[TIME_IN_ZONE], strict=True)}


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_time_counts_from_the_first_frame_inside_and_resets_when_seen_outside(version: str) -> None:
    runner = StepRunner(zone_step(version))
    plan = {0: OUTSIDE, 1: INSIDE, 2: INSIDE, 3: None, 4: INSIDE, 5: OUTSIDE, 6: INSIDE, 7: INSIDE}
    seen = {}
    for frame, place in plan.items():
        seen[frame] = times(run(runner, frame, [place] if place else [], [7] if place else []))
    assert seen == {0: {}, 1: {7: 0.0}, 2: {7: 0.1}, 3: {}, 4: {7: 0.3}, 5: {}, 6: {7: 0.0}, 7: {7: 0.1}}


def test_membership_is_supervisions_polygon_zone() -> None:
    runner = StepRunner(zone_step("v2", triggering_anchor="BOTTOM_CENTER", remove_out_of_zone_detections=False))
    zone = sv.PolygonZone(np.array(ZONE), triggering_anchors=(sv.Position.BOTTOM_CENTER,))
    rng = np.random.default_rng(3)
    for frame in range(20):
        places = [box_at(*rng.uniform(50, 350, size=2)) for _ in range(5)]
        frame_image = image(frame, FPS)
        detections = boxes(places, [0.9] * 5, tracker_id=list(range(5)), on=frame_image)
        timed = runner(image=frame_image, detections=detections)["timed_detections"]
        inside = zone.trigger(detections)
        assert timed.tracker_id.tolist() == detections.tracker_id.tolist()  # nothing removed
        assert [s > 0 or i for s, i in zip(timed.data[TIME_IN_ZONE], inside, strict=True)] == inside.tolist()


def test_outside_detections_kept_with_zero_when_not_removed() -> None:
    runner = StepRunner(zone_step("v2", remove_out_of_zone_detections=False))
    run(runner, 0, [INSIDE, OUTSIDE], [1, 2])
    assert times(run(runner, 1, [INSIDE, OUTSIDE], [1, 2])) == {1: 0.1, 2: 0.0}


def test_without_reset_the_time_is_cumulative() -> None:
    """reset_out_of_zone_detections false keeps the entry time (the reference forgets it when nothing is removed)."""
    for remove in (True, False):
        runner = StepRunner(zone_step("v2", reset_out_of_zone_detections=False, remove_out_of_zone_detections=remove))
        run(runner, 0, [INSIDE], [1])
        run(runner, 1, [OUTSIDE], [1])
        assert times(run(runner, 2, [INSIDE], [1])) == {1: 0.2}


def test_v3_takes_several_zones_and_follows_a_changing_zone() -> None:
    second = [[400, 100], [600, 100], [600, 300], [400, 300]]
    runner = StepRunner(zone_step("v3", zone=[ZONE, second]))
    assert times(run(runner, 0, [INSIDE, OUTSIDE, box_at(700, 500)], [1, 2, 3])) == {1: 0.0, 2: 0.0}
    moved = runner.block.run(image=image(1, FPS), detections=boxes([INSIDE, OUTSIDE], tracker_id=[1, 2]),
                             zone=second, triggering_anchor="CENTER", remove_out_of_zone_detections=True,
                             reset_out_of_zone_detections=True)["timed_detections"]
    assert times(moved) == {2: 0.1}


def test_v1_reads_the_time_of_its_metadata_input() -> None:
    runner = StepRunner(zone_step("v1"))
    for frame in (0, 5):
        detections = boxes([INSIDE], tracker_id=[1])
        timed = runner(image=image(0, FPS), metadata=video(frame, FPS), detections=detections)["timed_detections"]
    assert times(timed) == {1: 0.5}


def test_a_live_stream_uses_the_frames_timestamps() -> None:
    runner = StepRunner(zone_step("v2"))
    run(runner, 0, [INSIDE], [1], fps=None, file=False, seconds=10.0)
    assert times(run(runner, 1, [INSIDE], [1], fps=None, file=False, seconds=12.5)) == {1: 2.5}


def test_a_file_without_fps_uses_the_timestamps_too() -> None:
    runner = StepRunner(zone_step("v2"))  # the reference divides by the missing fps
    run(runner, 0, [INSIDE], [1], fps=None, seconds=1.0)
    assert times(run(runner, 40, [INSIDE], [1], fps=None, seconds=3.0)) == {1: 2.0}


def test_untracked_detections_are_an_error_and_empty_ones_are_fine() -> None:
    runner = StepRunner(zone_step("v2"))
    with pytest.raises(ValueError, match="tracker_id"):
        runner(image=image(0), detections=boxes([INSIDE]))
    timed = runner(image=image(1), detections=boxes([], []))["timed_detections"]
    assert len(timed) == 0 and TIME_IN_ZONE in timed.data and "detection_id" in timed.data


def test_two_instances_time_separately() -> None:
    one, two = StepRunner(zone_step("v2"), 0), StepRunner(zone_step("v2"), 1)
    run(one, 0, [INSIDE], [1])
    run(two, 3, [INSIDE], [1])
    assert times(run(one, 4, [INSIDE], [1])) == {1: 0.4}
    assert times(run(two, 4, [INSIDE], [1])) == {1: 0.1}
