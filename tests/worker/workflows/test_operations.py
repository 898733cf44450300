"""Every query-language operation on real-looking values, against hand-computed results (see query_values)."""

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from services.core.workflows.query_language import OPERATIONS
from services.worker.workflows.operations import QueryLanguageError, apply_operations
from services.worker.workflows.operations.chain import HANDLERS
from services.worker.workflows.values import TIME_IN_ZONE, Classification
from tests.worker.workflows.query_values import boxes, frame, scene


def op(kind: str, **options: Any) -> dict[str, Any]:
    return {"type": kind, **options}


def run(value: Any, *operations: dict[str, Any], **parameters: Any) -> Any:
    return apply_operations(value, list(operations), parameters)


def failure(value: Any, *operations: dict[str, Any]) -> str:
    with pytest.raises(QueryLanguageError) as caught:
        run(value, *operations)
    return str(caught.value)


def test_every_operation_the_reference_defines_is_implemented() -> None:
    assert set(HANDLERS) == set(OPERATIONS)
    assert len(HANDLERS) == 36


# ---------------------------------------------------------------------------- detections


@pytest.mark.parametrize(("name", "expected"), [
    ("class_name", ["person", "car", "person"]),
    ("class_id", [0, 2, 0]),
    ("x_min", [10.0, 200.0, 300.0]),
    ("y_min", [20.0, 40.0, 50.0]),
    ("x_max", [50.0, 260.0, 330.0]),
    ("y_max", [100.0, 160.0, 120.0]),
    ("size", [3200.0, 7200.0, 2100.0]),
    ("center", [[30, 60], [230, 100], [315, 85]]),
    ("top_left", [[10, 20], [200, 40], [300, 50]]),
    ("top_right", [[50, 20], [260, 40], [330, 50]]),
    ("bottom_left", [[10, 100], [200, 160], [300, 120]]),
    ("bottom_right", [[50, 100], [260, 160], [330, 120]]),
    ("image_dimensions", [[576, 768]] * 3),
    ("prediction_type", ["object-detection"] * 3),
])
def test_detections_property_extract(name: str, expected: list[Any]) -> None:
    assert run(scene(), op("DetectionsPropertyExtract", property_name=name)) == expected


def test_detections_property_extract_confidence_and_tracker_ids() -> None:
    detections = scene()
    confidence = run(detections, op("DetectionsPropertyExtract", property_name="confidence"))
    assert confidence == pytest.approx([0.9, 0.75, 0.35])
    message = failure(detections, op("DetectionsPropertyExtract", property_name="tracker_id"))
    assert message == ("operations[0] (DetectionsPropertyExtract): the detections carry no tracker_id "
                       "(run a tracker first)")
    detections.tracker_id = np.array([7, 8, 9])
    assert run(detections, op("DetectionsPropertyExtract", property_name="tracker_id")) == [7, 8, 9]


def test_detections_property_extract_reads_block_added_fields_and_names_missing_ones() -> None:
    detections = scene()
    assert "carry no 'time_in_zone' field" in failure(detections, op("DetectionsPropertyExtract",
                                                                      property_name="time_in_zone"))
    detections.data[TIME_IN_ZONE] = np.array([0.0, 1.5, 3.0])
    assert run(detections, op("DetectionsPropertyExtract", property_name="time_in_zone")) == [0.0, 1.5, 3.0]
    assert run(boxes([]), op("DetectionsPropertyExtract", property_name="time_in_zone")) == []
    assert run(boxes([]), op("DetectionsPropertyExtract", property_name="center")) == []


def test_detections_offset_grows_boxes_half_each_side_and_leaves_the_input_alone() -> None:
    detections = scene()
    grown = run(detections, op("DetectionsOffset", offset_x=10, offset_y=20))
    assert grown.xyxy[0].tolist() == [5, 10, 55, 110]
    assert grown.data["class_name"].tolist() == ["person", "car", "person"]
    assert detections.xyxy[0].tolist() == [10, 20, 50, 100]


def test_detections_shift_moves_boxes() -> None:
    shifted = run(scene(), op("DetectionsShift", shift_x=5, shift_y=-5))
    assert shifted.xyxy.tolist()[1] == [205, 35, 265, 155]


@pytest.mark.parametrize(("mode", "expected_x_min"), [
    ("first", [10]), ("last", [300]), ("left_most", [10]), ("right_most", [300]), ("top_confidence", [10]),
])
def test_detections_selection(mode: str, expected_x_min: list[float]) -> None:
    selected = run(scene(), op("DetectionsSelection", mode=mode))
    assert isinstance(selected, sv.Detections)
    assert selected.xyxy[:, 0].tolist() == expected_x_min


