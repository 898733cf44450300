"""property_definition, expression and csv_formatter, built from published definitions, over frames."""

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from services.core.workflows import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.formatters import to_csv
from services.worker.workflows.operations import QueryLanguageError
from tests.worker.workflows.query_values import FakeClock, boxes, environment, frame, published, resolved, scene


def build(definition: dict[str, Any], name: str, clock: FakeClock | None = None, **parameters: Any) -> tuple[Any, Any]:
    step = compile_workflow(definition, parameters=parameters).step(name)
    return REGISTRY[step.type](step, environment(clock)), step


def expression(switch: dict[str, Any], data: dict[str, Any], data_operations: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    return {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model", "images": "$inputs.image",
             "model_id": "m"},
            {"type": "roboflow_core/expression@v1", "name": "expression", "data": data, "switch": switch,
             **({"data_operations": data_operations} if data_operations is not None else {})},
        ],
        "outputs": [],
    }


# ---------------------------------------------------------------------------- property_definition


def test_published_property_definitions_of_detections() -> None:
    definition = published("workflow_with_extraction_of_classes_for_detections")
    names, names_step = build(definition, "property_extraction", reference=["person"])
    count, count_step = build(definition, "instances_counter", reference=["person"])
    assert count_step.type == "roboflow_core/property_definition@v1"  # from the legacy name PropertyDefinition
    detections = "$steps.general_detection.predictions"
    assert names.run(**resolved(names_step, {detections: scene()})) == {"output": ["person", "car", "person"]}
    for number, rows in enumerate([[], [(0, 0, 5, 5, 0.5, "car")], [(0, 0, 5, 5, 0.5, "car")] * 4], start=1):
        found = boxes(rows, frame(number=number))
        assert count.run(**resolved(count_step, {detections: found})) == {"output": len(rows)}


def test_published_property_definitions_of_frames(video_frame: Callable[[str, int], np.ndarray]) -> None:
    aspect, aspect_step = build(published("workflow_with_aspect_ratio_extraction"), "property_extraction")
    timestamps = published("workflow_with_frame_timestamp_extraction")
    blocks = {name: build(timestamps, name) for name in ("frame_timestamp", "frame_number", "seconds_since_start")}
    for number in (1, 2, 11):
        image = frame(video_frame("vtest.avi", number - 1), number=number, fps=10.0)
        assert aspect.run(**resolved(aspect_step, {"$inputs.image": image})) == {"output": pytest.approx(4 / 3)}
        outputs = {name: block.run(**resolved(step, {"$inputs.image": image}))["output"]
                   for name, (block, step) in blocks.items()}
        assert outputs["frame_number"] == number
        assert outputs["seconds_since_start"] == pytest.approx((number - 1) / 10)
        assert isinstance(outputs["frame_timestamp"], datetime)


# ---------------------------------------------------------------------------- expression


def test_published_expression_pass_fail_against_a_reference() -> None:
    definition = published("workflow_with_extraction_of_classes_for_detections")
    block, step = build(definition, "expression", reference=["person", "car", "person"])
    assert step.params["data"] == {"class_names": "$steps.property_extraction.output",
                                   "reference": ["person", "car", "person"]}
    passing = resolved(step, {"$steps.property_extraction.output": ["person", "car", "person"]})
    failing = resolved(step, {"$steps.property_extraction.output": ["person"]})
    assert block.run(**passing) == {"output": "PASS"}
    assert block.run(**failing) == {"output": "FAIL"}


def test_published_expression_with_a_dynamic_default() -> None:
    definition = published("workflow_with_non_batch_condition_based_on_step_output_affecting_further_execution")
    block, step = build(definition, "input_processing_expression", some="7")
    assert block.run(**resolved(step, {})) == {"output": 7}


def test_expression_cases_in_order_data_operations_and_dynamic_results() -> None:
    def at_least(count: int, result: dict[str, Any]) -> dict[str, Any]:
        return {"type": "CaseDefinition", "result": result, "condition": {"type": "StatementGroup", "statements": [{
            "type": "BinaryStatement", "left_operand": {"type": "DynamicOperand", "operand_name": "count"},
            "comparator": {"type": "(Number) >="}, "right_operand": {"type": "StaticOperand", "value": count}}]}}

    switch = {"type": "CasesDefinition", "cases": [
        at_least(3, {"type": "StaticCaseResult", "value": "crowd"}),
        at_least(1, {"type": "DynamicCaseResult", "parameter_name": "predictions",
                     "operations": [{"type": "DetectionsPropertyExtract", "property_name": "class_name"},
                                    {"type": "SequenceJoin", "separator": "+"}]}),
    ], "default": {"type": "StaticCaseResult", "value": "nobody"}}
    definition = expression(switch, {"count": "$steps.model.predictions", "predictions": "$steps.model.predictions"},
                            {"count": [{"type": "SequenceLength"}]})
    block, step = build(definition, "expression")
    outputs = [block.run(**resolved(step, {"$steps.model.predictions": detections}))["output"]
               for detections in (scene(), boxes([(0, 0, 5, 5, 0.5, "car"), (0, 0, 5, 5, 0.4, "person")]),
                                  boxes([]))]
    assert outputs == ["crowd", "car+person", "nobody"]


def test_expression_errors() -> None:
    switch = {"type": "CasesDefinition", "cases": [], "default": {"type": "DynamicCaseResult", "parameter_name": "x"}}
    block, step = build(expression(switch, {"predictions": "$steps.model.predictions"}), "expression")
    with pytest.raises(ValueError, match="the case result reads 'x', which the data does not define"):
        block.run(**resolved(step, {"$steps.model.predictions": scene()}))
    bad = expression(switch, {"x": "$steps.model.predictions"}, {"x": [{"type": "StringToLowerCase"}]})
    block, step = build(bad, "expression")
    with pytest.raises(QueryLanguageError, match=r"operations\[0\] \(StringToLowerCase\): expected a string"):
        block.run(**resolved(step, {"$steps.model.predictions": scene()}))


# ---------------------------------------------------------------------------- csv_formatter


def test_published_csv_formatter_writes_one_row_per_frame_with_a_wall_clock_timestamp() -> None:
    clock = FakeClock(datetime(2026, 12, 3, 8, 0, 0, tzinfo=UTC).timestamp())
    block, step = build(published("workflow_with_csv_formatter"), "csv_formatter", clock, additional_column_value=2137)
    contents = []
    for number, rows in enumerate([[(0, 0, 5, 5, 0.9, "person")] * 2, [(0, 0, 5, 5, 0.9, "car")] * 3], start=1):
        contents.append(block.run(**resolved(step, {"$steps.model.predictions": boxes(rows, frame(number=number))}))
                        ["csv_content"])
        clock.advance(0.5)
    assert contents[0] == ("predicted_classes,number_of_bounding_boxes,additional_column,timestamp\n"
                           "\"['person', 'person']\",2,2137,2026-12-03T08:00:00+00:00\n")
    parsed = list(csv.DictReader(io.StringIO(contents[1])))
    assert parsed == [{"predicted_classes": "['car', 'car', 'car']", "number_of_bounding_boxes": "3",
                       "additional_column": "2137", "timestamp": "2026-12-03T08:00:00.500000+00:00"}]


def test_csv_cells_are_neutralised_against_formula_injection() -> None:
    text = to_csv([{"a": "=SUM(A1)", "b": "-1", "c": -1, "d": None, "e": 0.25, "f": "plain, with comma"}])
    assert text == "a,b,c,d,e,f\n'=SUM(A1),'-1,-1,,0.25,\"plain, with comma\"\n"
