"""The Workflows query language's vocabulary and its structural checks (no numpy: the manager runs them).

Operations (``{"type": "DetectionsPropertyExtract", "property_name": "class_name"}``) and statements
(``StatementGroup`` / ``BinaryStatement`` / ``UnaryStatement`` with static or dynamic operands) are
checked where the reference's pydantic models would refuse them: an unknown ``type``, a missing
required key, a value outside its enumeration. Unknown extra keys are ignored, as the reference does.
Every problem is an :class:`InvalidPayloadError` naming its JSON path. The worker's
``services.worker.workflows.operations`` executes what passes, using the names defined here.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.core.errors import InvalidPayloadError

DEFAULT_OPERAND = "_"  # the operand name a DetectionsFilter binds each detection to

DETECTIONS_PROPERTIES = (
    "confidence", "class_name", "x_min", "x_max", "y_min", "y_max", "size", "class_id", "center",
    "top_left", "top_right", "bottom_left", "bottom_right", "in_out", "path_deviation", "polygon",
    "time_in_zone", "tracker_id", "velocity", "speed", "smoothed_velocity", "smoothed_speed",
    "image_dimensions", "prediction_type", "keypoints_xy", "rect", "width", "height", "angle", "area_px",
    "area_converted",
)
DETECTIONS_SORT_PROPERTIES = ("confidence", "x_min", "x_max", "y_min", "y_max", "size", "center_x", "center_y")
DETECTIONS_SELECTION_MODES = ("left_most", "right_most", "top_confidence", "first", "last")
CLASSIFICATION_PROPERTIES = (
    "top_class", "top_class_confidence", "top_class_confidence_single", "all_classes", "all_confidences",
)
IMAGE_PROPERTIES = ("size", "height", "width", "aspect_ratio")
FRAME_METADATA_PROPERTIES = ("frame_number", "frame_timestamp", "seconds_since_start")
NUMBER_CASTS = ("int", "float")
NUMERIC_AGGREGATIONS = ("min", "max", "sum")
SEQUENCE_AGGREGATIONS = ("first", "last", "most_common", "least_common")
GROUP_OPERATORS = ("and", "or")
BINARY_OPERATORS = (
    "==", "(Number) ==", "!=", "(Number) !=", "(Number) >", "(Number) >=", "(Number) <", "(Number) <=",
    "(Number) in range", "(String) startsWith", "(String) endsWith", "(String) contains", "in (Sequence)",
    "any in (Sequence)", "all in (Sequence)", "(Detection) in zone",
)
UNARY_OPERATORS = (
    "Exists", "DoesNotExist", "(Boolean) is True", "(Boolean) is False", "(Sequence) is empty",
    "(Sequence) is not empty",
)


@dataclass(frozen=True, slots=True)
class Param:
    """One key of an operation: whether it must be given and what its value must be."""

    check: Callable[[Any], bool]
    expected: str
    required: bool = True


def _is_int(value: Any) -> bool:
    # pydantic (the reference) also takes an integral float for an int field
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _regex(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        re.compile(value)
    except re.error:
        return False
    return True


def _one_of(options: tuple[str, ...], required: bool = True) -> Param:
    return Param(lambda value: value in options, f"one of {', '.join(map(repr, options))}", required)


_INT = Param(_is_int, "an integer")
_NUMBER = Param(_is_number, "a number")
_DICT = Param(lambda value: isinstance(value, dict), "an object")
_LIST = Param(lambda value: isinstance(value, list), "a list of operations")
_ANY_OPTIONAL = Param(lambda value: True, "any value", required=False)

# Every operation type the reference defines, with its keys (besides "type").
OPERATIONS: Mapping[str, Mapping[str, Param]] = {
    "StringToLowerCase": {},
    "StringToUpperCase": {},
    "LookupTable": {"lookup_table": _DICT},
    "ToNumber": {"cast_to": _one_of(NUMBER_CASTS)},
    "NumberRound": {"decimal_digits": _INT},
    "SequenceMap": {"lookup_table": _DICT},
    "SequenceApply": {"operations": _LIST},
    "NumericSequenceAggregate": {"function": _one_of(NUMERIC_AGGREGATIONS), "neutral_value": _ANY_OPTIONAL},
    "ToString": {},
    "ToBoolean": {},
    "StringSubSequence": {"start": Param(_is_int, "an integer", False), "end": Param(_is_int, "an integer", False)},
    "DetectionsPropertyExtract": {"property_name": _one_of(DETECTIONS_PROPERTIES)},
    "SequenceAggregate": {"mode": _one_of(SEQUENCE_AGGREGATIONS)},
    "ExtractDetectionProperty": {"property_name": _one_of(DETECTIONS_PROPERTIES)},
    "DetectionsFilter": {"filter_operation": _DICT},
    "DetectionsOffset": {"offset_x": _INT, "offset_y": _INT},
    "DetectionsShift": {"shift_x": _INT, "shift_y": _INT},
    "DetectionsRename": {
        "class_map": Param(lambda v: isinstance(v, str) or (isinstance(v, dict) and all(
            isinstance(k, str) and isinstance(x, str) for k, x in v.items())),
            "an object mapping class names to class names, or the name of a parameter holding one"),
        "strict": Param(lambda v: isinstance(v, bool | str), "true, false or the name of a parameter", False),
        "new_classes_id_offset": Param(_is_int, "an integer", False),
    },
    "RandomNumber": {"min_value": Param(_is_number, "a number", False),
                     "max_value": Param(_is_number, "a number", False)},
    "StringMatches": {"regex": Param(_regex, "a valid regular expression")},
    "ExtractImageProperty": {"property_name": _one_of(IMAGE_PROPERTIES)},
    "ExtractFrameMetadata": {"property_name": _one_of(FRAME_METADATA_PROPERTIES)},
    "SequenceLength": {},
    "SequenceElementsCount": {},
    "SequenceJoin": {"separator": Param(lambda v: isinstance(v, str), "a string", False)},
    "Multiply": {"other": _NUMBER},
    "Divide": {"other": _NUMBER},
    "DetectionsSelection": {"mode": _one_of(DETECTIONS_SELECTION_MODES)},
    "SortDetections": {"mode": _one_of(DETECTIONS_SORT_PROPERTIES),
                       "ascending": Param(lambda v: isinstance(v, bool), "true or false", False)},
    "ClassificationPropertyExtract": {"property_name": _one_of(CLASSIFICATION_PROPERTIES)},
    "ConvertImageToJPEG": {"compression_level": Param(lambda v: _is_int(v) and 1 <= v <= 100,
                                                      "an integer from 1 to 100", False)},
    "ConvertImageToBase64": {},
    "DetectionsToDictionary": {},
    "ConvertDictionaryToJSON": {},
    "PickDetectionsByParentClass": {"parent_class": Param(lambda v: isinstance(v, str), "a string")},
    "TimestampToISOFormat": {},
}


def validate_operations(operations: Any, path: str) -> None:
    """A list of operations, e.g. a block's ``operations`` field (nested chains included)."""
    if not isinstance(operations, list):
        raise InvalidPayloadError(f"field '{path}' must be a list of operations, got {type(operations).__name__}")
    for index, operation in enumerate(operations):
        _operation(operation, f"{path}[{index}]")


