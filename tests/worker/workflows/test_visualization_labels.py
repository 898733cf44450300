"""The label texts of label_visualization, option by option (the reference's strings), and the automatic size."""

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows.blocks.visualization.labels import adaptive_text_scale, label_texts
from services.worker.workflows.values import CLASS_NAME, TIME_IN_ZONE


def _detections(tracker_ids: list[int] | None = None, **data: list[object]) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[10, 20, 110, 70], [0.5, 0.5, 31.9, 12.2], [300, 200, 340, 290]], dtype=np.float32),
        confidence=np.array([0.875, 0.5, 0.04], dtype=np.float32),
        class_id=np.array([0, 2, 0]),
        tracker_id=None if tracker_ids is None else np.array(tracker_ids),
        data={CLASS_NAME: np.array(["person", "car", "person"], dtype=object),
              **{key: np.array(values, dtype=object) for key, values in data.items()}},
    )


@pytest.mark.parametrize(("text", "expected"), [
    ("Class", ["person", "car", "person"]),
    ("Confidence", ["0.88", "0.50", "0.04"]),
    ("Class and Confidence", ["person 0.88", "car 0.50", "person 0.04"]),
    ("Index", ["0", "1", "2"]),
    ("Dimensions", ["60, 45 100x50", "16, 6 31x11", "320, 245 40x90"]),
    ("Area", ["5000", "367", "3600"]),  # 31.4 x 11.7 = 367.4
    ("Tracker Id", ["No Tracker ID"] * 3),
    ("Time In Zone", ["In zone: N/A"] * 3),
    ("Area (mask)", ["Area (mask): N/A"] * 3),
])
def test_each_text_option(text: str, expected: list[str]) -> None:
    assert label_texts(_detections(), text) == expected


def test_tracker_ids_time_in_zone_and_measured_areas() -> None:
    found = _detections(tracker_ids=[4, 17, 5], time_in_zone=[0.0, 1.23456, 12.5],
                        area_px=[12.0, None, 7.125], area_converted=[0.5, 1.0, None])
    assert label_texts(found, "Tracker Id") == ["4", "17", "5"]
    # As the reference: a time of 0 (the first frame in the zone) reads N/A.
    assert label_texts(found, "Time In Zone") == ["In zone: N/A", "In zone: 1.23s", "In zone: 12.5s"]
    assert label_texts(found, "Area (mask)") == ["Area (mask): 12.00", "Area (mask): N/A", "Area (mask): 7.12"]
    assert label_texts(found, "Area (converted)") == ["Area (conv): 0.50", "Area (conv): 1.00", "Area (conv): N/A"]
    assert TIME_IN_ZONE == "time_in_zone"


def test_another_text_names_a_detection_field() -> None:
    found = _detections(colour=["red", "", None])
    assert label_texts(found, "colour") == ["red", "", ""]
    with pytest.raises(ValueError, match="invalid label text 'Colour'"):
        label_texts(found, "Colour")


def test_without_class_names_the_class_id_is_the_class() -> None:
    found = _detections()
    found.data = {}
    assert label_texts(found, "Class and Confidence") == ["0 0.88", "2 0.50", "0 0.04"]


def test_a_missing_confidence_shows_the_class_alone() -> None:
    found = _detections()
    found.confidence = np.array([0.5, np.nan, 0.25], dtype=np.float32)
    assert label_texts(found, "Class and Confidence") == ["person 0.50", "car", "person 0.25"]


def test_no_detections_no_labels() -> None:
    empty = sv.Detections.empty()
    for text in ("Class", "Confidence", "Class and Confidence", "Index", "Dimensions", "Area", "Tracker Id"):
        assert label_texts(empty, text) == []


@pytest.mark.parametrize(("height", "width", "scale", "mode", "expected"), [
    (576, 768, 1.0, "Manual", 1.0),
    (1080, 1920, 0.7, "Automatic", 0.7),
    (576, 768, 1.0, "Automatic", 576 / 1080),
    (2160, 3840, 0.7, "Automatic", 1.4),
    (100, 100, 1.0, "Automatic", 0.3),  # never smaller than 0.3
    (8000, 8000, 1.0, "Automatic", 5.0),  # nor larger than 5
])
def test_automatic_text_scale(height: int, width: int, scale: float, mode: str, expected: float) -> None:
    assert adaptive_text_scale(height, width, scale, mode) == pytest.approx(expected)


def test_an_unknown_size_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="text_size_mode"):
        adaptive_text_scale(576, 768, 1.0, "Auto")
