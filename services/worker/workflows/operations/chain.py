"""Applies a chain of operations to a value, one after the other, by their ``type``.

Most operations are plain functions of (value, definition, context); the two compound ones nest:
SequenceApply runs a chain on every element, DetectionsFilter evaluates a statement per detection
with the detection bound to ``_``. A failure names its place in the chain, e.g.
``operations[1] (DetectionsPropertyExtract): expected detections, got str 'x'``.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from services.core.workflows.query_language import DEFAULT_OPERAND
from services.worker.workflows.operations import (
    classification,
    detection,
    detections,
    images,
    scalars,
    sequences,
    statements,
)
from services.worker.workflows.operations.base import Context, QueryLanguageError, describe

Handler = Callable[[Any, Mapping[str, Any], Context], Any]


def apply_operations(value: Any, operations: list[dict[str, Any]],
                     global_parameters: dict[str, Any] | None = None) -> Any:
    """``value`` after every operation of ``operations`` (``global_parameters``: names they may read)."""
    return apply(value, operations, Context("operations", global_parameters or {}))


def apply(value: Any, operations: Any, context: Context) -> Any:
    if not isinstance(operations, list):
        raise context.fail(f"expected a list of operations, got {describe(operations)}")
    for index, operation in enumerate(operations):
        value = _apply_one(value, operation, context.at(f"[{index}]"))
    return value


def _apply_one(value: Any, operation: Any, context: Context) -> Any:
    kind = operation.get("type") if isinstance(operation, Mapping) else None
    handler = HANDLERS.get(kind) if isinstance(kind, str) else None
    if handler is None or not isinstance(kind, str):
        raise context.fail(f"unknown operation {kind!r}")
    context = context.at("", kind)
    try:
        return handler(value, operation, context)
    except QueryLanguageError:
        raise
    except Exception as exc:  # a malformed definition or an unexpected value: this step fails, named
        raise context.fail(f"{type(exc).__name__}: {exc}") from exc


def _sequence_apply(value: Any, operation: Mapping[str, Any], context: Context) -> list[Any]:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise context.fail(f"expected a sequence, got {describe(value)}")
    nested = context.at(".operations")
    return [apply(item, operation["operations"], nested) for item in value]


def _detections_filter(value: Any, operation: Mapping[str, Any], context: Context) -> Any:
    found = detections.detections_of(value, context)
    condition = operation["filter_operation"]
    nested = context.at(".filter_operation")
    keep = [
        statements.evaluate(condition, nested.with_parameters({**context.parameters, DEFAULT_OPERAND: item}))
        for item in found
    ]
    return detections.take(found, np.array(keep, dtype=bool))


HANDLERS: dict[str, Handler] = {
    "StringToLowerCase": scalars.to_lower,
    "StringToUpperCase": scalars.to_upper,
    "LookupTable": scalars.lookup,
    "ToNumber": scalars.to_number,
    "NumberRound": scalars.round_number,
    "SequenceMap": sequences.sequence_map,
    "SequenceApply": _sequence_apply,
    "NumericSequenceAggregate": sequences.numeric_aggregate,
    "ToString": scalars.to_string,
    "ToBoolean": scalars.to_boolean,
    "StringSubSequence": scalars.sub_sequence,
    "DetectionsPropertyExtract": detections.extract_property,
    "SequenceAggregate": sequences.aggregate,
    "ExtractDetectionProperty": detection.extract_property,
    "DetectionsFilter": _detections_filter,
    "DetectionsOffset": detections.offset,
    "DetectionsShift": detections.shift,
    "DetectionsRename": detections.rename,
    "RandomNumber": scalars.random_number,
    "StringMatches": scalars.matches,
    "ExtractImageProperty": images.image_property,
    "ExtractFrameMetadata": images.frame_metadata,
    "SequenceLength": sequences.length,
    "SequenceElementsCount": sequences.elements_count,
    "SequenceJoin": sequences.join,
    "Multiply": scalars.multiply,
    "Divide": scalars.divide,
    "DetectionsSelection": detections.select,
    "SortDetections": detections.sort,
    "ClassificationPropertyExtract": classification.extract_property,
    "ConvertImageToJPEG": images.to_jpeg,
    "ConvertImageToBase64": images.to_base64,
    "DetectionsToDictionary": detections.to_dictionary,
    "ConvertDictionaryToJSON": scalars.dictionary_to_json,
    "PickDetectionsByParentClass": detections.pick_by_parent_class,
    "TimestampToISOFormat": scalars.timestamp_to_iso,
}
