"""Formatter blocks: property_definition, expression (switch-case), csv_formatter and
first_non_empty_or_default.

``CHECKS``: the checks of their literal fields (the query language's, mostly), ``(block, field) -> check(value, path)``.
"""

from collections.abc import Callable
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field
from services.core.workflows.query_language import validate_operations, validate_operations_map, validate_switch

PROPERTY_DEFINITION = "roboflow_core/property_definition@v1"
EXPRESSION = "roboflow_core/expression@v1"
CSV_FORMATTER = "roboflow_core/csv_formatter@v1"
FIRST_NON_EMPTY = "roboflow_core/first_non_empty_or_default@v1"
CSV_TIMESTAMP = "timestamp"  # the column csv_formatter adds itself (reserved)


def check_no_timestamp_column(value: Any, path: str) -> None:
    if isinstance(value, dict) and CSV_TIMESTAMP in value:
        raise InvalidPayloadError(f"field '{path}.{CSV_TIMESTAMP}': the column name {CSV_TIMESTAMP!r} is reserved")


def check_not_empty(value: Any, path: str) -> None:
    if isinstance(value, list) and not value:
        raise InvalidPayloadError(f"field '{path}': expected a list of at least one selector")


def check_columns_operations(value: Any, path: str) -> None:
    check_no_timestamp_column(value, path)
    validate_operations_map(value, path)


BLOCKS = (
    BlockSpec(
        names=(PROPERTY_DEFINITION, "PropertyDefinition", "PropertyExtraction"),
        family="formatters",
        fields=(
            Field("data", kinds=(kinds.WILDCARD,), literal=None),
            Field("operations", literal="list"),
        ),
        outputs={"output": (kinds.WILDCARD,)},
    ),
    BlockSpec(
        names=(EXPRESSION, "Expression"),
        family="formatters",
        fields=(
            Field("data", kinds=(kinds.WILDCARD,), literal="dict", nested=True),
            Field("data_operations", literal="dict", default={}),
            Field("switch", literal="dict"),
        ),
        outputs={"output": (kinds.WILDCARD,)},
    ),
    BlockSpec(
        names=(CSV_FORMATTER,),
        family="formatters",
        fields=(
            # column -> selector or literal (str, number, bool)
            Field("columns_data", kinds=(kinds.WILDCARD,), literal="dict", nested=True),
            Field("columns_operations", literal="dict", default={}),
        ),
        outputs={"csv_content": (kinds.STRING,)},
    ),
    BlockSpec(
        names=(FIRST_NON_EMPTY, "FirstNonEmptyOrDefault"),
        family="formatters",
        fields=(
            # selectors in priority order (a list of them, never one alone: the manifest's List[Selector()]);
            # the first that is not null on a frame wins, else ``default``
            Field("data", literal="list", nested=True),
            Field("default", default=None),
        ),
        outputs={"output": (kinds.WILDCARD,)},
        accepts_empty=True,
    ),
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (PROPERTY_DEFINITION, "operations"): validate_operations,
    (EXPRESSION, "data_operations"): validate_operations_map,
    (EXPRESSION, "switch"): validate_switch,
    (CSV_FORMATTER, "columns_data"): check_no_timestamp_column,
    (CSV_FORMATTER, "columns_operations"): check_columns_operations,
    (FIRST_NON_EMPTY, "data"): check_not_empty,
}
