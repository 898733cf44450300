"""The OCR engine's pieces on synthetic inputs: the detector's input size, DB post-processing (boxes, their growth and
scores, what is dropped), reading order, CTC decoding, the text's assembly, crops and line batches."""

import math

import cv2
import numpy as np
import pytest

from services.worker.ocr.detection import (
    DbParams,
    boxes_from_probability_map,
    detection_size,
    order_corners,
    reading_order,
    unclip_distance,
)
from services.worker.ocr.engine import assemble_text
from services.worker.ocr.recognition import Normaliser, batch_width, crop_text_line, ctc_decode, line_batch


@pytest.mark.parametrize(("height", "width", "expected"), [
    (576, 768, (576, 768)),  # vtest: under 960 on its long side, kept (its sides are multiples of 32 already)
    (1080, 1920, (544, 960)),  # the long side scaled down to 960, both sides to multiples of 32
    (48, 200, (64, 192)),  # a plate's crop: never scaled up, only rounded to multiples of 32 (1.5 rounds to 2)
    (20, 400, (32, 384)),  # a thin crop: the short side rounded up to 32 at least
    (4000, 3000, (960, 704)),  # a large image scaled down
])
def test_the_detector_s_input_size(height: int, width: int, expected: tuple[int, int]) -> None:
    size = detection_size(height, width, DbParams())
    assert size == expected and size[0] % 32 == 0 and size[1] % 32 == 0


def test_the_detector_s_input_size_with_limit_type_min() -> None:
    # RapidOCR's setting: the short side scaled up to 736, the long side then capped at max_side_len.
    assert detection_size(576, 768, DbParams(limit_side_len=736, limit_type="min")) == (736, 992)
    assert detection_size(48, 200, DbParams(limit_side_len=736, limit_type="min")) == (480, 1984)
    with pytest.raises(ValueError, match="empty image"):
        detection_size(0, 10, DbParams())


def test_corners_are_ordered_from_the_top_left_clockwise() -> None:
    shuffled = np.array([[10, 50], [100, 5], [10, 5], [100, 50]], dtype=np.float32)
    assert order_corners(shuffled).tolist() == [[10, 5], [100, 5], [100, 50], [10, 50]]


def test_the_unclip_distance_is_the_area_times_the_ratio_over_the_perimeter() -> None:
    assert unclip_distance(100, 20, 1.6) == pytest.approx(100 * 20 * 1.6 / 240)
    assert unclip_distance(0, 0, 1.6) == 0.0


def test_a_text_region_becomes_its_rectangle_grown_by_the_unclip_distance_with_its_mean_probability() -> None:
    probability = np.zeros((100, 200), dtype=np.float32)
    probability[20:40, 30:130] = 0.9  # 100 x 20 px of text

    [box] = boxes_from_probability_map(probability, 100, 200)

    # The contour (dilated by one pixel right and down) spans x 30..130, y 20..40: a 100 x 20 rectangle whose
    # score is the mean inside it (its last row and column are 0) and which grows by 100*20*1.6/240 = 13.3 px a side.
    assert box.score == pytest.approx(0.9 * 100 * 20 / (101 * 21), abs=1e-3)
    grow = unclip_distance(100, 20, 1.6)
    assert box.xyxy == pytest.approx((round(30 - grow), round(20 - grow), round(130 + grow), round(40 + grow)), abs=1)
    assert box.quad.tolist() == [[box.xyxy[0], box.xyxy[1]], [box.xyxy[2], box.xyxy[1]],
                                 [box.xyxy[2], box.xyxy[3]], [box.xyxy[0], box.xyxy[3]]]


def test_boxes_are_mapped_to_the_source_image_and_clipped_to_it() -> None:
    probability = np.zeros((100, 200), dtype=np.float32)
    probability[20:40, 30:130] = 0.9
    probability[90:100, 150:200] = 0.9  # at the bottom-right edge: its growth is clipped

    boxes = sorted(boxes_from_probability_map(probability, 300, 400), key=lambda b: b.xyxy[0])

    grow = unclip_distance(100, 20, 1.6)
    assert boxes[0].xyxy == pytest.approx((2 * (30 - grow), 3 * (20 - grow), 2 * (130 + grow), 3 * (40 + grow)), abs=3)
    assert boxes[1].xyxy[2:] == (400.0, 300.0)


