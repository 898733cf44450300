"""stitch_ocr_detections v1 and v2 through their compiled steps: character detections read as text by reading
direction, with the reference's line grouping (tolerance buckets, Otsu's word gaps, collimation), separators and
delimiter; the text serialised as a plain string; bad values from selectors failing the step."""

import json
from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.transformations_support import Step, as_frame, step_of
from tests.worker.workflows.video_steps import boxes

FRAME: WorkflowImage = as_frame(np.zeros((200, 400, 3), np.uint8))
RNG = np.random.default_rng(7)


def characters(rows: list[tuple[float, float, float, float, str]]) -> sv.Detections:
    """A character detector's detections on FRAME from ``(x1, y1, x2, y2, character)`` rows."""
    return boxes([row[:4] for row in rows], class_names=[row[4] for row in rows], on=FRAME)


def stitch(version: int = 1, **fields: Any) -> Step:
    step = {"type": f"roboflow_core/stitch_ocr_detections@v{version}", "name": "text",
            "predictions": "$steps.detect.predictions", **fields}
    if version == 2:
        step.setdefault("stitching_algorithm", "tolerance")
    step.setdefault("reading_direction", "left_to_right")
    return step_of(step)


def text(detections: sv.Detections, version: int = 1, **fields: Any) -> str:
    result = stitch(version, **fields).run(predictions=detections)
    assert set(result) == {"ocr_text"}
    return str(result["ocr_text"])


def plate(text_: str, x: float = 20, y: float = 50, width: float = 18, height: float = 30, gap: float = 6,
          jitter: float = 0.0) -> list[tuple[float, float, float, float, str]]:
    """One row of characters, left to right, each box moved by up to ``jitter`` px in x and y."""
    rows = []
    for index, character in enumerate(text_):
        dx, dy = RNG.uniform(-jitter, jitter, 2) if jitter else (0.0, 0.0)
        left = x + index * (width + gap) + dx
        rows.append((left, y + dy, left + width, y + dy + height, character))
    return rows


def shuffled(rows: list[Any]) -> list[Any]:
    return [rows[i] for i in RNG.permutation(len(rows))]


# ---------------------------------------------------------------------------- v1: the tolerance algorithm


def test_a_licence_plate_read_left_to_right_whatever_the_detection_order_and_jitter() -> None:
    detections = characters(shuffled(plate("KX4821", jitter=2.0)))
    assert [str(n) for n in detections.data["class_name"]] != list("KX4821")  # not given in reading order
    assert text(detections) == "KX4821"
    assert text(detections, tolerance=50) == "KX4821"


def test_lines_are_buckets_of_the_top_edge_rounded_to_the_tolerance() -> None:
    two_lines = characters(shuffled(plate("AB", y=20) + plate("123", y=60)))
    assert text(two_lines) == "AB\n123"
    # the reference's own case: B and D are 2 px below A and C
    rows = [(10, 0, 20, 10, "A"), (30, 2, 40, 12, "B"), (10, 20, 20, 30, "C"), (30, 22, 40, 32, "D")]
    assert text(characters(rows), tolerance=1) == "A\nB\nC\nD"
    assert text(characters(rows), tolerance=5) == "AB\nCD"
    # a bucket is a multiple of the tolerance: 14 and 16 px round to 10 and 20 (lines apart though 2 px apart)
    assert text(characters([(10, 14, 20, 24, "X"), (30, 16, 40, 26, "Y")]), tolerance=10) == "X\nY"
    assert text(characters([(10, 11, 20, 21, "X"), (30, 14, 40, 24, "Y")]), tolerance=10) == "XY"


def test_right_to_left_reverses_each_line_but_reads_lines_top_to_bottom() -> None:
    rows = plate("abc", y=20) + plate("de", y=60)
    assert text(characters(shuffled(rows)), reading_direction="right_to_left") == "cba\ned"


def test_vertical_text_reads_columns_left_to_right_top_to_bottom_or_the_other_way() -> None:
    # the reference's case: two columns of two characters, columns joined by a space
    rows = [(20, 10, 30, 20, "上"), (20, 30, 30, 40, "下"), (0, 10, 10, 20, "左"), (0, 30, 10, 40, "右")]
    assert text(characters(rows), reading_direction="vertical_top_to_bottom") == "左右 上下"
    assert text(characters(rows), reading_direction="vertical_bottom_to_top") == "下上 右左"