def test_detections_selection_after_sorting_and_on_nothing() -> None:
    by_size = run(scene(), op("SortDetections", mode="size"))
    assert run(by_size, op("DetectionsSelection", mode="first")).data["class_name"].tolist() == ["person"]
    assert run(by_size, op("DetectionsSelection", mode="top_confidence")).confidence.tolist() == pytest.approx([0.9])
    empty = run(boxes([]), op("DetectionsSelection", mode="top_confidence"))
    assert len(empty) == 0 and "class_name" in empty.data


@pytest.mark.parametrize(("mode", "ascending", "expected_x_min"), [
    ("size", True, [300, 10, 200]),
    ("size", False, [200, 10, 300]),
    ("center_x", False, [300, 200, 10]),
    ("y_min", True, [10, 200, 300]),
    ("confidence", True, [300, 200, 10]),
    ("x_max", False, [300, 200, 10]),
    ("center_y", True, [10, 300, 200]),
])
def test_sort_detections(mode: str, ascending: bool, expected_x_min: list[float]) -> None:
    ordered = run(scene(), op("SortDetections", mode=mode, ascending=ascending))
    assert ordered.xyxy[:, 0].tolist() == expected_x_min
    assert len(ordered.data["detection_id"]) == 3


def test_detections_rename_strict_gives_ids_in_sorted_target_order() -> None:
    renamed = run(scene(), op("DetectionsRename", class_map={"person": "human", "car": "vehicle"}))
    assert renamed.data["class_name"].tolist() == ["human", "vehicle", "human"]
    assert renamed.class_id.tolist() == [0, 1, 0]


def test_detections_rename_non_strict_keeps_unmapped_classes_and_numbers_new_ones_from_the_offset() -> None:
    renamed = run(scene(), op("DetectionsRename", class_map={"car": "vehicle"}, strict=False))
    assert renamed.data["class_name"].tolist() == ["person", "vehicle", "person"]
    assert renamed.class_id.tolist() == [0, 1024, 0]


def test_detections_rename_reads_its_options_from_parameters() -> None:
    renamed = run(scene(), op("DetectionsRename", class_map="mapping", strict="strict"),
                  mapping={"person": "p"}, strict=False)
    assert renamed.data["class_name"].tolist() == ["p", "car", "p"]
    message = failure(scene(), op("DetectionsRename", class_map={"person": "human"}))
    assert "class(es) 'car' not found in class_map" in message
    assert "names parameter 'nowhere', which is not defined" in failure(scene(), op("DetectionsRename",
                                                                                  class_map="nowhere"))


def test_pick_detections_by_parent_class_keeps_children_whose_centre_is_inside() -> None:
    detections = boxes([(200, 40, 260, 160, 0.9, "car"), (210, 50, 230, 90, 0.8, "person"),
                        (10, 20, 50, 100, 0.7, "person"), (250, 150, 300, 200, 0.6, "bicycle")])
    picked = run(detections, op("PickDetectionsByParentClass", parent_class="car"))
    assert picked.data["class_name"].tolist() == ["car", "person"]
    assert len(run(detections, op("PickDetectionsByParentClass", parent_class="bus"))) == 0


def test_detections_to_dictionary_is_the_reference_prediction_format() -> None:
    serialised = run(scene(), op("DetectionsToDictionary"))
    assert serialised["image"] == {"width": 768, "height": 576}
    first = serialised["predictions"][0]
    assert {k: first[k] for k in ("x", "y", "width", "height", "class", "class_id")} == {
        "x": 30.0, "y": 60.0, "width": 40.0, "height": 80.0, "class": "person", "class_id": 0}


def test_extract_detection_property_of_one_detection() -> None:
    last = op("DetectionsSelection", mode="last")
    assert run(scene(), last, op("ExtractDetectionProperty", property_name="center")) == (315.0, 85.0)
    assert run(scene(), last, op("ExtractDetectionProperty", property_name="size")) == 2100.0
    assert run(scene(), last, op("ExtractDetectionProperty", property_name="class_name")) == "person"
    assert run(scene(), last, op("ExtractDetectionProperty", property_name="tracker_id")) is None
    assert run(scene(), last, op("ExtractDetectionProperty", property_name="time_in_zone")) is None
    assert "expected a single detection, got detections with 3 elements" in failure(
        scene(), op("ExtractDetectionProperty", property_name="center"))


def test_detections_operations_refuse_other_values() -> None:
    assert failure("abc", op("DetectionsOffset", offset_x=1, offset_y=1)) == (
        "operations[0] (DetectionsOffset): expected detections, got str 'abc'")


# ---------------------------------------------------------------------------- sequences


