"""Operations on single values: strings, numbers, booleans, lookups, timestamps and dictionaries."""

import json
import random
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.worker.workflows.operations.base import Context, describe, integer

Operation = Mapping[str, Any]


def _string(value: Any, context: Context) -> str:
    if not isinstance(value, str):
        raise context.fail(f"expected a string, got {describe(value)}")
    return value


def to_lower(value: Any, operation: Operation, context: Context) -> str:
    return _string(value, context).lower()


def to_upper(value: Any, operation: Operation, context: Context) -> str:
    return _string(value, context).upper()


def to_string(value: Any, operation: Operation, context: Context) -> str:
    return str(value)


def to_boolean(value: Any, operation: Operation, context: Context) -> bool:
    try:
        return bool(value)
    except (TypeError, ValueError) as exc:
        raise context.fail(f"{describe(value)} has no truth value ({exc})") from exc


def sub_sequence(value: Any, operation: Operation, context: Context) -> str:
    # end defaults to -1 as in the reference: the last character is left out unless `end` is given.
    start, end = integer(operation.get("start", 0)), integer(operation.get("end", -1))
    return _string(value, context)[start:end]


def matches(value: Any, operation: Operation, context: Context) -> bool:
    return re.search(operation["regex"], _string(value, context)) is not None


def lookup(value: Any, operation: Operation, context: Context) -> Any:
    table = operation["lookup_table"]
    try:
        return table[value]
    except TypeError as exc:
        raise context.fail(f"{describe(value)} cannot be looked up in a table") from exc
    except KeyError as exc:
        raise context.fail(f"{describe(value)} is not in the lookup table (keys: {list(table)})") from exc


def to_number(value: Any, operation: Operation, context: Context) -> int | float:
    try:
        number = float(value)
        return int(number) if operation["cast_to"] == "int" else number
    except (TypeError, ValueError, OverflowError) as exc:
        raise context.fail(f"{describe(value)} cannot be cast to {operation['cast_to']}") from exc


def _arithmetic(value: Any, context: Context, what: str, fn: Any) -> Any:
    try:
        return fn()
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise context.fail(f"{describe(value)} cannot be {what} ({exc})") from exc


def round_number(value: Any, operation: Operation, context: Context) -> int | float:
    digits = integer(operation["decimal_digits"])
    return _arithmetic(value, context, f"rounded to {digits} digits", lambda: round(value, digits))  # type: ignore[no-any-return]


def multiply(value: Any, operation: Operation, context: Context) -> Any:
    other = operation["other"]
    return _arithmetic(value, context, f"multiplied by {other}", lambda: value * other)


def divide(value: Any, operation: Operation, context: Context) -> Any:
    other = operation["other"]
    return _arithmetic(value, context, f"divided by {other}", lambda: value / other)


def random_number(value: Any, operation: Operation, context: Context) -> float:
    """Ignores its input: a uniform number in [min_value, max_value] (to sample frames or predictions)."""
    low, high = float(operation.get("min_value", 0.0)), float(operation.get("max_value", 1.0))
    if low == high:
        return low
    return min(low, high) + random.random() * abs(high - low)


def timestamp_to_iso(value: Any, operation: Operation, context: Context) -> str:
    if not isinstance(value, datetime):
        raise context.fail(f"expected a timestamp, got {describe(value)}")
    return value.isoformat()


def dictionary_to_json(value: Any, operation: Operation, context: Context) -> str:
    if not isinstance(value, dict):
        raise context.fail(f"expected a dictionary, got {describe(value)}")
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise context.fail(f"the dictionary cannot be written as JSON ({exc})") from exc
