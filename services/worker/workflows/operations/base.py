"""What every query-language operation shares: its error, its evaluation context and small helpers."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


class QueryLanguageError(ValueError):
    """An operation or statement could not be applied to the value it got (the step fails on this frame)."""


@dataclass(frozen=True, slots=True)
class Context:
    """Where an operation sits (for messages) and the named values statements and operations may read."""

    path: str
    parameters: Mapping[str, Any]
    label: str = ""  # the operation or statement type at ``path``, named in messages

    def at(self, suffix: str, label: str = "") -> "Context":
        return Context(f"{self.path}{suffix}", self.parameters, label)

    def with_parameters(self, parameters: Mapping[str, Any]) -> "Context":
        return Context(self.path, parameters, self.label)

    def fail(self, message: str) -> QueryLanguageError:
        where = f"{self.path} ({self.label})" if self.label else self.path
        return QueryLanguageError(f"{where}: {message}")


def describe(value: Any, limit: int = 80) -> str:
    """A short description of a value for error messages: its type and a truncated repr."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = "<unprintable>"
    if len(text) > limit:
        text = text[:limit] + "..."
    return f"{type(value).__name__} {text}"


def plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists (so comparisons give plain booleans)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def integer(value: Any) -> int:
    """An integer option (the reference's pydantic also takes an integral float)."""
    return int(value)