def validate_operations_map(mapping: Any, path: str) -> None:
    """``{name: [operations]}``, e.g. ``data_operations`` or ``columns_operations``."""
    obj = _object(mapping, path)
    for name, operations in obj.items():
        validate_operations(operations, f"{path}.{name}")


def validate_statement(statement: Any, path: str) -> None:
    """A condition: a ``StatementGroup`` (``condition_statement``, ``filter_operation``, case conditions)."""
    obj = _object(statement, path)
    if obj.get("type") != "StatementGroup":
        raise InvalidPayloadError(f"field '{path}.type': expected 'StatementGroup', got {obj.get('type')!r}")
    _statement(obj, path)


def validate_switch(switch: Any, path: str) -> None:
    """The expression block's ``switch``: a ``CasesDefinition`` of conditions and results, and a default."""
    obj = _object(switch, path)
    _type(obj, path, ("CasesDefinition",))
    cases = obj.get("cases")
    if not isinstance(cases, list):
        raise InvalidPayloadError(f"field '{path}.cases' must be a list of cases")
    for index, case in enumerate(cases):
        case_path = f"{path}.cases[{index}]"
        case = _object(case, case_path)
        _type(case, case_path, ("CaseDefinition",))
        validate_statement(case.get("condition"), f"{case_path}.condition")
        _case_result(case.get("result"), f"{case_path}.result")
    _case_result(obj.get("default"), f"{path}.default")


