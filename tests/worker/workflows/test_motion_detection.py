"""motion_detection@v1 on synthetic frames: a still textured background, then a bright rectangle that jumps
50 px a frame (so all of it is new on each frame), through the compiled step (the catalogue entry too)."""

from typing import Any

import numpy as np
import pytest

from services.worker.workflows import values
from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.video_steps import StepRunner, video

HEIGHT, WIDTH = 240, 320
HISTORY = 10
BACKGROUND = np.random.default_rng(7).integers(40, 80, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)


def frame(number: int, *boxes: Box) -> WorkflowImage:
    """The background with a white rectangle at each of ``boxes``."""
    pixels = BACKGROUND.copy()
    for x1, y1, x2, y2 in boxes:
        pixels[y1:y2, x1:x2] = 255
    return WorkflowImage.frame(pixels, "image", video(number))


def motion_step(**fields: Any) -> StepRunner:
    return StepRunner({"type": "roboflow_core/motion_detection@v1", "name": "motion", "image": "$inputs.image",
                       "history": HISTORY, **fields})


def learn_background(runner: StepRunner, frames: int = HISTORY) -> None:
    for number in range(frames):
        outputs = runner(image=frame(number))
        assert outputs["motion"] is False and outputs["alarm"] is False and len(outputs["detections"]) == 0


def moving(x: int, width: int = 40, height: int = 30) -> Box:
    return x, 100, x + width, 100 + height


def test_no_motion_is_reported_while_the_background_is_learnt_even_with_something_moving() -> None:
    runner = motion_step()
    for number in range(HISTORY):
        outputs = runner(image=frame(number, moving(10 + 50 * (number % 5))))
        assert (outputs["motion"], outputs["alarm"], outputs["motion_zones"]) == (False, False, [])
        assert len(outputs["detections"]) == 0


def test_motion_raises_the_alarm_once_then_stops_when_the_object_has_gone() -> None:
    runner = motion_step()
    learn_background(runner)
    seen = [runner(image=frame(HISTORY + index, *boxes)) for index, boxes in enumerate(
        [[moving(10)], [moving(60)], [moving(110)], [], [], [moving(200)]])]
    assert [o["motion"] for o in seen] == [True, True, True, False, False, True]
    assert [o["alarm"] for o in seen] == [True, False, False, False, False, True]  # only when motion starts


def test_an_object_that_stops_becomes_background() -> None:
    runner = motion_step()
    learn_background(runner)
    parked = moving(150)
    seen = [runner(image=frame(HISTORY + index, parked))["motion"] for index in range(2 * HISTORY)]
    assert seen[0] is True and seen[-1] is False


def test_the_detections_are_the_rectangles_boxes_of_class_motion() -> None:
    runner = motion_step()
    learn_background(runner)
    image = frame(HISTORY, (30, 40, 90, 120), (200, 150, 260, 200))
    outputs = runner(image=image)
    detections = outputs["detections"]
    boxes = sorted(detections.xyxy.tolist())
    np.testing.assert_allclose(boxes, [[30, 40, 90, 120], [200, 150, 260, 200]], atol=2)
    assert detections.class_id.tolist() == [0, 0] and detections.confidence.tolist() == [1.0, 1.0]
    assert detections.data[values.CLASS_NAME].tolist() == ["motion", "motion"]
    assert detections.data[values.PARENT_ID].tolist() == [image.parent_id] * 2
    assert detections.metadata[values.IMAGE_SIZE] == (HEIGHT, WIDTH)
    zones = sorted(outputs["motion_zones"])
    assert len(zones) == 2 and all(len(zone) >= 3 for zone in zones)
    xs, ys = np.array(zones[0])[:, 0], np.array(zones[0])[:, 1]
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == pytest.approx((30, 40, 89, 119), abs=2)


def test_regions_not_larger_than_the_minimum_area_are_ignored() -> None:
    small, large = (20, 20, 30, 30), (150, 100, 200, 150)  # about 81 and 2401 square pixels
    for minimum, expected in [(200, [large]), (50, [small, large]), (5000, [])]:
        runner = motion_step(minimum_contour_area=minimum)
        learn_background(runner)
        outputs = runner(image=frame(HISTORY, small, large))
        found = np.reshape(sorted(outputs["detections"].xyxy.tolist()), (-1, 4))
        np.testing.assert_allclose(found, np.reshape(expected, (-1, 4)), atol=2)
        assert outputs["motion"] is bool(expected)


@pytest.mark.parametrize("zone", [[[0, 0], [160, 0], [160, 240], [0, 240]], "[[0, 0], [160, 0], [160, 240], [0, 240]]"])
def test_the_detection_zone_keeps_the_motion_inside_it(zone: Any) -> None:
    """The left half: a rectangle outside is ignored, one across its edge is cut at the edge."""
    runner = motion_step(detection_zone=zone)
    learn_background(runner)
    outputs = runner(image=frame(HISTORY, (200, 20, 260, 80)))
    assert outputs["motion"] is False and len(outputs["detections"]) == 0 and outputs["alarm"] is False
    outputs = runner(image=frame(HISTORY + 1, (20, 20, 60, 60), (120, 150, 220, 200), (200, 20, 260, 80)))
    assert outputs["motion"] is True and outputs["alarm"] is True
    np.testing.assert_allclose(sorted(outputs["detections"].xyxy.tolist()),
                               [[20, 20, 60, 60], [120, 150, 161, 200]], atol=2)


def test_the_minimum_area_counts_only_the_part_inside_the_zone() -> None:
    """Unlike the reference (area filter, then clipping): a large region with a 4 px strip inside is no motion."""
    runner = motion_step(detection_zone=[[0, 0], [160, 0], [160, 240], [0, 240]])
    learn_background(runner)
    outputs = runner(image=frame(HISTORY, (156, 100, 256, 150)))
    assert outputs["motion"] is False and len(outputs["detections"]) == 0


def test_without_suppression_the_unlearnt_first_frame_is_all_motion() -> None:
    """Why suppression is the default: on the first frame the whole image differs from the (empty) model."""
    runner = motion_step(suppress_first_detections=False)
    first = runner(image=frame(0))
    assert first["motion"] is True and first["detections"].xyxy.tolist() == [[0, 0, WIDTH, HEIGHT]]
    assert [runner(image=frame(number))["motion"] for number in (1, 2)] == [False, False]
    outputs = runner(image=frame(3, moving(100)))
    assert outputs["motion"] is True and outputs["alarm"] is True
    np.testing.assert_allclose(outputs["detections"].xyxy.tolist(), [list(moving(100))], atol=2)


def test_each_source_has_its_own_background_model() -> None:
    first = motion_step()
    learn_background(first)
    assert first(image=frame(HISTORY, moving(100)))["motion"] is True
    second = motion_step()  # another source's instance: still learning its background
    assert second(image=frame(0, moving(100)))["motion"] is False


@pytest.mark.parametrize(("zone", "message"), [
    ([[0, 0], [10, 10]], "detection_zone must be a list of at least 3 points"),
    ([[0, 0], [10, "a"], [20, 0]], "detection_zone must be a list of at least 3 points"),
    ("[[0, 0], [10", "a detection zone given as a string must be JSON"),
    (7, "detection_zone must be a list of at least 3 points"),
])
def test_a_bad_zone_from_a_selector_fails_the_frame_with_its_reason(zone: Any, message: str) -> None:
    runner = motion_step()
    inputs = {**runner.step.params, "image": frame(0), "detection_zone": zone}  # as a selector would give it
    with pytest.raises(ValueError, match=f"roboflow_core/motion_detection@v1: {message}"):
        runner.block.run(**inputs)
