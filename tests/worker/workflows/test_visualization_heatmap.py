"""heatmap_visualization on a real frame: heat at the detections' anchors as supervision draws it,
accumulated over frames, only where tracked objects move (with ignore_stationary), kept per block
instance, and a track's last position forgotten after a minute of video."""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows.values import VideoMetadata, WorkflowImage
from tests.worker.workflows.visualization_support import BOXES, Step, changed, detections, workflow_image

HEATMAP = "roboflow_core/heatmap_visualization@v1"
RADIUS = 40  # the manifest's default
BOX = np.array([[300, 330, 360, 450]], dtype=np.float32)  # bottom centre (330, 450), below BOXES
STILL = np.array([[600, 330, 660, 450]], dtype=np.float32)  # bottom centre (630, 450)


@pytest.fixture
def frame(video_frame: Callable[[str, int], np.ndarray]) -> np.ndarray:
    return video_frame("vtest.avi", 10)


def _moved(boxes: np.ndarray, dx: float) -> np.ndarray:
    return boxes + np.array([dx, 0, dx, 0], dtype=np.float32)


def _anchor(boxes: np.ndarray) -> tuple[int, int]:
    """The bottom centre of the first box (the default position)."""
    x1, _, x2, y2 = boxes[0].tolist()
    return int((x1 + x2) / 2), int(y2)


def _near(points: Sequence[tuple[int, int]], shape: tuple[int, ...], radius: float) -> np.ndarray:
    """Pixels within ``radius`` of any of ``points`` (H x W booleans)."""
    rows, columns = np.ogrid[: shape[0], : shape[1]]
    area = np.zeros(shape[:2], dtype=bool)
    for x, y in points:
        area |= (columns - x) ** 2 + (rows - y) ** 2 <= radius**2
    return area


def _heat_colour(frame: np.ndarray, drawn: np.ndarray, point: tuple[int, int], opacity: float = 0.2) -> np.ndarray:
    """The overlay's BGR colour at ``point``, recovered from the blend ``opacity * heat + (1 - opacity) * frame``."""
    x, y = point
    patch = (slice(y - 3, y + 4), slice(x - 3, x + 4))
    blended, original = drawn[patch].astype(float), frame[patch].astype(float)
    colour: np.ndarray = ((blended - (1 - opacity) * original) / opacity).mean(axis=(0, 1))
    return colour


def _video_image(frame: np.ndarray, seconds: float) -> WorkflowImage:
    """A frame of a 10 fps file ``seconds`` into it (its video time)."""
    video = VideoMetadata("vtest", round(seconds * 10), datetime(2026, 12, 3, tzinfo=UTC), fps=10.0,
                          comes_from_video_file=True)
    return WorkflowImage.frame(frame, "image.[0]", video)


