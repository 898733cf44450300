"""Conditions: every comparator and unary operator, groups, negation, operands and their errors."""

from typing import Any

import pytest

from services.core.workflows.query_language import BINARY_OPERATORS, UNARY_OPERATORS
from services.worker.workflows.operations import QueryLanguageError, apply_operations, evaluate_statement
from services.worker.workflows.operations.statements import BINARY, UNARY
from tests.worker.workflows.query_values import scene

ZONE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def static(value: Any, *operations: dict[str, Any]) -> dict[str, Any]:
    return {"type": "StaticOperand", "value": value, "operations": list(operations)}


def dynamic(name: str = "_", *operations: dict[str, Any]) -> dict[str, Any]:
    return {"type": "DynamicOperand", "operand_name": name, "operations": list(operations)}


def binary(left: Any, comparator: str, right: Any, negate: bool = False) -> dict[str, Any]:
    return {"type": "BinaryStatement", "left_operand": left, "comparator": {"type": comparator},
            "right_operand": right, "negate": negate}


def unary(operand: Any, operator: str, negate: bool = False) -> dict[str, Any]:
    return {"type": "UnaryStatement", "operand": operand, "operator": {"type": operator}, "negate": negate}


def group(*statements: dict[str, Any], operator: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"type": "StatementGroup", "statements": list(statements)}
    if operator is not None:
        found["operator"] = operator
    return found


def holds(statement: dict[str, Any], **parameters: Any) -> bool:
    return evaluate_statement(group(statement), parameters)


def failure(statement: dict[str, Any], **parameters: Any) -> str:
    with pytest.raises(QueryLanguageError) as caught:
        evaluate_statement(statement, parameters)
    return str(caught.value)


def test_every_operator_the_reference_defines_is_implemented() -> None:
    assert set(BINARY) == set(BINARY_OPERATORS)
    assert set(UNARY) == set(UNARY_OPERATORS)


@pytest.mark.parametrize(("left", "comparator", "right", "expected"), [
    (3, "==", 3, True), (3, "==", 4, False), ("a", "==", "a", True), ([1, 2], "==", [1, 2], True),
    (3, "(Number) ==", 3.0, True), (3, "!=", 4, True), (3, "(Number) !=", 3, False),
    (5, "(Number) >", 3, True), (3, "(Number) >", 3, False),
    (3, "(Number) >=", 3, True), (2, "(Number) >=", 3, False),
    (2, "(Number) <", 3, True), (3, "(Number) <", 3, False),
    (3, "(Number) <=", 3, True), (4, "(Number) <=", 3, False),
    (5, "(Number) in range", [1, 5], True), (0.5, "(Number) in range", [1, 5], False),
    ("person", "(String) startsWith", "per", True), ("person", "(String) startsWith", "son", False),
    ("person", "(String) endsWith", "son", True), ("person", "(String) endsWith", "per", False),
    ("person", "(String) contains", "rso", True), ("person", "(String) contains", "car", False),
    ("car", "in (Sequence)", ["car", "bus"], True), ("dog", "in (Sequence)", ["car", "bus"], False),
    (["dog", "car"], "any in (Sequence)", ["car", "bus"], True), (["dog"], "any in (Sequence)", ["car"], False),
    (["car", "bus"], "all in (Sequence)", ["car", "bus", "dog"], True), (["car", "x"], "all in (Sequence)",
                                                                        ["car"], False),
    ([50, 50], "(Detection) in zone", ZONE, True), ([150, 50], "(Detection) in zone", ZONE, False),
    ([100, 50], "(Detection) in zone", ZONE, False),  # on the edge: not within (as shapely)
])
def test_binary_comparators(left: Any, comparator: str, right: Any, expected: bool) -> None:
    assert holds(binary(static(left), comparator, static(right))) is expected
    assert holds(binary(static(left), comparator, static(right), negate=True)) is (not expected)


@pytest.mark.parametrize(("value", "operator", "expected"), [
    (0, "Exists", True), (None, "Exists", False), (None, "DoesNotExist", True), ("", "DoesNotExist", False),
    (True, "(Boolean) is True", True), (1, "(Boolean) is True", False), (False, "(Boolean) is False", True),
    (0, "(Boolean) is False", False), ([], "(Sequence) is empty", True), ({"a": 1}, "(Sequence) is empty", False),
    ([1], "(Sequence) is not empty", True), ("", "(Sequence) is not empty", False),
])
def test_unary_operators(value: Any, operator: str, expected: bool) -> None:
    assert holds(unary(static(value), operator)) is expected
    assert holds(unary(static(value), operator, negate=True)) is (not expected)


def test_unary_operators_on_detections() -> None:
    assert holds(unary(dynamic("predictions"), "(Sequence) is not empty"), predictions=scene())
    assert holds(unary(dynamic("predictions"), "(Sequence) is empty"), predictions=scene()[[]])


