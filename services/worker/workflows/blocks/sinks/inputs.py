"""Checks of sink inputs at run time, for values that came through a selector (or a literal the
compiler can only check loosely): each returns the value or raises ``ValueError`` naming the field."""

from collections.abc import Mapping
from typing import Any


def as_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false, got {type(value).__name__}")
    return value


def as_int(value: Any, field: str, minimum: int) -> int:
    """An integer >= ``minimum``; a string of digits counts (a selector of the string kind may feed it)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum}, got {value!r}")
    return value


def as_str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {type(value).__name__}")
    return value


def as_mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{field} must be an object with string keys, got {type(value).__name__}")
    return dict(value)


def as_operations(value: Any, field: str) -> dict[str, list[dict[str, Any]]]:
    """``{name: [operation, ...]}`` where each operation is an object with a ``type``."""
    mapping = as_mapping(value, field)
    for name, chain in mapping.items():
        if not isinstance(chain, list) or not all(isinstance(op, Mapping) and "type" in op for op in chain):
            raise ValueError(f"{field}.{name} must be a list of operations (objects with a 'type')")
    return mapping


def as_addresses(value: Any, field: str, required: bool) -> list[str]:
    """One e-mail address or a non-empty list of them (None: none, when not ``required``)."""
    if value is None and not required:
        return []
    addresses = [value] if isinstance(value, str) else value
    if not isinstance(addresses, list) or not all(isinstance(item, str) and item.strip() for item in addresses):
        raise ValueError(f"{field} must be an e-mail address or a list of them, got {value!r}")
    if required and not addresses:
        raise ValueError(f"{field} must name at least one receiver")
    for address in addresses:
        if "\r" in address or "\n" in address:
            raise ValueError(f"{field} contains a line break")
    return [address.strip() for address in addresses]