def test_a_rotated_region_keeps_its_angle_and_grows_on_every_side() -> None:
    probability = np.zeros((200, 300), dtype=np.float32)
    rectangle = ((150.0, 100.0), (160.0, 30.0), 20.0)
    cv2.fillPoly(probability, [cv2.boxPoints(rectangle).astype(np.int32)], 0.95)

    [box] = boxes_from_probability_map(probability, 200, 300)

    top, side = box.quad[1] - box.quad[0], box.quad[3] - box.quad[0]
    grow = unclip_distance(160, 30, 1.6)  # 20 px: each side 40 px longer (the filled region is ~2 px larger)
    assert math.degrees(math.atan2(top[1], top[0])) == pytest.approx(20, abs=1.5)
    assert np.linalg.norm(top) == pytest.approx(160 + 2 * grow, abs=6)
    assert np.linalg.norm(side) == pytest.approx(30 + 2 * grow, abs=6)
    assert box.quad.mean(axis=0) == pytest.approx((150, 100), abs=2)


def test_faint_and_tiny_regions_are_dropped() -> None:
    probability = np.zeros((100, 200), dtype=np.float32)
    probability[10:30, 10:100] = 0.45  # above thresh 0.3 but its score is under box_thresh 0.5
    probability[60:62, 60:62] = 1.0  # 2 x 2 px (3 x 3 once dilated, still under min_size after minAreaRect)
    probability[60:80, 120:190] = 0.8

    boxes = boxes_from_probability_map(probability, 100, 200)

    assert len(boxes) == 1 and boxes[0].xyxy[0] > 100
    assert len(boxes_from_probability_map(probability, 100, 200, DbParams(box_thresh=0.3))) == 2
    assert boxes_from_probability_map(np.zeros((64, 64), dtype=np.float32), 64, 64) == []


def test_reading_order_groups_lines_top_to_bottom_each_left_to_right() -> None:
    boxes = [
        (300, 12, 400, 42),  # line 1, right (a little lower than its neighbour)
        (10, 10, 100, 40),  # line 1, left
        (10, 60, 200, 90),  # line 2
        (250, 100, 300, 125),  # line 3, right
        (50, 95, 120, 130),  # line 3, left
    ]
    assert reading_order(boxes) == [[1, 0], [2], [4, 3]]
    assert reading_order([]) == []


def test_ctc_decoding_collapses_repeats_drops_blanks_and_averages_the_kept_probabilities() -> None:
    labels = ["a", "b", "c", " "]  # classes 1..4; class 0 is the blank
    steps = [(0, 0.9), (1, 0.8), (1, 0.7), (0, 0.9), (1, 0.6), (2, 0.5), (2, 0.9), (4, 1.0)]
    probabilities = np.zeros((2, len(steps), 5), dtype=np.float32)
    for index, (label, probability) in enumerate(steps):
        probabilities[0, index] = (1 - probability) / 4
        probabilities[0, index, label] = probability
    probabilities[1, :, 0] = 1.0  # nothing but blanks

    assert ctc_decode(probabilities, labels) == [("aab ", pytest.approx((0.8 + 0.6 + 0.5 + 1.0) / 4)), ("", 0.0)]


def test_the_text_joins_a_line_s_fragments_with_spaces_and_lines_with_newlines() -> None:
    assert assemble_text(["KX", " 4821 ", "", "STOP"], [2, 2]) == "KX 4821\nSTOP"
    assert assemble_text([], []) == ""


def test_a_crop_is_the_box_s_pixels_and_a_tall_one_is_turned_a_quarter() -> None:
    image = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    wide = np.array([[20, 10], [120, 10], [120, 40], [20, 40]], dtype=np.float32)
    tall = np.array([[20, 10], [40, 10], [40, 90], [20, 90]], dtype=np.float32)

    crop = crop_text_line(image, wide)
    turned = crop_text_line(image, tall)

    assert crop.shape == (30, 100, 3) and np.array_equal(crop, image[10:40, 20:120])
    assert turned.shape == (20, 80, 3) and np.array_equal(turned, np.rot90(image[10:90, 20:40]))


def test_lines_are_resized_to_the_model_height_normalised_and_padded_on_the_right() -> None:
    short, long = np.full((24, 40, 3), 255, np.uint8), np.zeros((24, 480, 3), np.uint8)
    normalise = Normaliser("BGR", 1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

    width = batch_width([short, long], 48, 320, 3200)
    batch = line_batch([short, long], 48, width, normalise)

    assert width == 960 and batch.shape == (2, 3, 48, 960)
    assert (batch[0, :, :, :80] == 1.0).all() and (batch[0, :, :, 80:] == 0.0).all()
    assert (batch[1] == -1.0).all()
    assert batch_width([short], 48, 320, 3200) == 320  # at least the minimum width