def test_groups_combine_with_and_or_defaulting_to_or() -> None:
    true, false = binary(static(1), "==", static(1)), binary(static(1), "==", static(2))
    assert evaluate_statement(group(true, false), {}) is True
    assert evaluate_statement(group(true, false, operator="and"), {}) is False
    assert evaluate_statement(group(true, group(false, true, operator="and"), operator="and"), {}) is False
    assert evaluate_statement(group(false, group(true, true, operator="and")), {}) is True


def test_groups_stop_at_the_statement_that_decides() -> None:
    broken = binary(dynamic("missing"), "==", static(1))
    assert evaluate_statement(group(binary(static(1), "==", static(2)), broken, operator="and"), {}) is False
    assert evaluate_statement(group(binary(static(1), "==", static(1)), broken), {}) is True


def test_operands_apply_their_operations_with_the_parameters() -> None:
    count = binary(dynamic("predictions", {"type": "SequenceLength"}), "(Number) >=", static(3))
    assert holds(count, predictions=scene())
    classes = binary(dynamic("predictions", {"type": "DetectionsPropertyExtract", "property_name": "class_name"}),
                     "any in (Sequence)", dynamic("wanted"))
    assert holds(classes, predictions=scene(), wanted=["car"])
    assert not holds(classes, predictions=scene(), wanted=["dog"])
    renamed = static("car", {"type": "LookupTable", "lookup_table": {"car": "vehicle"}})
    assert holds(binary(renamed, "==", static("vehicle")))


def test_a_detection_filter_binds_each_detection_to_the_default_operand() -> None:
    center = {"type": "ExtractDetectionProperty", "property_name": "center"}
    in_zone = group(binary(dynamic("_", center), "(Detection) in zone", static(ZONE)))
    kept = apply_operations(scene(), [{"type": "DetectionsFilter", "filter_operation": in_zone}])
    assert kept.data["class_name"].tolist() == ["person"] and kept.xyxy[0].tolist() == [10, 20, 50, 100]
    whole = group(binary(dynamic("_"), "(Detection) in zone", static([[0, 0], [400, 0], [400, 90], [0, 90]])))
    assert len(apply_operations(scene(), [{"type": "DetectionsFilter", "filter_operation": whole}])) == 2


def test_filter_on_class_and_confidence_with_parameters() -> None:
    condition = group(
        binary(dynamic("_", {"type": "ExtractDetectionProperty", "property_name": "class_name"}),
               "in (Sequence)", dynamic("classes")),
        binary(dynamic("_", {"type": "ExtractDetectionProperty", "property_name": "confidence"}),
               "(Number) >=", dynamic("threshold")),
        operator="and",
    )
    kept = apply_operations(scene(), [{"type": "DetectionsFilter", "filter_operation": condition}],
                            {"classes": ["person"], "threshold": 0.5})
    assert kept.xyxy[:, 0].tolist() == [10]
    assert len(kept.data["detection_id"]) == 1


@pytest.mark.parametrize(("statement", "parameters", "message"), [
    (group(binary(dynamic("count"), "==", static(1))), {"other": 1},
     "condition.statements[0].left_operand: operand 'count' is not defined (defined: 'other')"),
    (group(binary(static("a"), "(Number) >", static(1))), {},
     "condition.statements[0] (BinaryStatement): '(Number) >' cannot compare str 'a' with int 1"),
    (group(binary(static(1), "(Number) >>", static(1))), {}, "unknown comparator '(Number) >>'"),
    (group(unary(static(5), "(Sequence) is empty")), {}, "'(Sequence) is empty' cannot test int 5"),
    (group(unary(static(5), "Maybe")), {}, "unknown operator 'Maybe'"),
    (group(), {}, "a statement group needs a non-empty list of statements"),
    (group(binary(static(1), "==", static(1)), operator="xor"), {}, "unknown group operator 'xor'"),
    ({"type": "Statement"}, {}, "condition: unknown statement 'Statement'"),
    (group(binary(static(1), "==", {"type": "Operand"})), {}, "unknown operand 'Operand'"),
    (group(binary(static(5, {"type": "StringToLowerCase"}), "==", static(1))), {},
     "left_operand.operations[0] (StringToLowerCase): expected a string, got int 5"),
    (group(binary(static(3), "(Detection) in zone", static([[0, 0], [1, 1]]))), {}, "a zone needs at least 3 points"),
    (group(binary(dynamic("p"), "(Detection) in zone", static(ZONE))), {"p": scene()},
     "condition.statements[0] (BinaryStatement): '(Detection) in zone' cannot compare Detections"),
])
def test_errors_name_where_they_happen(statement: dict[str, Any], parameters: dict[str, Any], message: str) -> None:
    assert message in failure(statement, **parameters)