def test_draws_what_supervision_draws_frame_after_frame_and_only_near_the_anchors(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step(HEATMAP, opacity=0.4, radius=30, kernel_size=15, position="CENTER")
    expected = sv.HeatMapAnnotator(position=sv.Position.CENTER, opacity=0.4, radius=30, kernel_size=15)
    for shift in (0, 5, 10):  # untracked: every detection adds heat
        found = detections(image, _moved(BOXES, shift))
        drawn = step(image=image, predictions=found)
        np.testing.assert_array_equal(drawn.image, expected.annotate(frame.copy(), found))
    difference = changed(frame, drawn.image)
    centres = [(int((x1 + x2) / 2) + shift, int((y1 + y2) / 2)) for shift in (0, 5, 10)
               for x1, y1, x2, y2 in BOXES.tolist()]
    assert difference[_near(centres, frame.shape, 5)].all()
    assert not (difference & ~_near(centres, frame.shape, 30 + 1)).any()


def test_heat_accumulates_where_detections_stay_longest(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step(HEATMAP)
    often, once = _anchor(BOX), _anchor(STILL)
    drawn = step(image=image, predictions=detections(image, np.vstack([BOX, STILL])))
    first_often, first_once = _heat_colour(frame, drawn.image, often), _heat_colour(frame, drawn.image, once)
    np.testing.assert_allclose(first_often, first_once, atol=3)  # as much heat at both: both hottest, red
    assert first_once[2] > 240 and first_once[0] < 15
    for _ in range(5):
        drawn = step(image=image, predictions=detections(image, BOX))
    hot, cooled = _heat_colour(frame, drawn.image, often), _heat_colour(frame, drawn.image, once)
    assert hot[2] > 240 and hot[0] < 15, hot  # the most heat: top_hue 0, red
    assert cooled[0] > 240 and cooled[2] < 15, cooled  # a sixth of it: towards low_hue 125, blue
    assert changed(frame, drawn.image)[once[1], once[0]]  # still drawn: heat does not fade


def test_stationary_tracks_add_no_heat_and_moving_ones_do_from_their_second_sighting(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step(HEATMAP)
    anchors = []
    for index in range(3):  # track 1 moves 100 px a frame; track 2 jitters by 3 px, under motion_threshold 25
        boxes = np.vstack([_moved(BOX, -200 + 100 * index), _moved(STILL, 3 * (index % 2))])
        anchors.append(_anchor(boxes))
        drawn = step(image=image, predictions=detections(image, boxes, tracker_ids=[1, 2]))
        if index == 0:
            np.testing.assert_array_equal(drawn.image, frame)  # first sightings are recorded, not drawn
    difference = changed(frame, drawn.image)
    assert difference[_near(anchors[1:], frame.shape, 5)].all()
    assert not (difference & ~_near(anchors[1:], frame.shape, RADIUS + 1)).any()  # nothing at the first, nor at 2


def test_slow_motion_adds_up_from_the_last_recorded_position(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step(HEATMAP)
    outputs = [step(image=image, predictions=detections(image, _moved(BOX, 10 * index), tracker_ids=[7])).image
               for index in range(7)]
    for index in (0, 1, 2):  # 10 and 20 px from the first position: not yet moving
        np.testing.assert_array_equal(outputs[index], frame)
    assert changed(frame, outputs[3])[_anchor(_moved(BOX, 30))[::-1]]  # 30 px: heat, and recorded there
    np.testing.assert_array_equal(outputs[5], outputs[3])  # 10 and 20 px from there: no new heat
    assert changed(outputs[5], outputs[6]).any()  # 30 px again


@pytest.mark.parametrize("fields", [{"ignore_stationary": False}, {}], ids=["tracked", "untracked"])
def test_without_the_motion_filter_every_detection_adds_heat(frame: np.ndarray, fields: dict[str, bool]) -> None:
    image = workflow_image(frame)
    step = Step(HEATMAP, **fields)
    tracker_ids = [5] if fields else None  # the filter needs tracker ids: untracked detections pass it
    expected = sv.HeatMapAnnotator()
    for _ in range(3):
        found = detections(image, BOX, tracker_ids=tracker_ids)
        drawn = step(image=image, predictions=found)
        np.testing.assert_array_equal(drawn.image, expected.annotate(frame.copy(), found))
    assert changed(frame, drawn.image)[_anchor(BOX)[::-1]]


def test_copy_image_false_draws_on_the_input_itself(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    copied = Step(HEATMAP)(image=image, predictions=detections(image, BOX))
    assert not np.shares_memory(copied.image, image.image) and not changed(frame, image.image).any()

    original = frame.copy()
    in_place = Step(HEATMAP, copy_image=False)(image=image, predictions=detections(image, BOX))
    assert in_place.image is image.image
    np.testing.assert_array_equal(in_place.image, copied.image)
    assert changed(original, frame)[_anchor(BOX)[::-1]]


def test_heat_and_tracks_are_per_block_instance(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    source_0, source_1 = Step(HEATMAP, source_id=0), Step(HEATMAP, source_id=1)
    for _ in range(3):
        source_0(image=image, predictions=detections(image, BOX))
    drawn = source_1(image=image, predictions=detections(image, STILL))
    assert not changed(frame, drawn.image)[_near([_anchor(BOX)], frame.shape, RADIUS + 1)].any()
    heat = _heat_colour(frame, drawn.image, _anchor(STILL))
    assert heat[2] > 240 and heat[0] < 15  # its only heat, hence its hottest (red), not cooler than source 0's

    source_0(image=image, predictions=detections(image, BOX, tracker_ids=[1]))
    seen_by_1 = source_1(image=image, predictions=detections(image, _moved(BOX, 100), tracker_ids=[1]))
    np.testing.assert_array_equal(seen_by_1.image, drawn.image)  # track 1's first sighting for source 1


def test_a_track_not_recorded_for_a_minute_of_video_is_forgotten(frame: np.ndarray) -> None:
    step = Step(HEATMAP)

    def draw(seconds: float, boxes: np.ndarray, tracker_ids: list[int]) -> np.ndarray:
        image = _video_image(frame, seconds)
        return step(image=image, predictions=detections(image, boxes, tracker_ids=tracker_ids)).image

    draw(0, BOX, [1])
    draw(30, STILL, [2])  # a cleanup: track 1 was recorded 30 s ago, kept
    assert changed(frame, draw(50, _moved(BOX, 100), [1]))[_anchor(_moved(BOX, 100))[::-1]]  # moved: heat
    before = draw(115, STILL, [2])  # a cleanup: track 1 was recorded 65 s ago, forgotten
    np.testing.assert_array_equal(draw(116, _moved(BOX, -100), [1]), before)  # a first sighting again


def test_a_bad_position_from_a_selector_fails_the_step(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    with pytest.raises(ValueError, match="invalid position 'MIDDLE'"):
        Step(HEATMAP)(image=image, predictions=detections(image, BOX, tracker_ids=[1]), position="MIDDLE")
