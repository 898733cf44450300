"""Zones, traces and model comparison on a real frame: the line counter's line and counts, polygon
zones, per-source trace history, and the tint of where two models disagree."""

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from services.core.errors import InvalidPayloadError
from tests.worker.workflows.visualization_support import BOXES, Step, changed, detections, inside, workflow_image

LINE_COUNTER = "roboflow_core/line_counter_visualization@v1"
POLYGON_ZONE = "roboflow_core/polygon_zone_visualization@v1"
TRACE = "roboflow_core/trace_visualization@v1"
COMPARISON = "roboflow_core/model_comparison_visualization@v1"
REFERENCE_PATH = "roboflow_core/reference_path_visualization@v1"
GREEN_5BB573 = (115, 181, 91)  # BGR


@pytest.fixture
def frame(video_frame: Callable[[str, int], np.ndarray]) -> np.ndarray:
    return video_frame("vtest.avi", 10)


def _reference_line(frame: np.ndarray, zone: Sequence[Sequence[int]], bgr: tuple[int, int, int], thickness: int,
                    opacity: float, count_in: int, count_out: int, text_scale: float = 1.0) -> np.ndarray:
    """The reference's drawing: the line on a black frame added at ``opacity``, the counts in black on white."""
    mask = cv2.line(np.zeros_like(frame), tuple(zone[0]), tuple(zone[1]), bgr, thickness)
    drawn = np.asarray(cv2.addWeighted(mask, opacity, frame, 1, 0), dtype=np.uint8)
    return sv.draw_text(drawn, f"in: {count_in}, out: {count_out}", sv.Point(*zone[0]), text_scale=text_scale,
                        background_color=sv.Color.WHITE, text_padding=0)


@pytest.mark.parametrize(("zone", "fields", "bgr", "thickness", "opacity"), [
    ([[0, 300], [768, 300]], {}, GREEN_5BB573, 2, 0.3),
    ([[60, 500], [700, -40]], {"color": "rgb(255, 0, 0)", "thickness": 9, "opacity": 0.8}, (0, 0, 255), 9, 0.8),
    ([[-50, 100], [400, 620]], {"color": "WHITE", "thickness": 4}, (255, 255, 255), 4, 0.3),
])
def test_line_counter_draws_the_line_and_the_counts(frame: np.ndarray, zone: list[list[int]], fields: dict[str, Any],
                                                    bgr: tuple[int, int, int], thickness: int, opacity: float) -> None:
    image = workflow_image(frame)
    step = Step(LINE_COUNTER, zone=zone, **fields)
    drawn = step(image=image, count_in=3, count_out=1)
    np.testing.assert_array_equal(drawn.image, _reference_line(frame, zone, bgr, thickness, opacity, 3, 1))
    assert not changed(frame, image.image).any()

    again = step(image=image, count_in=12, count_out=0)  # the same line, other counts: only the text changes
    np.testing.assert_array_equal(again.image, _reference_line(frame, zone, bgr, thickness, opacity, 12, 0))
    difference = changed(drawn.image, again.image)
    assert difference.any()
    rows, columns = np.nonzero(difference)
    assert np.abs(columns - max(zone[0][0], 0)).max() < 120 and np.abs(rows - max(zone[0][1], 0)).max() < 30


