"""Catalogue entries of the query-language blocks (detections filter/transformation, property definition,
expression, csv formatter, data aggregator, flow control): published definitions compile, names and
defaults are the manifests', bad literals are refused with their JSON path."""

import json
from pathlib import Path
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE, aggregation, detections_ops, flow, formatters
from services.core.workflows.compiler import compile_workflow

DEFINITIONS = Path(__file__).parent / "definitions"
PARAMETERS: dict[str, dict[str, Any]] = {  # runtime parameters the reference's tests give these definitions
    "filtering_workflow": {"model_id": "m", "classes": ["car"]},
    "sort_detections_workflow_first": {"model_id": "m", "classes": ["car"]},
    "top_prediction_workflow": {"model_id": "m", "classes": ["car"]},
    "workflow_with_csv_formatter": {"additional_column_value": 2137},
    "workflow_with_delta_filter": {"target_directory": "/tmp/out"},
    "workflow_with_parametrised_detections_rename": {"class_map": {"a": "b"}, "strict": False},
    "workflow_with_extraction_of_classes_for_detections": {"reference": ["dog"]},
}
CHECKS = {**detections_ops.CHECKS, **formatters.CHECKS, **flow.CHECKS, **aggregation.CHECKS}


def published(name: str) -> dict[str, Any]:
    return json.loads((DEFINITIONS / f"{name}.json").read_text())  # type: ignore[no-any-return]


