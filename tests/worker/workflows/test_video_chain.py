"""A real run: the default detector on the sample video, then byte_tracker@v3 -> line_counter@v2 and
time_in_zone@v2, compiled from one published-format definition; checked against supervision's own
LineZone and PolygonZone fed the same tracked detections."""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from services.core.workflows.compiler import compile_workflow
from services.worker.detection.detector import DetectionParams, Detector
from services.worker.models.repository import ModelSpec
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import DETECTION_ID, TIME_IN_ZONE, WorkflowImage, detections_on
from tests.worker.workflows.video_steps import NoModels, RunAtOnce, resolved, video

VIDEO = Path(__file__).resolve().parents[3] / "data" / "media" / "vtest.avi"
FRAMES = 50  # about 10 s of CPU detection on 2 cores
FPS = 10.0  # vtest.avi
LINE = [[600, 0], [600, 576]]  # a vertical line: people walk in from the right in the first seconds
ZONE = [[300, 150], [700, 150], [700, 400], [300, 400]]

DEFINITION = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "image"}],
    "steps": [
        {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect", "image": "$inputs.image",
         "model_id": "yolov3-tiny", "class_filter": ["person"]},
        {"type": "roboflow_core/byte_tracker@v3", "name": "track", "image": "$inputs.image",
         "detections": "$steps.detect.predictions"},
        {"type": "roboflow_core/line_counter@v2", "name": "count", "image": "$inputs.image",
         "detections": "$steps.track.tracked_detections", "line_segment": LINE, "triggering_anchor": "CENTER"},
        {"type": "roboflow_core/time_in_zone@v2", "name": "timer", "image": "$inputs.image",
         "detections": "$steps.track.tracked_detections", "zone": ZONE},
    ],
    "outputs": [{"type": "JsonField", "name": "count_in", "selector": "$steps.count.count_in"}],
}


def frames() -> Iterator[WorkflowImage]:
    capture = cv2.VideoCapture(str(VIDEO))
    try:
        for index in range(FRAMES):
            ok, pixels = capture.read()
            assert ok, f"cannot read frame {index} of {VIDEO}"
            yield WorkflowImage.frame(pixels, "image", video(index + 1, FPS))
    finally:
        capture.release()


@pytest.fixture(scope="module")
def detected(default_model: ModelSpec) -> list[tuple[WorkflowImage, sv.Detections]]:
    if not VIDEO.is_file():
        pytest.fail(f"{VIDEO} is missing: run `python -m tools.fetch_media`")
    detector = Detector(default_model, intra_op_threads=2)
    person = default_model.class_names.index("person")
    result = []
    for frame in frames():
        found = detector.detect(frame.image, DetectionParams(confidence=0.3))
        keep = found.class_id == person
        result.append((frame, detections_on(frame, found.xyxy[keep], found.confidence[keep], found.class_id[keep],
                                             default_model.class_names, "inference")))
    return result


def test_track_count_and_time_on_real_video(detected: list[tuple[WorkflowImage, sv.Detections]]) -> None:
    plan = compile_workflow(DEFINITION)
    env = BlockEnvironment(source_id=0, models=NoModels(), background=RunAtOnce())
    track, count, timer = (REGISTRY[plan.step(n).type](plan.step(n), env) for n in ("track", "count", "timer"))
    line_zone = sv.LineZone(sv.Point(600, 0), sv.Point(600, 576), triggering_anchors=[sv.Position.CENTER])
    polygon_zone = sv.PolygonZone(np.array(ZONE), triggering_anchors=(sv.Position.CENTER,))
    first_seen: dict[int, int] = {}
    lifetimes: dict[int, int] = {}
    entered: dict[int, int] = {}
    for index, (frame, detections) in enumerate(detected):
        tracked_outputs = track.run(**resolved(plan.step("track"), image=frame, detections=detections))
        tracked = tracked_outputs["tracked_detections"]
        ids = tracked.tracker_id.tolist()
        assert len(set(ids)) == len(ids) and all(i >= 1 for i in ids)
        # The model's own boxes and detection ids, a subset of this frame's detections.
        rows = [detections.data[DETECTION_ID].tolist().index(d) for d in tracked.data[DETECTION_ID]]
        np.testing.assert_array_equal(tracked.xyxy, detections.xyxy[rows])
        for tracker_id in ids:
            first_seen.setdefault(tracker_id, index)
            lifetimes[tracker_id] = lifetimes.get(tracker_id, 0) + 1
        assert sorted(tracked_outputs["new_instances"].tracker_id.tolist()) == sorted(
            i for i in ids if first_seen[i] == index)
        assert sorted(tracked_outputs["already_seen_instances"].tracker_id.tolist()) == sorted(
            i for i in ids if first_seen[i] < index)

        counted = count.run(**resolved(plan.step("count"), image=frame, detections=tracked))
        crossed_in, crossed_out = line_zone.trigger(tracked)
        assert (counted["count_in"], counted["count_out"]) == (line_zone.in_count, line_zone.out_count)
        assert counted["detections_in"].tracker_id.tolist() == tracked.tracker_id[crossed_in].tolist()
        assert counted["detections_out"].tracker_id.tolist() == tracked.tracker_id[crossed_out].tolist()

        timed = timer.run(**resolved(plan.step("timer"), image=frame, detections=tracked))["timed_detections"]
        inside = polygon_zone.trigger(tracked)
        for tracker_id, is_inside in zip(ids, inside.tolist(), strict=True):
            if is_inside:
                entered.setdefault(tracker_id, index)
            else:
                entered.pop(tracker_id, None)
        expected = {i: (index - entered[i]) / FPS for i in ids if i in entered}
        got = dict(zip(timed.tracker_id.tolist(), timed.data[TIME_IN_ZONE].tolist(), strict=True))
        assert got == pytest.approx(expected)
    assert max(lifetimes.values()) >= FRAMES // 2  # people are followed, not re-identified every frame
    assert line_zone.in_count + line_zone.out_count >= 1  # someone crossed the line
    assert entered  # someone is in the zone