def test_auto_reads_wide_boxes_as_a_line_and_tall_ones_as_a_column() -> None:
    wide = characters([(10, 10, 40, 20, "ab"), (50, 10, 80, 20, "cd"), (10, 40, 40, 50, "ef")])
    assert text(wide, reading_direction="auto") == "abcd\nef"
    tall = characters([(10, 10, 20, 40, "一"), (10, 50, 20, 80, "二"), (40, 10, 50, 40, "三")])
    assert text(tall, reading_direction="auto") == "一二 三"
    square = characters([(10, 10, 20, 20, "p"), (30, 10, 40, 20, "q")])
    assert text(square, reading_direction="auto") == "p q"  # as tall as wide: vertical, one column each


def test_the_delimiter_joins_every_part_line_breaks_included_as_the_reference() -> None:
    rows = plate("AB", y=20) + plate("C", y=60)
    assert text(characters(rows), delimiter="-") == "A-B-\n-C"
    assert text(characters(plate("AB")), delimiter=" ") == "A B"


def test_no_detections_read_as_an_empty_text_and_it_serialises_as_a_string() -> None:
    nothing = characters([])
    assert text(nothing) == "" and text(nothing, reading_direction="auto") == ""
    result = stitch().run(predictions=characters(plate("KX48")))
    assert json.loads(json.dumps(serialise(result))) == {"ocr_text": "KX48"}


def test_bad_values_from_selectors_fail_the_step() -> None:
    block = stitch().block
    detections = characters(plate("AB"))
    with pytest.raises(ValueError, match="tolerance must be an integer >= 1, got 0"):
        block.run(predictions=detections, reading_direction="left_to_right", tolerance=0)
    with pytest.raises(ValueError, match="delimiter must be a string, got 3"):
        block.run(predictions=detections, reading_direction="left_to_right", delimiter=3)
    with pytest.raises(ValueError, match="reading_direction must be one of"):
        block.run(predictions=detections, reading_direction="diagonal")
    no_names = sv.Detections(xyxy=np.array([[0, 0, 10, 10]], dtype=np.float32))
    with pytest.raises(ValueError, match="needs detections with class names"):
        block.run(predictions=no_names, reading_direction="left_to_right")


# ---------------------------------------------------------------------------- v2


def test_v2_tolerance_is_v1() -> None:
    detections = characters(shuffled(plate("KX4821", jitter=2.0) + plate("AB", y=120)))
    assert text(detections, 2) == text(detections) == "KX4821\nAB"
    assert text(detections, 2, reading_direction="right_to_left", delimiter=".") == "1.2.8.4.X.K.\n.B.A"


def test_otsu_splits_words_at_the_wide_gaps_and_keeps_evenly_spaced_characters_one_word() -> None:
    # the reference's cases: characters 2 px apart, words 58 px apart
    words = [(0, 0, 10, 20, "H"), (12, 0, 22, 20, "I"), (80, 0, 90, 20, "B"), (92, 0, 102, 20, "Y"),
             (104, 0, 114, 20, "E")]
    assert text(characters(shuffled(words)), 2, stitching_algorithm="otsu") == "HI BYE"
    assert text(characters(words), 2, stitching_algorithm="otsu", reading_direction="right_to_left") == "EYB IH"
    assert text(characters(words), 2, stitching_algorithm="otsu", delimiter="-") == "H-I-B-Y-E"  # words too
    # gaps of 0.2 and 5.8 box widths: 4 histogram bins, Otsu's threshold the first bin's centre, 0.9; times 7 it is
    # above the word gap (one word), times 6 below it
    assert text(characters(words), 2, stitching_algorithm="otsu", otsu_threshold_multiplier=7.0) == "HIBYE"
    assert text(characters(words), 2, stitching_algorithm="otsu", otsu_threshold_multiplier=6.0) == "HI BYE"
    even = [(x, 0, x + 10, 20, c) for x, c in zip(range(0, 60, 12), "HELLO", strict=True)]
    assert text(characters(even), 2, stitching_algorithm="otsu") == "HELLO"