# ---------------------------------------------------------------------------- operations


def _operation(operation: Any, path: str) -> None:
    obj = _object(operation, path)
    kind = obj.get("type")
    params = OPERATIONS.get(kind) if isinstance(kind, str) else None
    if params is None:
        raise InvalidPayloadError(
            f"field '{path}.type': unknown operation {kind!r}; known operations: {', '.join(OPERATIONS)}"
        )
    for name, param in params.items():
        if name not in obj:
            if param.required:
                raise InvalidPayloadError(f"field '{path}.{name}' is required by operation {kind}")
            continue
        if not param.check(obj[name]):
            raise InvalidPayloadError(f"field '{path}.{name}': expected {param.expected}, got {obj[name]!r}")
    if kind == "SequenceApply":
        validate_operations(obj["operations"], f"{path}.operations")
    elif kind == "DetectionsFilter":
        validate_statement(obj["filter_operation"], f"{path}.filter_operation")


# ---------------------------------------------------------------------------- statements


def _statement(statement: Any, path: str) -> None:
    obj = _object(statement, path)
    kind = _type(obj, path, ("StatementGroup", "BinaryStatement", "UnaryStatement"))
    if kind == "StatementGroup":
        statements = obj.get("statements")
        if not isinstance(statements, list) or not statements:
            raise InvalidPayloadError(f"field '{path}.statements' must be a non-empty list of statements")
        if obj.get("operator", "or") not in GROUP_OPERATORS:
            raise InvalidPayloadError(f"field '{path}.operator': expected 'and' or 'or', got {obj.get('operator')!r}")
        for index, item in enumerate(statements):
            _statement(item, f"{path}.statements[{index}]")
        return
    if not isinstance(obj.get("negate", False), bool):
        raise InvalidPayloadError(f"field '{path}.negate': expected true or false, got {obj.get('negate')!r}")
    if kind == "BinaryStatement":
        _operand(obj.get("left_operand"), f"{path}.left_operand")
        _operator(obj.get("comparator"), f"{path}.comparator", BINARY_OPERATORS)
        _operand(obj.get("right_operand"), f"{path}.right_operand")
    else:
        _operand(obj.get("operand"), f"{path}.operand")
        _operator(obj.get("operator"), f"{path}.operator", UNARY_OPERATORS)


def _operator(operator: Any, path: str, known: tuple[str, ...]) -> None:
    _type(_object(operator, path), path, known)


def _operand(operand: Any, path: str) -> None:
    obj = _object(operand, path)
    kind = _type(obj, path, ("StaticOperand", "DynamicOperand"))
    if kind == "StaticOperand" and "value" not in obj:
        raise InvalidPayloadError(f"field '{path}.value' is required by a StaticOperand")
    if kind == "DynamicOperand" and not isinstance(obj.get("operand_name", DEFAULT_OPERAND), str):
        raise InvalidPayloadError(f"field '{path}.operand_name' must be a string")
    validate_operations(obj.get("operations", []), f"{path}.operations")


def _case_result(result: Any, path: str) -> None:
    obj = _object(result, path)
    kind = _type(obj, path, ("StaticCaseResult", "DynamicCaseResult"))
    if kind == "StaticCaseResult" and "value" not in obj:
        raise InvalidPayloadError(f"field '{path}.value' is required by a StaticCaseResult")
    if kind == "DynamicCaseResult":
        if not isinstance(obj.get("parameter_name"), str):
            raise InvalidPayloadError(f"field '{path}.parameter_name' is required by a DynamicCaseResult (a string)")
        if obj.get("operations") is not None:
            validate_operations(obj["operations"], f"{path}.operations")


# ---------------------------------------------------------------------------- helpers


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidPayloadError(f"field '{path}' must be an object, got {type(value).__name__}")
    return value


def _type(obj: Mapping[str, Any], path: str, known: tuple[str, ...]) -> str:
    kind = obj.get("type")
    if kind not in known:
        raise InvalidPayloadError(f"field '{path}.type': expected one of {', '.join(map(repr, known))}, got {kind!r}")
    return str(kind)


__all__ = [
    "BINARY_OPERATORS",
    "DEFAULT_OPERAND",
    "OPERATIONS",
    "UNARY_OPERATORS",
    "validate_operations",
    "validate_operations_map",
    "validate_statement",
    "validate_switch",
]
