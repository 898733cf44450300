"""The query language's structural checks: what passes, and each refusal with its JSON path."""

import json
from pathlib import Path
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.query_language import (
    BINARY_OPERATORS,
    OPERATIONS,
    UNARY_OPERATORS,
    validate_operations,
    validate_operations_map,
    validate_statement,
    validate_switch,
)

DEFINITIONS = Path(__file__).parent / "definitions"
REFERENCE_OPERATIONS = {  # every type in the reference's entities/operations.py AllOperationsType
    "StringToLowerCase", "StringToUpperCase", "LookupTable", "ToNumber", "NumberRound", "SequenceMap", "SequenceApply",
    "NumericSequenceAggregate", "ToString", "ToBoolean", "StringSubSequence", "DetectionsPropertyExtract",
    "SequenceAggregate", "ExtractDetectionProperty", "DetectionsFilter", "DetectionsOffset", "DetectionsShift",
    "DetectionsRename", "RandomNumber", "StringMatches", "ExtractImageProperty", "ExtractFrameMetadata",
    "SequenceLength", "SequenceElementsCount", "SequenceJoin", "Multiply", "Divide", "DetectionsSelection",
    "SortDetections", "ClassificationPropertyExtract", "ConvertImageToJPEG", "ConvertImageToBase64",
    "DetectionsToDictionary", "ConvertDictionaryToJSON", "PickDetectionsByParentClass", "TimestampToISOFormat",
}
PATH = "workflow.steps[1].operations"


def refusal(check: Any, value: Any, path: str = PATH) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        check(value, path)
    return str(caught.value)


def condition(*statements: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "StatementGroup", "statements": list(statements), **extra}


def compare(left: Any, comparator: str = "==", right: Any = None) -> dict[str, Any]:
    return {"type": "BinaryStatement", "left_operand": left, "comparator": {"type": comparator},
            "right_operand": right or {"type": "StaticOperand", "value": 1}}


DYNAMIC = {"type": "DynamicOperand", "operand_name": "x"}


def test_the_vocabulary_is_the_references() -> None:
    assert set(OPERATIONS) == REFERENCE_OPERATIONS


