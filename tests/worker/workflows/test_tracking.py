"""byte_tracker v1/v2/v3 and the trackers_* v1 blocks on synthetic scenes: the reference's observed behaviour."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import supervision as sv
from trackers import BoTSORTTracker, ByteTrackTracker, OCSORTTracker, SORTTracker

from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.video_steps import StepRunner, box_at, boxes, image, tracker_step, video


def ids(detections: sv.Detections) -> list[int]:
    return [] if detections.tracker_id is None else detections.tracker_id.tolist()


def scene(frame: int, objects: Sequence[tuple[float, float, float]]) -> sv.Detections:
    """Detections of (x at frame 0, y, confidence) objects moving right 5 px per frame."""
    return boxes([box_at(x + 5 * frame, y) for x, y, _ in objects], [c for _, _, c in objects],
                 on=image(frame))


def run_v2(runner: StepRunner, frame: int, detections: sv.Detections, **video_kwargs: Any) -> sv.Detections:
    result: sv.Detections = runner(image=image(frame, **video_kwargs), detections=detections)["tracked_detections"]
    return result


def test_first_frame_ids_start_at_one_and_keep_the_models_boxes_and_ids() -> None:
    runner = StepRunner(tracker_step("v2"))
    first = scene(0, [(100, 100, 0.9), (400, 300, 0.8)])
    tracked = run_v2(runner, 0, first)
    assert ids(tracked) == [1, 2]
    np.testing.assert_array_equal(tracked.xyxy, first.xyxy)
    assert tracked.data["detection_id"].tolist() == first.data["detection_id"].tolist()
    assert tracked.data["class_name"].tolist() == ["person", "person"]
    second = scene(1, [(100, 100, 0.9), (400, 300, 0.8)])
    tracked = run_v2(runner, 1, second)
    assert ids(tracked) == [1, 2]
    np.testing.assert_array_equal(tracked.xyxy, second.xyxy)  # the model's boxes, not the Kalman filter's


def test_a_later_object_is_left_out_on_its_first_frame_then_gets_the_next_id() -> None:
    runner = StepRunner(tracker_step("v2"))
    assert ids(run_v2(runner, 0, scene(0, [(100, 100, 0.9)]))) == [1]
    assert ids(run_v2(runner, 1, scene(1, [(100, 100, 0.9), (400, 300, 0.9)]))) == [1]
    assert ids(run_v2(runner, 2, scene(2, [(100, 100, 0.9), (400, 300, 0.9)]))) == [1, 2]


def test_low_confidence_keeps_a_track_alive_but_never_starts_one() -> None:
    runner = StepRunner(tracker_step("v2"))
    run_v2(runner, 0, scene(0, [(100, 100, 0.9)]))
    # 0.2 is below the activation threshold (0.25): matched in ByteTrack's second round.
    assert ids(run_v2(runner, 1, scene(1, [(100, 100, 0.2)]))) == [1]
    # 0.3 is above 0.25 but below 0.25 + 0.1: no track starts from it, now or later.
    for frame in (2, 3, 4):
        assert ids(run_v2(runner, frame, scene(frame, [(100, 100, 0.9), (400, 300, 0.3)]))) == [1]


def test_detections_at_or_below_a_tenth_are_ignored() -> None:
    runner = StepRunner(tracker_step("v2"))
    run_v2(runner, 0, scene(0, [(100, 100, 0.9)]))
    for frame in (1, 2, 3):
        assert ids(run_v2(runner, frame, scene(frame, [(100, 100, 0.1)]))) == []


def test_a_lost_track_keeps_its_id_within_the_buffer_only() -> None:
    runner = StepRunner(tracker_step("v2", lost_track_buffer=5))  # 5 frames at 30 fps

    def at(frame: int) -> sv.Detections:
        return boxes([box_at(100, 100)], [0.9], on=image(frame, fps=30))

    for frame in range(5):
        assert ids(run_v2(runner, frame, at(frame), fps=30)) == [1]
    for frame in range(5, 8):  # 3 frames without it
        assert ids(run_v2(runner, frame, boxes([], [], on=image(frame, fps=30)), fps=30)) == []
    assert ids(run_v2(runner, 8, at(8), fps=30)) == [1]
    for frame in range(9, 30):  # 21 frames without it: the track is gone
        run_v2(runner, frame, boxes([], [], on=image(frame, fps=30)), fps=30)
    assert ids(run_v2(runner, 30, at(30), fps=30)) == []
    assert ids(run_v2(runner, 31, at(31), fps=30)) == [2]


def test_a_live_stream_without_fps_measures_the_buffer_in_seconds() -> None:
    """lost_track_buffer 30 = one second of timestamps when the source declares no fps."""
    runner = StepRunner(tracker_step("v2"))

    def frame_at(frame: int, present: bool) -> sv.Detections:
        detections = boxes([box_at(200, 200)] if present else [], [0.9] if present else [],
                           on=image(frame, None, file=False, seconds=frame / 10))
        return run_v2(runner, frame, detections, fps=None, file=False, seconds=frame / 10)

    assert ids(frame_at(0, True)) == [1]
    for frame in range(1, 6):  # half a second without it
        frame_at(frame, False)
    assert ids(frame_at(6, True)) == [1]
    for frame in range(7, 30):  # 2.3 s without it
        frame_at(frame, False)
    assert ids(frame_at(30, True)) == []
    assert ids(frame_at(31, True)) == [2]


def test_repeated_timestamps_do_not_upset_the_tracker() -> None:
    runner = StepRunner(tracker_step("v2"))
    for frame in range(4):  # every frame stamped with the same instant (warnings are errors here)
        detections = boxes([box_at(200 + frame, 200)], [0.9], on=image(frame, None, file=False, seconds=0))
        assert ids(run_v2(runner, frame, detections, fps=None, file=False, seconds=0)) == [1]


def test_v1_reads_its_metadata_input_and_needs_no_fps() -> None:
    runner = StepRunner(tracker_step("v1"))
    for frame in range(3):  # the reference's v1 raises on a missing fps
        tracked = runner(metadata=video(frame, None, file=False), detections=scene(frame, [(100, 100, 0.9)]))
        assert ids(tracked["tracked_detections"]) == [1]
    assert set(tracked) == {"tracked_detections"}


def test_empty_detections_give_empty_tracked_detections_with_their_fields() -> None:
    runner = StepRunner(tracker_step("v3"))
    outputs = runner(image=image(0), detections=boxes([], []))
    for name in ("tracked_detections", "new_instances", "already_seen_instances"):
        assert len(outputs[name]) == 0
        assert "detection_id" in outputs[name].data
    assert outputs["tracked_detections"].tracker_id.tolist() == []


def test_two_block_instances_keep_separate_state() -> None:
    one, two, alone = (StepRunner(tracker_step("v2"), source_id=i) for i in (0, 1, 2))
    for frame in range(4):
        first = run_v2(one, frame, scene(frame, [(100, 100, 0.9)]))
        second = run_v2(two, frame, scene(frame, [(300, 300, 0.9), (500, 100, 0.8)]))
        reference = run_v2(alone, frame, scene(frame, [(300, 300, 0.9), (500, 100, 0.8)]))
        assert ids(first) == [1]
        assert ids(second) == ids(reference) == [1, 2]


def test_v3_new_instances_list_an_id_once_on_its_first_frame() -> None:
    runner = StepRunner(tracker_step("v3"))
    frames: list[tuple[list[int], list[int], list[int]]] = []
    present = {0: [True, False], 1: [True, False], 2: [True, True], 3: [True, True], 4: [False, True],
               5: [True, True], 6: [True, True]}
    for frame, (a, b) in present.items():
        objects = [o for o, p in (((100, 100, 0.9), a), ((400, 300, 0.9), b)) if p]
        outputs = runner(image=image(frame), detections=scene(frame, objects))
        frames.append((ids(outputs["tracked_detections"]), ids(outputs["new_instances"]),
                       ids(outputs["already_seen_instances"])))
    assert frames == [
        ([1], [1], []),
        ([1], [], [1]),
        ([1], [], [1]),  # the second object starts its track
        ([1, 2], [2], [1]),
        ([2], [], [2]),  # the first one is missing
        ([1, 2], [], [1, 2]),  # back with its id: already seen
        ([1, 2], [], [1, 2]),
    ]


def test_v3_instances_cache_forgets_the_oldest_id() -> None:
    runner = StepRunner(tracker_step("v3", instances_cache_size=1))
    for frame in range(3):  # two ids, room for one: each evicts the other
        outputs = runner(image=image(frame), detections=scene(frame, [(100, 100, 0.9), (400, 300, 0.9)]))
        assert ids(outputs["new_instances"]) == [1, 2]
        assert ids(outputs["already_seen_instances"]) == []


# Each trackers_* block against the package's tracker built with the manifest's defaults (trackers/*/v1.py).
PACKAGE_TRACKERS = {
    "bytetrack": lambda: ByteTrackTracker(frame_rate=25.0, lost_track_buffer=30, track_activation_threshold=0.7,
                                          minimum_consecutive_frames=2, minimum_iou_threshold=0.1,
                                          high_conf_det_threshold=0.6),
    "sort": lambda: SORTTracker(frame_rate=25.0, lost_track_buffer=30, track_activation_threshold=0.25,
                                minimum_consecutive_frames=3, minimum_iou_threshold=0.3),
    "ocsort": lambda: OCSORTTracker(frame_rate=25.0, lost_track_buffer=30, minimum_consecutive_frames=3,
                                    minimum_iou_threshold=0.3, high_conf_det_threshold=0.6,
                                    direction_consistency_weight=0.2, delta_t=3),
    # The manifest turns camera motion compensation and instant first-frame ids off (the package: on).
    "botsort": lambda: BoTSORTTracker(frame_rate=25.0, lost_track_buffer=30, track_activation_threshold=0.7,
                                      minimum_consecutive_frames=2, minimum_iou_threshold_first_assoc=0.2,
                                      minimum_iou_threshold_second_assoc=0.5,
                                      minimum_iou_threshold_unconfirmed_assoc=0.3, high_conf_det_threshold=0.6,
                                      enable_cmc=False, instant_first_frame_activation=False),
}


def package_step(algorithm: str, **fields: Any) -> dict[str, Any]:
    return {"type": f"roboflow_core/trackers_{algorithm}@v1", "name": "tracker", "image": "$inputs.image",
            "detections": "$steps.detect.predictions", **fields}


def pairs(detections: sv.Detections) -> list[tuple[str, int]]:
    return sorted(zip(detections.data["detection_id"].tolist(), ids(detections), strict=True))


@pytest.mark.parametrize("algorithm", sorted(PACKAGE_TRACKERS))
def test_each_trackers_block_is_the_packages_tracker_with_the_manifests_defaults(algorithm: str) -> None:
    """Same ids for the same detections as the package's tracker (ids from 0, confirmed after some frames)."""
    runner = StepRunner(package_step(algorithm))
    reference = PACKAGE_TRACKERS[algorithm]()
    rng = np.random.default_rng(7)
    first_ids: list[int] = []
    for frame in range(16):
        objects = [(100, 100, 0.9), (400, 300, 0.8), (250, 450, 0.5)][: 1 + frame // 4]
        detections = scene(frame, [(x, y + rng.uniform(-2, 2), c) for x, y, c in objects])
        outputs = runner(image=image(frame), detections=detections)
        expected = reference.update(detections)
        expected = expected[expected.tracker_id >= 0]
        got = outputs["tracked_detections"]
        assert pairs(got) == pairs(expected), frame
        np.testing.assert_array_equal(got.xyxy, detections.xyxy[np.isin(detections.data["detection_id"],
                                                                          got.data["detection_id"])])
        first_ids += ids(outputs["new_instances"])
    assert first_ids and first_ids == sorted(set(first_ids)) and first_ids[0] == 0  # each id new once


def test_a_trackers_blocks_tuning_reaches_its_tracker() -> None:
    """SORT confirms a track on its third frame by default; with minimum_consecutive_frames 1 on its second
    (the package confirms nothing on a track's first frame)."""
    for consecutive, first_tracked_frame in ((3, 2), (1, 1)):
        runner = StepRunner(package_step("sort", minimum_consecutive_frames=consecutive))
        tracked = [ids(runner(image=image(frame), detections=scene(frame, [(100, 100, 0.9)]))["tracked_detections"])
                   for frame in range(4)]
        assert tracked == [[]] * first_tracked_frame + [[0]] * (4 - first_tracked_frame)


def panned(frame: int, offset: int) -> WorkflowImage:
    """A noise texture seen by a camera panned ``offset`` pixels (the scene shifts right by that much)."""
    texture = np.random.default_rng(3).integers(0, 255, (480, 1200, 3), dtype=np.uint8)
    return WorkflowImage.frame(np.ascontiguousarray(texture[:, 400 - offset:1040 - offset]), "image", video(frame))


def test_botsort_with_camera_motion_compensation_is_given_the_frames() -> None:
    """A camera that jumps 36 px now and then under an object fixed in the world (a 40 px box): BoT-SORT
    keeps its id only when the block passes it the frames to compensate the jumps; without it the jump
    leaves the boxes too little overlap and the object gets a new id."""
    offsets = [0, 0, 0, 0, 36, 36, 36, 72, 72, 72, 108, 108]
    ids_by_cmc = {}
    for enable_cmc in (True, False):
        runner = StepRunner(package_step("botsort", enable_cmc=enable_cmc, cmc_method="sparseOptFlow"))
        seen = []
        for frame, offset in enumerate(offsets):
            picture = panned(frame, offset)
            detections = boxes([box_at(300 + offset, 200)], [0.9], on=picture)
            seen.append(ids(runner(image=picture, detections=detections)["tracked_detections"]))
        ids_by_cmc[enable_cmc] = seen
    assert ids_by_cmc[True] == [[]] + [[0]] * (len(offsets) - 1)
    assert ids_by_cmc[False] != ids_by_cmc[True]


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_every_byte_tracker_version_tracks(version: str) -> None:
    runner = StepRunner(tracker_step(version))
    for frame in range(3):
        source = {"metadata": video(frame)} if version == "v1" else {"image": image(frame)}
        outputs = runner(detections=scene(frame, [(100, 100, 0.9)]), **source)
        assert ids(outputs["tracked_detections"]) == [1]
