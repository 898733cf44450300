"""Formatter blocks: property_definition, expression (switch-case) and csv_formatter.

``CHECKS``: the query-language checks of their literal fields, ``(block, field) -> check(value, path)``.
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
CSV_TIMESTAMP = "timestamp"  # the column csv_formatter adds itself (reserved)


def check_no_timestamp_column(value: Any, path: str) -> None:
    if isinstance(value, dict) and CSV_TIMESTAMP in value:
        raise InvalidPayloadError(f"field '{path}.{CSV_TIMESTAMP}': the column name {CSV_TIMESTAMP!r} is reserved")


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
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (PROPERTY_DEFINITION, "operations"): validate_operations,
    (EXPRESSION, "data_operations"): validate_operations_map,
    (EXPRESSION, "switch"): validate_switch,
    (CSV_FORMATTER, "columns_data"): check_no_timestamp_column,
    (CSV_FORMATTER, "columns_operations"): check_columns_operations,
}
