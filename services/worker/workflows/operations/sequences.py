"""Operations on sequences: length, element counts, mapping, aggregation and joining."""

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from services.worker.workflows.operations.base import Context, describe

Operation = Mapping[str, Any]
MAX_JOINED_LENGTH = 1_000_000  # a joined string longer than this is refused (as the reference)
_NUMERIC: dict[str, Callable[[list[Any]], Any]] = {"min": min, "max": max, "sum": sum}


def _items(value: Any, context: Context) -> list[Any]:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise context.fail(f"expected a sequence, got {describe(value)}")
    return list(value)


def length(value: Any, operation: Operation, context: Context) -> int:
    try:
        return len(value)
    except TypeError as exc:
        raise context.fail(f"{describe(value)} has no length") from exc


def elements_count(value: Any, operation: Operation, context: Context) -> dict[str, int]:
    """``{str(element): occurrences}`` (keys are strings, as in the reference)."""
    counts: dict[str, int] = {}
    for item in _items(value, context):
        key = str(item)
        counts[key] = counts.get(key, 0) + 1
    return counts


def sequence_map(value: Any, operation: Operation, context: Context) -> list[Any]:
    table = operation["lookup_table"]
    result = []
    for item in _items(value, context):
        try:
            result.append(table[item])
        except (KeyError, TypeError) as exc:
            raise context.fail(f"{describe(item)} is not in the lookup table (keys: {list(table)})") from exc
    return result


def numeric_aggregate(value: Any, operation: Operation, context: Context) -> Any:
    items = _items(value, context)
    if not items:
        return operation.get("neutral_value")
    try:
        return _NUMERIC[operation["function"]](items)
    except (TypeError, ValueError) as exc:
        raise context.fail(f"cannot take the {operation['function']} of {describe(value)} ({exc})") from exc


def aggregate(value: Any, operation: Operation, context: Context) -> Any:
    items = _items(value, context)
    if not items:
        raise context.fail("an empty sequence cannot be aggregated")
    mode = operation["mode"]
    if mode in ("first", "last"):
        return items[0 if mode == "first" else -1]
    try:
        ranked = [item for item, _ in Counter(items).most_common()]
    except TypeError as exc:
        raise context.fail(f"elements of {describe(value)} cannot be counted ({exc})") from exc
    return ranked[0 if mode == "most_common" else -1]


def join(value: Any, operation: Operation, context: Context) -> str:
    separator = str(operation.get("separator", ", "))
    parts = [str(item) for item in _items(value, context)]
    total = sum(len(part) for part in parts) + len(separator) * max(len(parts) - 1, 0)
    if total > MAX_JOINED_LENGTH:
        raise context.fail(f"the joined string would have {total} characters, more than {MAX_JOINED_LENGTH}")
    return separator.join(parts)
