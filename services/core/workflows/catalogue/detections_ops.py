"""Detections to detections: detections_filter and detections_transformation (the query language),
per_class_confidence_filter and detections_combine.

``CHECKS``: the checks of their structured literal fields, ``(block, field) -> check(value, path)``.
"""

from collections.abc import Callable
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, detections_field, is_unit
from services.core.workflows.query_language import DEFAULT_OPERAND, validate_operations

FILTER = "roboflow_core/detections_filter@v1"
TRANSFORMATION = "roboflow_core/detections_transformation@v1"
PER_CLASS_FILTER = "roboflow_core/per_class_confidence_filter@v1"
COMBINE = "roboflow_core/detections_combine@v1"
_BOXES = (kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION)


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


def check_class_thresholds(value: Any, path: str) -> None:
    """per_class_confidence_filter: class name -> a confidence between 0 and 1."""
    for name, threshold in value.items():
        if not is_unit(threshold):
            raise InvalidPayloadError(f"field '{path}.{name}': expected a number between 0 and 1, got {threshold!r}")


BLOCKS = (
    BlockSpec(names=(FILTER, "DetectionsFilter"), family="transformations", fields=_fields(),
              outputs={"predictions": kinds.DETECTIONS}),
    BlockSpec(names=(TRANSFORMATION, "DetectionsTransformation"), family="transformations", fields=_fields(),
              outputs={"predictions": kinds.DETECTIONS}),
    BlockSpec(  # a confidence threshold per class name, default_threshold for the others
        names=(PER_CLASS_FILTER,), family="transformations",
        fields=(detections_field("predictions"),
                Field("class_thresholds", kinds=(kinds.DICTIONARY,), literal="dict"),
                Field("default_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.3)),
        outputs={"predictions": kinds.DETECTIONS}),
    BlockSpec(  # two models' detections of one image as one set
        names=(COMBINE,), family="transformations",
        fields=(Field("prediction_one", kinds=_BOXES, literal=None),
                Field("prediction_two", kinds=_BOXES, literal=None)),
        outputs={"predictions": _BOXES}),
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (block, field): check
    for block in (FILTER, TRANSFORMATION)
    for field, check in (("operations", validate_operations), ("operations_parameters", check_operations_parameters))
} | {(PER_CLASS_FILTER, "class_thresholds"): check_class_thresholds}