def test_sequence_operations_on_class_names() -> None:
    names = op("DetectionsPropertyExtract", property_name="class_name")
    assert run(scene(), op("SequenceLength")) == 3
    assert run(scene(), names, op("SequenceElementsCount")) == {"person": 2, "car": 1}
    assert run(scene(), names, op("SequenceMap", lookup_table={"person": 1, "car": 2})) == [1, 2, 1]
    assert run(scene(), names, op("SequenceApply", operations=[op("StringToUpperCase")])) == ["PERSON", "CAR", "PERSON"]
    assert run(scene(), names, op("SequenceJoin")) == "person, car, person"
    assert run(scene(), names, op("SequenceJoin", separator="|")) == "person|car|person"
    assert run(scene(), names, op("SequenceAggregate", mode="most_common")) == "person"
    assert run(scene(), names, op("SequenceAggregate", mode="least_common")) == "car"
    assert run(scene(), names, op("SequenceAggregate", mode="first")) == "person"
    assert run([1, 2, 3], op("SequenceAggregate", mode="last")) == 3
    assert run({"a": 1}, op("SequenceLength")) == 1


@pytest.mark.parametrize(("function", "expected"), [("sum", 12500.0), ("min", 2100.0), ("max", 7200.0)])
def test_numeric_sequence_aggregate_of_sizes(function: str, expected: float) -> None:
    sizes = op("DetectionsPropertyExtract", property_name="size")
    assert run(scene(), sizes, op("NumericSequenceAggregate", function=function)) == expected


def test_sequence_operations_edge_cases() -> None:
    assert run([], op("NumericSequenceAggregate", function="max", neutral_value=0)) == 0
    assert "an empty sequence cannot be aggregated" in failure([], op("SequenceAggregate", mode="first"))
    assert "'dog' is not in the lookup table" in failure(["dog"], op("SequenceMap", lookup_table={"cat": 1}))
    assert failure(5, op("SequenceApply", operations=[op("ToString")])) == (
        "operations[0] (SequenceApply): expected a sequence, got int 5")
    assert failure([5], op("SequenceApply", operations=[op("StringToLowerCase")])) == (
        "operations[0].operations[0] (StringToLowerCase): expected a string, got int 5")
    assert "has no length" in failure(5, op("SequenceLength"))


# ---------------------------------------------------------------------------- scalars


@pytest.mark.parametrize(("value", "operation", "expected"), [
    ("Person", op("StringToLowerCase"), "person"),
    ("Person", op("StringToUpperCase"), "PERSON"),
    ("person", op("StringSubSequence"), "perso"),  # end defaults to -1, as the reference
    ("person", op("StringSubSequence", start=1, end=3), "er"),
    ("person", op("StringMatches", regex="^pe.s"), True),
    ("person", op("StringMatches", regex="car"), False),
    ("person", op("LookupTable", lookup_table={"person": 1}), 1),
    ("3.7", op("ToNumber", cast_to="int"), 3),
    ("3.7", op("ToNumber", cast_to="float"), 3.7),
    (True, op("ToNumber", cast_to="int"), 1),
    (3.14159, op("NumberRound", decimal_digits=2), 3.14),
    (3, op("Multiply", other=2.5), 7.5),
    (7, op("Divide", other=2), 3.5),
    (5, op("ToString"), "5"),
    (0, op("ToBoolean"), False),
    (3, op("ToBoolean"), True),
    ({"a": [1, 2]}, op("ConvertDictionaryToJSON"), '{"a": [1, 2]}'),
    (datetime(2026, 12, 3, 8, 0, 1), op("TimestampToISOFormat"), "2026-12-03T08:00:01"),
])
def test_scalar_operations(value: Any, operation: dict[str, Any], expected: Any) -> None:
    assert run(value, operation) == expected


@pytest.mark.parametrize(("value", "operation", "message"), [
    (5, op("StringToUpperCase"), "operations[0] (StringToUpperCase): expected a string, got int 5"),
    ("dog", op("LookupTable", lookup_table={"cat": 1}), "str 'dog' is not in the lookup table (keys: ['cat'])"),
    ("abc", op("ToNumber", cast_to="int"), "str 'abc' cannot be cast to int"),
    (7, op("Divide", other=0), "int 7 cannot be divided by 0"),
    ("x", op("Multiply", other=None), "cannot be multiplied by None"),
    ([1], op("ConvertDictionaryToJSON"), "expected a dictionary, got list [1]"),
    ("2026", op("TimestampToISOFormat"), "expected a timestamp, got str '2026'"),
])
def test_scalar_operation_errors(value: Any, operation: dict[str, Any], message: str) -> None:
    assert message in failure(value, operation)