def with_step(step: dict[str, Any], *more: dict[str, Any]) -> dict[str, Any]:
    """A detector on the image input, then ``step`` (named "step") and ``more``."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   {"type": "WorkflowParameter", "name": "unit", "default_value": "runs"}],
        "steps": [{"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model",
                   "images": "$inputs.image", "model_id": "m"}, {"name": "step", **step}, *more],
        "outputs": [],
    }


def refusal(definition: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition)
    return str(caught.value)


@pytest.mark.parametrize("name", sorted(path.stem for path in DEFINITIONS.glob("*.json")))
def test_published_definitions_compile_and_pass_the_checks(name: str) -> None:
    definition = published(name)
    plan = compile_workflow(definition, parameters=PARAMETERS.get(name, {}))
    assert len(plan.steps) == len(definition["steps"])
    for step in plan.steps:
        for (block, field), check in CHECKS.items():
            if step.type == block:
                check(step.params[field], f"workflow.steps.{step.name}.{field}")


def test_every_check_names_a_field_of_its_block() -> None:
    for block, field in CHECKS:
        assert CATALOGUE[block].name == block and CATALOGUE[block].field(field) is not None, (block, field)


@pytest.mark.parametrize(("alias", "canonical"), [
    ("DetectionsFilter", "roboflow_core/detections_filter@v1"),
    ("DetectionsTransformation", "roboflow_core/detections_transformation@v1"),
    ("PropertyDefinition", "roboflow_core/property_definition@v1"),
    ("PropertyExtraction", "roboflow_core/property_definition@v1"),
    ("Expression", "roboflow_core/expression@v1"),
    ("ContinueIf", "roboflow_core/continue_if@v1"),
])
def test_legacy_names(alias: str, canonical: str) -> None:
    assert CATALOGUE[alias].name == canonical


def test_detections_blocks_defaults_and_kinds() -> None:
    plan = compile_workflow(with_step({"type": "DetectionsFilter", "predictions": "$steps.model.predictions",
                                       "operations": []}))
    assert plan.step("step").params == {"predictions": "$steps.model.predictions", "operations": [],
                                        "operations_parameters": {}}
    assert CATALOGUE["DetectionsFilter"].outputs == {"predictions": kinds.DETECTIONS}
    assert "gives inference_id, but the field takes" in refusal(with_step(
        {"type": "DetectionsFilter", "predictions": "$steps.model.inference_id", "operations": []}))
    assert "field 'workflow.steps[1].operations': expected a list" in refusal(with_step(
        {"type": "DetectionsTransformation", "predictions": "$steps.model.predictions", "operations": {}}))


def test_formatter_defaults() -> None:
    switch = {"type": "CasesDefinition", "cases": [], "default": {"type": "StaticCaseResult", "value": 1}}
    plan = compile_workflow(with_step(
        {"type": "Expression", "data": {"p": "$steps.model.predictions", "n": 3}, "switch": switch},
        {"type": "roboflow_core/csv_formatter@v1", "name": "csv", "columns_data": {"c": "$steps.step.output"}},
    ))
    assert plan.step("step").params == {"data": {"p": "$steps.model.predictions", "n": 3}, "data_operations": {},
                                        "switch": switch}
    assert plan.step("csv").params == {"columns_data": {"c": "$steps.step.output"}, "columns_operations": {}}
    assert "field 'workflow.steps[1].switch': expected an object" in refusal(with_step(
        {"type": "Expression", "data": {}, "switch": []}))
    assert "field 'workflow.steps[1].operations' is required" in refusal(with_step(
        {"type": "PropertyDefinition", "data": "$steps.model.predictions"}))
    assert "takes a selector of *" in refusal(with_step({"type": "PropertyDefinition", "data": 5, "operations": []}))


def test_aggregator_fields_and_its_outputs_by_parameters() -> None:
    plan = compile_workflow(with_step({"type": "roboflow_core/data_aggregator@v1",
                                       "data": {"n": "$steps.model.predictions"},
                                       "aggregation_mode": {"n": ["sum", "distinct", "values_counts"]},
                                       "interval": 5, "interval_unit": "$inputs.unit"}))
    params = plan.step("step").params
    assert params["interval_unit"] == "runs" and params["data_operations"] == {}
    assert aggregation.aggregator_outputs(params) == {
        "n_sum": (kinds.FLOAT, kinds.INTEGER), "n_distinct": (kinds.LIST_OF_VALUES,),
        "n_values_counts": (kinds.DICTIONARY,)}
    published_params = compile_workflow(published("workflow_with_data_aggregation")).step("data_aggregation").params
    assert list(aggregation.aggregator_outputs(published_params)) == [
        "predicted_classes_distinct", "predicted_classes_count_distinct", "predicted_classes_values_counts",
        "number_of_predictions_min", "number_of_predictions_max", "number_of_predictions_sum"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"interval": 0}, "field 'workflow.steps[1].interval': expected a positive integer, got 0"),
    ({"interval": 2, "interval_unit": "days"}, "field 'workflow.steps[1].interval_unit': 'days' is not one of"),
    ({"interval": 2, "aggregation_mode": "sum"}, "field 'workflow.steps[1].aggregation_mode': expected an object"),
    ({}, "field 'workflow.steps[1].interval' is required"),
])
def test_aggregator_refusals(fields: dict[str, Any], message: str) -> None:
    step = {"type": "roboflow_core/data_aggregator@v1", "data": {"n": "$steps.model.predictions"},
            "aggregation_mode": {"n": ["sum"]}, **fields}
    assert message in refusal(with_step(step))


@pytest.mark.parametrize(("block", "field", "value", "message"), [
    ("roboflow_core/data_aggregator@v1", "aggregation_mode", {"n": ["sum", "median"]},
     "field 'p.n[1]': 'median' is not one of 'sum', 'avg'"),
    ("roboflow_core/data_aggregator@v1", "aggregation_mode", {"n": "sum"}, "field 'p.n' must be a list"),
    ("roboflow_core/csv_formatter@v1", "columns_data", {"timestamp": 1}, "field 'p.timestamp': the column name "
                                                                         "'timestamp' is reserved"),
    ("roboflow_core/csv_formatter@v1", "columns_operations", {"a": [{"type": "X"}]}, "field 'p.a[0].type'"),
    ("roboflow_core/detections_filter@v1", "operations_parameters", {"_": 1}, "field 'p._': '_' is reserved"),
    ("roboflow_core/detections_filter@v1", "operations", [{"type": "X"}], "field 'p[0].type': unknown operation"),
    ("roboflow_core/expression@v1", "switch", {"type": "CasesDefinition"}, "field 'p.cases' must be a list"),
    ("roboflow_core/continue_if@v1", "condition_statement", {"type": "StatementGroup", "statements": []},
     "field 'p.statements' must be a non-empty list"),
])
def test_field_checks_refuse_with_the_path(block: str, field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        CHECKS[(block, field)](value, "p")
    assert message in str(caught.value)


def test_per_class_confidence_filter_and_detections_combine_defaults() -> None:
    plan = compile_workflow(with_step(
        {"type": "roboflow_core/per_class_confidence_filter@v1", "predictions": "$steps.model.predictions",
         "class_thresholds": {"person": 0.9, "car": 0}},
        {"type": "roboflow_core/detections_combine@v1", "name": "both", "prediction_one": "$steps.model.predictions",
         "prediction_two": "$steps.step.predictions"},
        {"type": "roboflow_core/line_counter@v2", "name": "count", "image": "$inputs.image",
         "detections": "$steps.both.predictions", "line_segment": [[0, 1], [5, 1]]}))
    assert plan.step("step").params["default_threshold"] == 0.3
    assert plan.step("both").params == {"prediction_one": "$steps.model.predictions",
                                        "prediction_two": "$steps.step.predictions"}


@pytest.mark.parametrize(("step", "message"), [
    ({"type": "roboflow_core/per_class_confidence_filter@v1", "predictions": "$steps.model.predictions",
      "class_thresholds": {"person": 1.5}}, "field 'workflow.steps[1].class_thresholds.person': expected a number"),
    ({"type": "roboflow_core/per_class_confidence_filter@v1", "predictions": "$steps.model.predictions",
      "class_thresholds": [0.5]}, "field 'workflow.steps[1].class_thresholds': expected an object"),
    ({"type": "roboflow_core/per_class_confidence_filter@v1", "predictions": "$steps.model.predictions"},
     "field 'workflow.steps[1].class_thresholds' is required"),
    ({"type": "roboflow_core/detections_combine@v1", "prediction_one": "$steps.model.predictions",
      "prediction_two": "$steps.model.inference_id"}, "field 'workflow.steps[1].prediction_two'"),
])
def test_per_class_confidence_filter_and_detections_combine_refusals(step: dict[str, Any], message: str) -> None:
    assert message in refusal(with_step(step))
