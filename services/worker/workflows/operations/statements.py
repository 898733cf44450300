"""Evaluates query-language conditions: statement groups, binary and unary statements.

An operand is a static value or a named parameter (``DynamicOperand``; ``_`` is the detection a
DetectionsFilter is looking at), each with its own chain of operations. Groups combine with
``and`` / ``or`` and stop at the first statement that decides them (the reference evaluates every
statement, so a later statement's error fails the step even when an earlier one already decided).
"""

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.workflows.query_language import DEFAULT_OPERAND
from services.worker.workflows.operations import chain, detection
from services.worker.workflows.operations.base import Context, QueryLanguageError, describe, plain


def evaluate_statement(statement: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Whether ``statement`` holds, its dynamic operands read from ``parameters``."""
    return evaluate(statement, Context("condition", parameters))


def evaluate(statement: Any, context: Context) -> bool:
    kind = statement.get("type") if isinstance(statement, Mapping) else None
    if kind == "StatementGroup":
        return _group(statement, context.at("", kind))
    if kind == "BinaryStatement":
        return _binary(statement, context.at("", kind))
    if kind == "UnaryStatement":
        return _unary(statement, context.at("", kind))
    raise context.fail(f"unknown statement {kind!r}")


def _group(group: Mapping[str, Any], context: Context) -> bool:
    items = group.get("statements")
    if not isinstance(items, list) or not items:
        raise context.fail("a statement group needs a non-empty list of statements")
    results = (evaluate(item, context.at(f".statements[{index}]")) for index, item in enumerate(items))
    operator = group.get("operator", "or")
    if operator == "and":
        return all(results)
    if operator == "or":
        return any(results)
    raise context.fail(f"unknown group operator {operator!r}; expected 'and' or 'or'")


def _binary(statement: Mapping[str, Any], context: Context) -> bool:
    left = _operand(statement.get("left_operand"), context.at(".left_operand"))
    right = _operand(statement.get("right_operand"), context.at(".right_operand"))
    return _apply(statement, "comparator", BINARY, (left, right),
                  lambda: f"compare {describe(left)} with {describe(right)}", context)


def _unary(statement: Mapping[str, Any], context: Context) -> bool:
    operand = _operand(statement.get("operand"), context.at(".operand"))
    return _apply(statement, "operator", UNARY, (operand,), lambda: f"test {describe(operand)}", context)


def _apply(statement: Mapping[str, Any], role: str, table: Mapping[str, Callable[..., Any]], operands: tuple[Any, ...],
           doing: Callable[[], str], context: Context) -> bool:
    """The statement's ``role`` ("comparator", "operator") looked up in ``table`` and applied to
    ``operands``, negated when the statement says so; its failure names what it was doing."""
    entry = statement.get(role)
    name = entry.get("type") if isinstance(entry, Mapping) else None
    function = table.get(name) if isinstance(name, str) else None
    if function is None:
        raise context.fail(f"unknown {role} {name!r}")
    try:
        result = bool(function(*operands))
    except QueryLanguageError:
        raise
    except Exception as exc:
        raise context.fail(f"{name!r} cannot {doing()} ({exc})") from exc
    return result != bool(statement.get("negate", False))


def _operand(operand: Any, context: Context) -> Any:
    kind = operand.get("type") if isinstance(operand, Mapping) else None
    if kind == "StaticOperand":
        value = operand.get("value")
    elif kind == "DynamicOperand":
        name = operand.get("operand_name", DEFAULT_OPERAND)
        if name not in context.parameters:
            known = ", ".join(repr(key) for key in context.parameters if key != DEFAULT_OPERAND) or "none"
            raise context.fail(f"operand {name!r} is not defined (defined: {known})")
        value = context.parameters[name]
    else:
        raise context.fail(f"unknown operand {kind!r}; expected 'StaticOperand' or 'DynamicOperand'")
    return plain(chain.apply(value, operand.get("operations") or [], context.at(".operations")))


def _in_range(value: Any, bounds: Any) -> bool:
    low, high = bounds
    return bool(low <= value <= high)


def _in_zone(point: Any, zone: Any) -> bool:
    """Strictly inside the polygon (a point on its edge is out, as shapely's ``within``)."""
    if isinstance(point, sv.Detections) or (isinstance(point, tuple) and len(point) == 6):
        if isinstance(point, sv.Detections) and len(point) != 1:
            raise ValueError(f"the left operand must be a point or one detection, got {len(point)} detections")
        point = detection.center(detection.single(point, Context("zone", {})))
    polygon = np.asarray(zone, dtype=np.float32).reshape(-1, 1, 2)
    if len(polygon) < 3:
        raise ValueError(f"a zone needs at least 3 points, got {len(polygon)}")
    x, y = (float(v) for v in point)
    return cv2.pointPolygonTest(polygon, (x, y), False) > 0


def _is(expected: bool) -> Callable[[Any], bool]:
    return lambda value: value is expected


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "(Number) ==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "(Number) !=": lambda a, b: a != b,
    "(Number) >": lambda a, b: a > b,
    "(Number) >=": lambda a, b: a >= b,
    "(Number) <": lambda a, b: a < b,
    "(Number) <=": lambda a, b: a <= b,
    "(Number) in range": _in_range,
    "(String) startsWith": lambda a, b: a.startswith(b),
    "(String) endsWith": lambda a, b: a.endswith(b),
    "(String) contains": lambda a, b: b in a,
    "in (Sequence)": lambda a, b: a in b,
    "any in (Sequence)": lambda a, b: any(item in b for item in a),
    "all in (Sequence)": lambda a, b: all(item in b for item in a),
    "(Detection) in zone": _in_zone,
}

UNARY: dict[str, Callable[[Any], Any]] = {
    "Exists": lambda value: value is not None,
    "DoesNotExist": lambda value: value is None,
    "(Boolean) is True": _is(True),
    "(Boolean) is False": _is(False),
    "(Sequence) is empty": lambda value: len(value) == 0,
    "(Sequence) is not empty": lambda value: len(value) > 0,
}