def test_random_number_ignores_its_input() -> None:
    assert run("anything", op("RandomNumber", min_value=2, max_value=2)) == 2
    samples = [run(None, op("RandomNumber", min_value=5, max_value=6)) for _ in range(200)]
    assert all(5 <= sample <= 6 for sample in samples) and len(set(samples)) > 100
    assert all(0 <= run(None, op("RandomNumber")) <= 1 for _ in range(20))


# ---------------------------------------------------------------------------- images and frames


@pytest.fixture
def vtest(video_frame: Callable[[str, int], np.ndarray]) -> Any:
    return frame(video_frame("vtest.avi", 10), number=11, fps=10.0)


@pytest.mark.parametrize(("name", "expected"), [
    ("size", 768 * 576), ("height", 576), ("width", 768), ("aspect_ratio", 768 / 576),
])
def test_extract_image_property(vtest: Any, name: str, expected: float) -> None:
    assert run(vtest, op("ExtractImageProperty", property_name=name)) == pytest.approx(expected)


def test_image_encodings_decode_back_to_the_frame(vtest: Any) -> None:
    jpeg = run(vtest, op("ConvertImageToJPEG", compression_level=90))
    assert isinstance(jpeg, bytes) and jpeg[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == vtest.image.shape
    assert np.abs(decoded.astype(int) - vtest.image.astype(int)).mean() < 3
    encoded = run(vtest, op("ConvertImageToBase64"))
    assert base64.b64decode(encoded)[:2] == b"\xff\xd8"
    assert "expected an image, got str 'x'" in failure("x", op("ConvertImageToBase64"))


def test_extract_frame_metadata(vtest: Any) -> None:
    assert run(vtest, op("ExtractFrameMetadata", property_name="frame_number")) == 11
    assert run(vtest, op("ExtractFrameMetadata", property_name="seconds_since_start")) == pytest.approx(1.0)
    stamp = run(vtest, op("ExtractFrameMetadata", property_name="frame_timestamp"))
    assert run(stamp, op("TimestampToISOFormat")) == "2026-12-03T08:00:01+00:00"
    no_fps = failure(frame(fps=None), op("ExtractFrameMetadata", property_name="seconds_since_start"))
    assert "does not report" in no_fps


# ---------------------------------------------------------------------------- classification


@pytest.mark.parametrize(("name", "expected"), [
    ("top_class", "dog"),
    ("top_class_confidence", pytest.approx(0.7)),
    ("top_class_confidence_single", pytest.approx(0.7)),
    ("all_classes", ["cat", "dog", "bird"]),
    ("all_confidences", pytest.approx([0.2, 0.7, 0.1])),
])
def test_classification_property_extract(name: str, expected: Any) -> None:
    result = Classification(frame(), ("cat", "dog", "bird"), np.array([0.2, 0.7, 0.1]), "inference-3")
    assert run(result, op("ClassificationPropertyExtract", property_name=name)) == expected


def test_classification_property_extract_on_the_serialised_format() -> None:
    serialised = {"top": "dog", "confidence": 0.7, "predictions": [
        {"class": "dog", "class_id": 1, "confidence": 0.7}, {"class": "cat", "class_id": 0, "confidence": 0.2}]}
    assert run(serialised, op("ClassificationPropertyExtract", property_name="top_class")) == "dog"
    assert run(serialised, op("ClassificationPropertyExtract", property_name="all_classes")) == ["dog", "cat"]
    multi_label = {"predicted_classes": ["a", "b"], "predictions": {"a": {"class_id": 1, "confidence": 0.6},
                                                                    "b": {"class_id": 0, "confidence": 0.9}}}
    assert run(multi_label, op("ClassificationPropertyExtract", property_name="top_class_confidence")) == [0.6, 0.9]
    assert run(multi_label, op("ClassificationPropertyExtract", property_name="top_class_confidence_single")) == 0.9
    assert run(multi_label, op("ClassificationPropertyExtract", property_name="all_classes")) == ["b", "a"]
    assert "expected a classification result" in failure(scene(), op("ClassificationPropertyExtract",
                                                                      property_name="top_class"))


# ---------------------------------------------------------------------------- chains


def test_a_chain_applies_in_order_and_names_where_it_fails() -> None:
    assert run(scene(), op("DetectionsPropertyExtract", property_name="class_name"), op("SequenceLength"),
               op("Multiply", other=10), op("ToString")) == "30"
    message = failure(scene(), op("SequenceLength"), op("DetectionsPropertyExtract", property_name="class_name"))
    assert message == "operations[1] (DetectionsPropertyExtract): expected detections, got int 3"
    assert failure(1, op("Nope")) == "operations[0]: unknown operation 'Nope'"
    assert failure(1, op("Multiply")) == "operations[0] (Multiply): KeyError: 'other'"
    detections = scene()
    assert run(detections) is detections
