"""Detections transformations driven by the query language: detections_filter and detections_transformation.

``CHECKS``: the query-language checks of their literal fields, ``(block, field) -> check(value, path)``.
"""

from collections.abc import Callable
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, detections_field
from services.core.workflows.query_language import DEFAULT_OPERAND, validate_operations

FILTER = "roboflow_core/detections_filter@v1"
TRANSFORMATION = "roboflow_core/detections_transformation@v1"


def _fields() -> tuple[Field, ...]:
    return (
        detections_field("predictions"),
        Field("operations", literal="list"),
        # name -> selector (or literal): the values the operations' dynamic operands read.
        Field("operations_parameters", kinds=(kinds.WILDCARD,), literal="dict", default={}, nested=True),
    )


def check_operations_parameters(value: Any, path: str) -> None:
    if isinstance(value, dict) and DEFAULT_OPERAND in value:
        raise InvalidPayloadError(
            f"field '{path}.{DEFAULT_OPERAND}': {DEFAULT_OPERAND!r} is reserved (it names the detection a "
            "DetectionsFilter looks at)"
        )


BLOCKS = (
    BlockSpec(names=(FILTER, "DetectionsFilter"), family="transformations", fields=_fields(),
              outputs={"predictions": kinds.DETECTIONS}),
    BlockSpec(names=(TRANSFORMATION, "DetectionsTransformation"), family="transformations", fields=_fields(),
              outputs={"predictions": kinds.DETECTIONS}),
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (block, field): check
    for block in (FILTER, TRANSFORMATION)
    for field, check in (("operations", validate_operations), ("operations_parameters", check_operations_parameters))
}
