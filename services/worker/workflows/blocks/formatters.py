"""Formatter blocks: property_definition, expression (switch-case), csv_formatter, first_non_empty_or_default,
string_template and current_time; json_parser, environment_secrets_store, cache_set and cache_get (one module each
beside this one)."""

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.core.workflows.catalogue.formatters import (
    CACHE_GET,
    CACHE_SET,
    CSV_FORMATTER,
    CSV_TIMESTAMP,
    CURRENT_TIME,
    ENVIRONMENT_SECRETS_STORE,
    EXPRESSION,
    FIRST_NON_EMPTY,
    JSON_PARSER,
    PROPERTY_DEFINITION,
    STRING_TEMPLATE,
    TIMEZONES,
)
from services.core.workflows.plan import PlanStep
from services.core.workflows.string_templates import render
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory
from services.worker.workflows.blocks.cache import CacheGet, CacheSet
from services.worker.workflows.blocks.environment_secrets import EnvironmentSecretsStore
from services.worker.workflows.blocks.json_parser import JsonParser
from services.worker.workflows.blocks.vlm_parsers import VLM_BLOCKS
from services.worker.workflows.operations import apply_operations, evaluate_statement

CSV_INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell as a formula


class PropertyDefinition:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, data: Any, operations: list[dict[str, Any]]) -> dict[str, Any]:
        return {"output": apply_operations(data, operations)}


def transformed(data: Mapping[str, Any], operations: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """``data`` with each named value passed through its chain of operations."""
    result = dict(data)
    for name, chain in operations.items():
        if name not in result:
            raise ValueError(f"operations are given for {name!r}, which the data does not define")
        result[name] = apply_operations(result[name], chain)
    return result


class Expression:
    """The first case whose condition holds gives the output; else the default."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, data: dict[str, Any], data_operations: dict[str, list[dict[str, Any]]],
            switch: dict[str, Any]) -> dict[str, Any]:
        variables = transformed(data, data_operations)
        for case in switch.get("cases", []):
            if evaluate_statement(case["condition"], variables):
                return {"output": _result(case["result"], variables)}
        return {"output": _result(switch["default"], variables)}


def _result(definition: Mapping[str, Any], variables: dict[str, Any]) -> Any:
    if definition.get("type") == "StaticCaseResult":
        return definition.get("value")
    name = definition["parameter_name"]
    if name not in variables:
        raise ValueError(f"the case result reads {name!r}, which the data does not define")
    return apply_operations(variables[name], definition.get("operations") or [], variables)


class CSVFormatter:
    """One frame's row (the columns, then a ``timestamp`` column: wall clock, UTC) under its header."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._clock = env.clock

    def run(self, columns_data: dict[str, Any], columns_operations: dict[str, list[dict[str, Any]]]
            ) -> dict[str, Any]:
        row = transformed(columns_data, columns_operations)
        row[CSV_TIMESTAMP] = datetime.fromtimestamp(self._clock(), tz=UTC).isoformat()
        return {"csv_content": to_csv([row])}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows under a header of their keys, as pandas' ``to_csv(index=False)`` writes them."""
    header = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(key)) for key in header])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text.startswith(CSV_INJECTION_PREFIXES):
        return "'" + text
    return text


class FirstNonEmptyOrDefault:
    """The first of ``data`` that is not null on this frame (a branch that ran), else ``default``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, data: list[Any], default: Any = None) -> dict[str, Any]:
        return {"output": next((value for value in data if value is not None), default)}


class StringTemplate:
    """``template``'s ``{name}`` placeholders filled from ``data``, each value after its ``data_operations``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, template: Any, data: dict[str, Any], data_operations: dict[str, list[dict[str, Any]]]
            ) -> dict[str, Any]:
        if not isinstance(template, str):  # a selector may give anything
            raise ValueError(f"template must be a string, got {type(template).__name__}")
        return {"output": render(template, transformed(data, data_operations))}


class CurrentTime:
    """The wall-clock time now (``env.clock``) in one of the curated timezones: a timezone-aware datetime,
    its ISO 8601 string, and its date (YYYY-MM-DD) and time (HH:MM:SS) there."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._clock = env.clock

    def run(self, timezone: Any) -> dict[str, Any]:
        now = datetime.fromtimestamp(self._clock(), tz=zone(timezone))
        return {"timestamp": now, "iso_string": now.isoformat(), "date": now.strftime("%Y-%m-%d"),
                "time": now.strftime("%H:%M:%S")}


def zone(name: Any) -> ZoneInfo:
    """The curated timezone ``name`` (a literal was checked at INIT; a step's output is checked here)."""
    if name not in TIMEZONES:
        raise ValueError(f"timezone {name!r} is not one of the supported timezones (e.g. 'UTC', 'Europe/Berlin')")
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:
        raise ValueError(f"timezone {name!r}: no time zone data for it on this worker (install tzdata)") from exc


BLOCKS: dict[str, BlockFactory] = {
    PROPERTY_DEFINITION: PropertyDefinition,
    EXPRESSION: Expression,
    CSV_FORMATTER: CSVFormatter,
    FIRST_NON_EMPTY: FirstNonEmptyOrDefault,
    STRING_TEMPLATE: StringTemplate,
    CURRENT_TIME: CurrentTime,
    JSON_PARSER: JsonParser,
    ENVIRONMENT_SECRETS_STORE: EnvironmentSecretsStore,
    CACHE_SET: CacheSet,
    CACHE_GET: CacheGet,
    **VLM_BLOCKS,  # vlm_as_classifier, vlm_as_detector
}