def test_line_counter_changes_nothing_off_the_line_and_text(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    drawn = Step(LINE_COUNTER, zone=[[0, 300], [768, 300]])(image=image, count_in=0, count_out=0)
    difference = changed(frame, drawn.image)
    assert difference[299:302].mean() > 0.9  # the line, 2 pixels thick (cv2: rows 299 to 301)
    assert not difference[:280].any() and not difference[320:].any()


def test_line_counter_zone_must_be_two_points(frame: np.ndarray) -> None:
    step = Step(LINE_COUNTER, zone=[[0, 300], [768, 300], [5, 5]])
    with pytest.raises(ValueError, match=r"a line zone is two points"):
        step(image=workflow_image(frame))


def _reference_zone(frame: np.ndarray, polygons: list[list[list[int]]], bgr: tuple[int, int, int],
                    opacity: float) -> np.ndarray:
    mask = cv2.fillPoly(np.zeros_like(frame), [np.array(p, dtype=np.int32) for p in polygons], bgr)
    return np.asarray(cv2.addWeighted(mask, opacity, frame, 1, 0))


@pytest.mark.parametrize(("zone", "polygons"), [
    ([[100, 100], [400, 120], [350, 400], [80, 300]], None),
    ([[[0, 0], [200, 0], [200, 150]], [[500, 300], [900, 350], [600, 700]]], "several"),
    ([[-40.7, 400.2], [300.9, 380.5], [250, 650]], "partly outside, fractional"),
])
def test_polygon_zones_are_filled_at_the_opacity(frame: np.ndarray, zone: list[Any], polygons: str | None) -> None:
    image = workflow_image(frame)
    drawn = Step(POLYGON_ZONE, zone=zone, color="#FF0000", opacity=0.5)(image=image)
    as_list = [zone] if polygons is None or polygons.startswith("partly") else zone
    truncated = [[[int(x), int(y)] for x, y in polygon] for polygon in as_list]
    np.testing.assert_array_equal(drawn.image, _reference_zone(frame, truncated, (0, 0, 255), 0.5))
    assert changed(frame, drawn.image).any()
    assert not changed(frame, image.image).any()


def test_an_empty_polygon_zone_draws_nothing(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    drawn = Step(POLYGON_ZONE, zone=[])(image=image)
    np.testing.assert_array_equal(drawn.image, frame)


@pytest.mark.parametrize(("fields", "bgr", "thickness"), [({}, GREEN_5BB573, 2),
                                                        ({"color": "#FF0000", "thickness": 5}, (0, 0, 255), 5)])
def test_the_reference_path_is_drawn_as_an_open_polyline(frame: np.ndarray, fields: dict[str, Any],
                                                          bgr: tuple[int, int, int], thickness: int) -> None:
    path = [[50, 500], [300, 300.7], [700, 250], [760, 20]]
    image = workflow_image(frame)
    drawn = Step(REFERENCE_PATH, reference_path=path, **fields)(image=image)
    expected = cv2.polylines(frame.copy(), [np.array(path).astype(np.int32)], False, bgr, thickness)
    np.testing.assert_array_equal(drawn.image, expected)
    assert not changed(frame, image.image).any()
    assert not changed(frame, drawn.image)[520:].any(), "open: nothing closes the path back to its start"


def test_the_reference_path_is_checked_at_init_and_at_run_time(frame: np.ndarray) -> None:
    with pytest.raises(InvalidPayloadError, match="a path of at least one point"):
        Step(REFERENCE_PATH, reference_path="not a path")
    step = Step(REFERENCE_PATH, reference_path=[[0, 0], [10, 10]])
    with pytest.raises(ValueError, match=r"a reference path is \[\[x, y\], ...\]"):
        step(image=workflow_image(frame), reference_path=[["a", "b"]])  # e.g. from a selector, at run time


# ----------------------------------------------------------------------------- trace


def _tracked_frames(image: Any, count: int) -> list[sv.Detections]:
    """Two objects moving right by 9 and down by 4 pixels a frame, tracks 1 and 2."""
    return [detections(image, BOXES[:2] + np.array([9, 4, 9, 4], dtype=np.float32) * index, tracker_ids=[1, 2])
            for index in range(count)]


def test_trace_follows_each_track_over_the_frames(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step(TRACE, thickness=2, trace_length=4)
    expected = sv.TraceAnnotator(color=sv.ColorPalette.DEFAULT, color_lookup=sv.ColorLookup.CLASS,
                                 position=sv.Position.CENTER, trace_length=4, thickness=2)
    for found in _tracked_frames(image, 7):
        drawn = step(image=image, predictions=found)
        np.testing.assert_array_equal(drawn.image, expected.annotate(frame.copy(), found))
    difference = changed(frame, drawn.image)
    assert difference.any() and not (difference & ~inside(BOXES[:2] + np.array([27, 12, 54, 24]), frame.shape, 2)).any()


def test_trace_history_is_per_block_instance(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    source_0, source_1 = Step(TRACE, source_id=0), Step(TRACE, source_id=1)
    frames = _tracked_frames(image, 5)
    for found in frames:
        seen_by_0 = source_0(image=image, predictions=found)
    seen_by_1 = source_1(image=image, predictions=frames[-1])  # its first frame: no path yet
    assert changed(frame, seen_by_0.image).any()
    np.testing.assert_array_equal(seen_by_1.image, frame)


def test_trace_needs_tracker_ids_but_not_on_empty_frames(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step(TRACE)
    with pytest.raises(ValueError, match="needs tracked predictions"):
        step(image=image, predictions=detections(image))
    np.testing.assert_array_equal(step(image=image, predictions=sv.Detections.empty()).image, frame)


# ----------------------------------------------------------------------------- model comparison


def _covered(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    covered = np.zeros(shape[:2], dtype=bool)
    for x1, y1, x2, y2 in boxes.astype(int).tolist():
        covered[y1:y2, x1:x2] = True
    return covered


def _reference_comparison(frame: np.ndarray, a: np.ndarray, b: np.ndarray, opacity: float,
                          colours: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """The reference's algorithm: boxes to masks, then each exclusive area blended with its colour."""
    in_a, in_b = _covered(a, frame.shape), _covered(b, frame.shape)
    drawn = frame.copy()
    for area, bgr in zip((~(in_a | in_b), in_a & ~in_b, in_b & ~in_a), colours, strict=True):
        blended = cv2.addWeighted(drawn, 1 - opacity, np.full_like(drawn, bgr), opacity, 0)
        drawn[area] = blended[area]
    return drawn


def test_model_comparison_tints_where_the_models_disagree(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    boxes_a, boxes_b = BOXES[:6], np.vstack([BOXES[3:6] + 5, BOXES[6:]])  # three overlap, a few each alone
    step = Step(COMPARISON, predictions_a="$steps.detect.predictions", predictions_b="$steps.detect.predictions")
    drawn = step(image=image, predictions_a=detections(image, boxes_a), predictions_b=detections(image, boxes_b))
    colours = (sv.Color.BLACK.as_bgr(), sv.Color.GREEN.as_bgr(), sv.Color.RED.as_bgr())  # the defaults
    np.testing.assert_array_equal(drawn.image, _reference_comparison(frame, boxes_a, boxes_b, 0.7, colours))
    difference = changed(frame, drawn.image)
    both = _covered(boxes_a, frame.shape) & _covered(boxes_b, frame.shape)
    assert both.any() and not difference[both].any()  # both models found it: left as it was
    neither = ~(_covered(boxes_a, frame.shape) | _covered(boxes_b, frame.shape))
    assert difference[neither].mean() > 0.95  # the background is darkened (but where it is black already)


def test_model_comparison_colours_are_options(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step(COMPARISON, predictions_a="$steps.detect.predictions", predictions_b="$steps.detect.predictions",
                color_a="#0000FF", color_b="bgr(0, 255, 255)", background_color="WHITE", opacity=0.3)
    empty = detections(image, BOXES[:0])
    drawn = step(image=image, predictions_a=detections(image, BOXES[:2]), predictions_b=empty)
    expected = _reference_comparison(frame, BOXES[:2], BOXES[:0], 0.3, ((255, 255, 255), (255, 0, 0), (0, 255, 255)))
    np.testing.assert_array_equal(drawn.image, expected)
    assert not changed(frame, image.image).any()
