"""data_aggregator@v1 over sequences of frames: outputs null until the interval closes, then the aggregates."""

from typing import Any

import pytest

from services.core.workflows import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from tests.worker.workflows.query_values import FakeClock, boxes, environment, frame, published, resolved

EMPTY = dict.fromkeys(("predicted_classes_distinct", "predicted_classes_count_distinct",
                       "predicted_classes_values_counts", "number_of_predictions_min", "number_of_predictions_max",
                       "number_of_predictions_sum"))


def build(definition: dict[str, Any], clock: FakeClock | None = None) -> tuple[Any, Any]:
    step = compile_workflow(definition).step("data_aggregation")
    return REGISTRY[step.type](step, environment(clock)), step


def aggregator(aggregation_mode: dict[str, list[str]], interval: int = 3, unit: str = "runs",
               data_operations: dict[str, Any] | None = None) -> dict[str, Any]:
    definition = published("workflow_with_data_aggregation")
    step = definition["steps"][1]
    step.update(data={"value": "$steps.model.inference_id"}, aggregation_mode=aggregation_mode,
                interval=interval, interval_unit=unit, data_operations=data_operations or {})
    return definition


def feed(block: Any, step: Any, values: list[Any]) -> list[dict[str, Any]]:
    return [block.run(**resolved(step, {"$steps.model.inference_id": value})) for value in values]


def test_published_aggregation_closes_every_six_runs() -> None:
    block, step = build(published("workflow_with_data_aggregation"))
    scenes = [[("person", 0.9)] * 2, [("car", 0.8)] * 3, [], [("person", 0.7), ("car", 0.6)], [("person", 0.5)] * 4,
              [("bicycle", 0.9)]] * 2
    outputs = []
    for number, rows in enumerate(scenes, start=1):
        detections = boxes([(0, 0, 10, 10, confidence, name) for name, confidence in rows], frame(number=number))
        outputs.append(block.run(**resolved(step, {"$steps.model.predictions": detections})))
    closed = {"predicted_classes_count_distinct": 3,
              "predicted_classes_values_counts": {"person": 7, "car": 4, "bicycle": 1},
              "number_of_predictions_min": 0, "number_of_predictions_max": 4, "number_of_predictions_sum": 12}
    for index in (5, 11):
        assert sorted(outputs[index].pop("predicted_classes_distinct")) == ["bicycle", "car", "person"]
        assert outputs[index] == closed
    assert all(output == EMPTY for index, output in enumerate(outputs) if index not in (5, 11))


@pytest.mark.parametrize(("mode", "values", "expected"), [
    ("sum", [1, 2.5, 3], 6.5),
    ("avg", [1, 2, 6], 3.0),
    ("min", [4, 2, 9], 2),
    ("max", [4, 2, 9], 9),
    ("values_difference", [4, 2, 9], 7),
    ("count", [[1, 2], 5, "ab"], 5),  # lengths of sized values, 1 for others
    ("distinct", [["a", "b"], ("b", "c"), "d"], ["a", "b", "c", "d"]),
    ("count_distinct", [["a", "b"], ["b"], "c"], 3),
    ("values_counts", [["a", "b"], ["a"], "c"], {"a": 2, "b": 1, "c": 1}),
])
def test_each_mode(mode: str, values: list[Any], expected: Any) -> None:
    block, step = build(aggregator({"value": [mode]}))
    outputs = feed(block, step, values)
    assert outputs[:2] == [{f"value_{mode}": None}] * 2
    assert outputs[2] == {f"value_{mode}": expected}


def test_data_operations_apply_before_aggregating_and_the_state_starts_afresh() -> None:
    block, step = build(aggregator({"value": ["sum", "count"]}, interval=2,
                                   data_operations={"value": [{"type": "Multiply", "other": 10}]}))
    assert feed(block, step, [1, 2, 3, 4, 5]) == [
        {"value_sum": None, "value_count": None}, {"value_sum": 30, "value_count": 2},
        {"value_sum": None, "value_count": None}, {"value_sum": 70, "value_count": 2},
        {"value_sum": None, "value_count": None}]


def test_time_intervals_follow_the_wall_clock_from_the_start() -> None:
    clock = FakeClock()
    block, step = build(aggregator({"value": ["max"]}, interval=1, unit="minutes"), clock)
    outputs = []
    for value in range(1, 8):  # a run every 20 s: closes at 60 s and 120 s
        clock.advance(20)
        outputs.append(feed(block, step, [value])[0]["value_max"])
    assert outputs == [None, None, 3, None, None, 6, None]


def test_values_a_mode_cannot_take_are_refused() -> None:
    block, step = build(aggregator({"value": ["avg", "values_difference"]}, interval=1))
    with pytest.raises(ValueError, match="avg needs numbers, got str"):
        feed(block, step, ["x"])
    block, step = build(aggregator({"value": ["distinct"]}, interval=1))
    with pytest.raises(ValueError, match="distinct cannot count a dict value"):
        feed(block, step, [[{"a": 1}]])


def test_state_is_per_instance() -> None:
    definition = aggregator({"value": ["sum"]}, interval=2)
    (first, step), (second, _) = build(definition), build(definition)
    assert feed(first, step, [1]) == [{"value_sum": None}]
    assert feed(second, step, [10, 20]) == [{"value_sum": None}, {"value_sum": 30}]
    assert feed(first, step, [2]) == [{"value_sum": 3}]