def test_otsu_groups_lines_by_centre_within_half_the_median_height() -> None:
    rows = [(0, 0, 10, 20, "A"), (12, 4, 22, 24, "B"), (0, 40, 10, 60, "C"), (12, 40, 22, 60, "D")]
    assert text(characters(shuffled(rows)), 2, stitching_algorithm="otsu") == "AB\nCD"
    columns = [(0, 0, 20, 10, "一"), (0, 12, 20, 22, "二"), (40, 0, 60, 10, "三")]
    assert text(characters(columns), 2, stitching_algorithm="otsu", reading_direction="vertical_top_to_bottom") == \
        "一二 三"
    assert text(characters(columns), 2, stitching_algorithm="otsu", reading_direction="vertical_bottom_to_top") == \
        "三 二一"


def test_collimate_follows_skewed_text_that_tolerance_buckets_cut() -> None:
    skewed = [(10, 0, 20, 10, "S"), (30, 3, 40, 13, "K"), (50, 6, 60, 16, "E"), (70, 9, 80, 19, "W")]
    assert text(characters(skewed), 2, stitching_algorithm="tolerance") == "SK\nEW"  # tops 0, 3 | 6, 9
    assert text(characters(shuffled(skewed)), 2, stitching_algorithm="collimate") == "SKEW"
    # a tolerance of -3 px: aligned within 5 - 3 = 2 px, which each 3 px step breaks
    assert text(characters(skewed), 2, stitching_algorithm="collimate", collimate_tolerance=-3) == "S\nK\nE\nW"


def test_collimate_lines_columns_and_directions() -> None:
    lines = [(10, 0, 20, 10, "H"), (30, 0, 40, 10, "I"), (10, 30, 20, 40, "B"), (30, 30, 40, 40, "Y"),
             (50, 30, 60, 40, "E")]
    assert text(characters(shuffled(lines)), 2, stitching_algorithm="collimate") == "HI\nBYE"
    assert text(characters(lines), 2, stitching_algorithm="collimate", reading_direction="right_to_left") == \
        "IH\nEYB"
    assert text(characters(lines), 2, stitching_algorithm="collimate", delimiter="-") == "H-I\nB-Y-E"
    columns = [(0, 10, 10, 20, "上"), (0, 30, 10, 40, "下"), (30, 10, 40, 20, "左"), (30, 30, 40, 40, "右")]
    assert text(characters(columns), 2, stitching_algorithm="collimate",
                reading_direction="vertical_top_to_bottom") == "上下 左右"
    assert text(characters(columns), 2, stitching_algorithm="collimate",
                reading_direction="vertical_bottom_to_top") == "右左 下上"


@pytest.mark.parametrize("algorithm", ["tolerance", "otsu", "collimate"])
@pytest.mark.parametrize("direction", ["left_to_right", "right_to_left", "vertical_top_to_bottom",
                                       "vertical_bottom_to_top", "auto"])
def test_one_character_and_none_in_every_algorithm_and_direction(algorithm: str, direction: str) -> None:
    fields = {"stitching_algorithm": algorithm, "reading_direction": direction}
    assert text(characters([(0, 0, 10, 10, "A")]), 2, **fields) == "A"
    assert text(characters([]), 2, **fields) == ""


def test_v2_bad_values_from_selectors_fail_the_step() -> None:
    block = stitch(2).block
    detections = characters(plate("AB"))
    with pytest.raises(ValueError, match="stitching_algorithm must be one of tolerance, otsu, collimate"):
        block.run(predictions=detections, stitching_algorithm="nms", reading_direction="auto")
    with pytest.raises(ValueError, match="otsu_threshold_multiplier must be a number, got 'x'"):
        block.run(predictions=detections, stitching_algorithm="otsu", reading_direction="auto",
                  otsu_threshold_multiplier="x")
    with pytest.raises(ValueError, match=r"collimate_tolerance must be an integer, got 2\.5"):
        block.run(predictions=detections, stitching_algorithm="collimate", reading_direction="auto",
                  collimate_tolerance=2.5)