def _query_trees(definition: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    trees: list[tuple[str, Any, Any]] = []
    for index, step in enumerate(definition["steps"]):
        path = f"workflow.steps[{index}]"
        for key, check in (("operations", validate_operations), ("data_operations", validate_operations_map),
                           ("columns_operations", validate_operations_map), ("switch", validate_switch),
                           ("condition_statement", validate_statement)):
            if key in step:
                trees.append((f"{path}.{key}", check, step[key]))
    return trees


@pytest.mark.parametrize("name", sorted(path.stem for path in DEFINITIONS.glob("*.json")))
def test_every_published_query_passes(name: str) -> None:
    trees = _query_trees(json.loads((DEFINITIONS / f"{name}.json").read_text()))
    for path, check, value in trees:
        check(value, path)


def test_every_operation_with_its_options_passes() -> None:
    validate_operations([
        {"type": "ToNumber", "cast_to": "int"}, {"type": "NumberRound", "decimal_digits": 2.0},
        {"type": "SequenceApply", "operations": [{"type": "StringSubSequence", "start": 1}]},
        {"type": "DetectionsRename", "class_map": "param", "strict": "flag", "new_classes_id_offset": 10},
        {"type": "ConvertImageToJPEG", "compression_level": 100}, {"type": "RandomNumber", "max_value": 5},
        {"type": "SortDetections", "mode": "center_y", "ascending": False, "ui_extra": "ignored"},
        {"type": "DetectionsFilter", "filter_operation": condition(compare(DYNAMIC))},
    ], PATH)


@pytest.mark.parametrize(("operations", "message"), [
    ("x", f"field '{PATH}' must be a list of operations, got str"),
    ([5], f"field '{PATH}[0]' must be an object, got int"),
    ([{"type": "SequenceLength"}, {"type": "Nope"}], f"field '{PATH}[1].type': unknown operation 'Nope'; known "
                                                     "operations: StringToLowerCase"),
    ([{"property_name": "x"}], f"field '{PATH}[0].type': unknown operation None"),
    ([{"type": "DetectionsPropertyExtract"}],
     f"field '{PATH}[0].property_name' is required by operation DetectionsPropertyExtract"),
    ([{"type": "DetectionsPropertyExtract", "property_name": "colour"}],
     f"field '{PATH}[0].property_name': expected one of 'confidence', 'class_name'"),
    ([{"type": "ToNumber", "cast_to": "complex"}], f"field '{PATH}[0].cast_to': expected one of 'int', 'float'"),
    ([{"type": "NumberRound", "decimal_digits": 1.5}], f"field '{PATH}[0].decimal_digits': expected an integer"),
    ([{"type": "Multiply", "other": "2"}], f"field '{PATH}[0].other': expected a number, got '2'"),
    ([{"type": "StringMatches", "regex": "(unclosed"}], f"field '{PATH}[0].regex': expected a valid regular"),
    ([{"type": "ConvertImageToJPEG", "compression_level": 0}], f"field '{PATH}[0].compression_level': expected an "
                                                               "integer from 1 to 100"),
    ([{"type": "SortDetections", "mode": "size", "ascending": "yes"}], f"field '{PATH}[0].ascending': expected true"),
    ([{"type": "DetectionsRename", "class_map": {"a": 1}}], f"field '{PATH}[0].class_map': expected an object"),
    ([{"type": "SequenceApply", "operations": [{"type": "ToString"}, {"type": "ToNothing"}]}],
     f"field '{PATH}[0].operations[1].type': unknown operation 'ToNothing'"),
    ([{"type": "DetectionsFilter", "filter_operation": condition(compare(DYNAMIC, "(Number) >>"))}],
     f"field '{PATH}[0].filter_operation.statements[0].comparator.type': expected one of '==', "),
    ([{"type": "DetectionsFilter", "filter_operation": compare(DYNAMIC)}],
     f"field '{PATH}[0].filter_operation.type': expected 'StatementGroup', got 'BinaryStatement'"),
])
def test_operation_refusals_name_their_path(operations: Any, message: str) -> None:
    assert message in refusal(validate_operations, operations)


@pytest.mark.parametrize(("statement", "message"), [
    (condition(), "field 'cond.statements' must be a non-empty list of statements"),
    (condition(compare(DYNAMIC), operator="xor"), "field 'cond.operator': expected 'and' or 'or', got 'xor'"),
    (condition(compare({"type": "Operand"})), "field 'cond.statements[0].left_operand.type': expected one of "
                                              "'StaticOperand', 'DynamicOperand', got 'Operand'"),
    (condition(compare({"type": "StaticOperand"})), "field 'cond.statements[0].left_operand.value' is required"),
    (condition(compare({"type": "DynamicOperand", "operand_name": 3})),
     "field 'cond.statements[0].left_operand.operand_name' must be a string"),
    (condition(compare({**DYNAMIC, "operations": [{"type": "Bad"}]})),
     "field 'cond.statements[0].left_operand.operations[0].type': unknown operation 'Bad'"),
    (condition({"type": "UnaryStatement", "operand": DYNAMIC, "operator": {"type": "IsNothing"}}),
     "field 'cond.statements[0].operator.type': expected one of 'Exists'"),
    (condition({**compare(DYNAMIC), "negate": "no"}), "field 'cond.statements[0].negate': expected true or false"),
    (condition(condition({"type": "Loose"})), "field 'cond.statements[0].statements[0].type': expected one of "
                                              "'StatementGroup', 'BinaryStatement', 'UnaryStatement', got 'Loose'"),
    ([], "field 'cond' must be an object, got list"),
])
def test_statement_refusals_name_their_path(statement: Any, message: str) -> None:
    assert message in refusal(validate_statement, statement, "cond")


def test_every_comparator_and_operator_passes() -> None:
    validate_statement(condition(
        *(compare(DYNAMIC, comparator) for comparator in BINARY_OPERATORS),
        *({"type": "UnaryStatement", "operand": DYNAMIC, "operator": {"type": o}, "negate": True}
          for o in UNARY_OPERATORS),
        operator="and",
    ), "cond")


def test_switch_refusals_name_their_path() -> None:
    case = {"type": "CaseDefinition", "condition": condition(compare(DYNAMIC)),
            "result": {"type": "StaticCaseResult", "value": "PASS"}}
    default = {"type": "DynamicCaseResult", "parameter_name": "x", "operations": [{"type": "SequenceLength"}]}
    validate_switch({"type": "CasesDefinition", "cases": [case], "default": default}, "s")
    assert "field 's.default' must be an object" in refusal(
        validate_switch, {"type": "CasesDefinition", "cases": []}, "s")
    assert "field 's.cases[0].result.value' is required" in refusal(validate_switch, {
        "type": "CasesDefinition", "cases": [{**case, "result": {"type": "StaticCaseResult"}}], "default": default},
        "s")
    assert "field 's.default.parameter_name' is required" in refusal(validate_switch, {
        "type": "CasesDefinition", "cases": [], "default": {"type": "DynamicCaseResult"}}, "s")
    assert "field 's.default.operations[0].type': unknown operation 'X'" in refusal(validate_switch, {
        "type": "CasesDefinition", "cases": [], "default": {**default, "operations": [{"type": "X"}]}}, "s")
    assert "field 's.cases[0].condition.type': expected 'StatementGroup'" in refusal(validate_switch, {
        "type": "CasesDefinition", "cases": [{**case, "condition": compare(DYNAMIC)}], "default": default}, "s")
    assert "field 's.type': expected one of 'CasesDefinition'" in refusal(validate_switch, {"cases": []}, "s")


def test_operations_maps_name_the_value() -> None:
    assert "field 'd.classes[0].type': unknown operation 'Nope'" in refusal(
        validate_operations_map, {"classes": [{"type": "Nope"}]}, "d")
    assert "field 'd' must be an object, got list" in refusal(validate_operations_map, [], "d")
