"""Operations on ``sv.Detections``: property lists, selection, sorting, moving boxes, renaming classes.

Every operation returns new detections (indexing copies; boxes are replaced, never edited in place),
so a step never changes what another step output.
"""

from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np
import supervision as sv

from services.worker.workflows import values
from services.worker.workflows.operations.base import Context, describe, integer
from services.worker.workflows.serialization import serialise_detections

Operation = Mapping[str, Any]

_ANCHORS = {"center": sv.Position.CENTER, "top_left": sv.Position.TOP_LEFT, "top_right": sv.Position.TOP_RIGHT,
            "bottom_left": sv.Position.BOTTOM_LEFT, "bottom_right": sv.Position.BOTTOM_RIGHT}
_COLUMNS = {"x_min": 0, "y_min": 1, "x_max": 2, "y_max": 3}


def take(detections: sv.Detections, indices: Any) -> sv.Detections:
    """The detections at ``indices``, a copy (indexing by a string would give a data column instead)."""
    return cast(sv.Detections, detections[indices])


def detections_of(value: Any, context: Context) -> sv.Detections:
    if not isinstance(value, sv.Detections):
        raise context.fail(f"expected detections, got {describe(value)}")
    return value


def _attribute(detections: sv.Detections, name: str, context: Context) -> np.ndarray:
    array = getattr(detections, name)
    if array is None:
        hint = " (run a tracker first)" if name == "tracker_id" else ""
        raise context.fail(f"the detections carry no {name}{hint}")
    return np.asarray(array)


def _property_list(detections: sv.Detections, name: str, context: Context) -> list[Any]:
    if name in _COLUMNS:
        return detections.xyxy[:, _COLUMNS[name]].astype(float).tolist()  # type: ignore[no-any-return]
    if name in _ANCHORS:
        anchors = detections.get_anchors_coordinates(anchor=_ANCHORS[name])
        return anchors.round().astype(int).tolist()  # type: ignore[no-any-return]
    if name == "size":
        return detections.box_area.astype(float).tolist()  # type: ignore[no-any-return]
    if name in ("confidence", "class_id", "tracker_id"):
        return _attribute(detections, name, context).tolist()  # type: ignore[no-any-return]
    if name in detections.data:
        return np.asarray(detections.data[name]).tolist()  # type: ignore[no-any-return]
    if name == values.CLASS_NAME:
        return []
    raise context.fail(f"the detections carry no {name!r} field (it is added by the block that computes it)")


def extract_property(value: Any, operation: Operation, context: Context) -> list[Any]:
    """One value per detection (``center`` and the corners as rounded integer points, as the reference)."""
    detections = detections_of(value, context)
    if len(detections) == 0:
        return []
    return _property_list(detections, operation["property_name"], context)


def offset(value: Any, operation: Operation, context: Context) -> sv.Detections:
    """Each box grows by ``offset_x`` / ``offset_y`` pixels in total, half on each side (not clipped)."""
    detections = detections_of(value, context)
    dx, dy = integer(operation["offset_x"]) / 2, integer(operation["offset_y"]) / 2
    return _with_boxes(detections, detections.xyxy + np.array([-dx, -dy, dx, dy], dtype=np.float32))


def shift(value: Any, operation: Operation, context: Context) -> sv.Detections:
    detections = detections_of(value, context)
    sx, sy = integer(operation["shift_x"]), integer(operation["shift_y"])
    return _with_boxes(detections, detections.xyxy + np.array([sx, sy, sx, sy], dtype=np.float32))


def _with_boxes(detections: sv.Detections, xyxy: np.ndarray) -> sv.Detections:
    moved = take(detections, np.arange(len(detections)))
    moved.xyxy = xyxy.astype(detections.xyxy.dtype)
    return moved


def _centers_x(detections: sv.Detections) -> np.ndarray:
    return (detections.xyxy[:, 0] + detections.xyxy[:, 2]) / 2


_SELECTORS: dict[str, Callable[[sv.Detections], int]] = {
    "first": lambda d: 0,
    "last": lambda d: len(d) - 1,
    "left_most": lambda d: int(np.argmin(_centers_x(d))),
    "right_most": lambda d: int(np.argmax(_centers_x(d))),
    "top_confidence": lambda d: int(np.argmax(d.confidence)) if d.confidence is not None else 0,
}


def select(value: Any, operation: Operation, context: Context) -> sv.Detections:
    """One detection (as detections of length one), or the empty detections when there is none."""
    detections = detections_of(value, context)
    if len(detections) == 0:
        return take(detections, np.arange(0))
    return take(detections, [_SELECTORS[operation["mode"]](detections)])


_SORT_KEYS: dict[str, Callable[[sv.Detections], np.ndarray | None]] = {
    "confidence": lambda d: d.confidence,
    "x_min": lambda d: d.xyxy[:, 0],
    "y_min": lambda d: d.xyxy[:, 1],
    "x_max": lambda d: d.xyxy[:, 2],
    "y_max": lambda d: d.xyxy[:, 3],
    "size": lambda d: d.box_area,
    "center_x": _centers_x,
    "center_y": lambda d: (d.xyxy[:, 1] + d.xyxy[:, 3]) / 2,
}


def sort(value: Any, operation: Operation, context: Context) -> sv.Detections:
    detections = detections_of(value, context)
    keys = _SORT_KEYS[operation["mode"]](detections) if len(detections) else None
    if keys is None:
        return detections
    order = np.argsort(keys, kind="stable")
    if not operation.get("ascending", True):
        order = order[::-1]
    return take(detections, order)


def to_dictionary(value: Any, operation: Operation, context: Context) -> dict[str, Any]:
    """The detections as the reference serialises them (``{"image": ..., "predictions": [...]}``)."""
    return serialise_detections(detections_of(value, context))


def pick_by_parent_class(value: Any, operation: Operation, context: Context) -> sv.Detections:
    """The ``parent_class`` detections, then the others whose centre lies in one of them (edges included)."""
    detections = detections_of(value, context)
    names = np.asarray(detections.data.get(values.CLASS_NAME, np.array([], dtype=object)))
    if len(detections) == 0 or len(names) == 0:
        return take(detections, np.arange(0))
    is_parent = names == operation["parent_class"]
    parents, others = np.flatnonzero(is_parent), np.flatnonzero(~is_parent)
    if len(parents) == 0:
        return take(detections, np.arange(0))
    centers = np.asarray(detections.get_anchors_coordinates(anchor=sv.Position.CENTER), dtype=float)[others]
    boxes = np.asarray(detections.xyxy, dtype=float)[parents]
    inside = ((centers[:, None, 0] >= boxes[None, :, 0]) & (centers[:, None, 0] <= boxes[None, :, 2])
              & (centers[:, None, 1] >= boxes[None, :, 1]) & (centers[:, None, 1] <= boxes[None, :, 3]))
    kept = others[inside.any(axis=1)] if len(others) else others
    return take(detections, np.concatenate([parents, kept]).astype(int))


def rename(value: Any, operation: Operation, context: Context) -> sv.Detections:
    """Classes renamed by ``class_map``; ``strict`` requires every class to be mapped (new ids: the sorted
    targets' order); otherwise unmapped classes stay and new names get ids from ``new_classes_id_offset``."""
    detections = detections_of(value, context)
    class_map = _parameter(operation["class_map"], context, "class_map", dict)
    strict = _parameter(operation.get("strict", True), context, "strict", bool)
    renamed = take(detections, np.arange(len(detections)))
    if values.CLASS_NAME not in detections.data:
        if strict and len(detections):
            raise context.fail("strict renaming needs class names, and the detections carry none")
        return renamed
    names = [str(name) for name in np.asarray(detections.data[values.CLASS_NAME]).tolist()]
    if strict:
        missing = sorted({name for name in names if name not in class_map})
        if missing:
            raise context.fail(f"class(es) {', '.join(map(repr, missing))} not found in class_map")
        ids = {name: index for index, name in enumerate(sorted(set(class_map.values())))}
    else:
        ids = _non_strict_ids(names, detections, class_map, integer(operation.get("new_classes_id_offset", 1024)))
    new_names = [class_map.get(name, name) for name in names]
    renamed.data = {**renamed.data, values.CLASS_NAME: np.array(new_names, dtype=object)}
    renamed.class_id = np.array([ids[name] for name in new_names], dtype=int)
    return renamed


def _non_strict_ids(names: list[str], detections: sv.Detections, class_map: Mapping[str, str],
                    first_new_id: int) -> dict[str, int]:
    class_ids = detections.class_id.tolist() if detections.class_id is not None else list(range(len(names)))
    ids = dict(zip(names, class_ids, strict=True))
    for offset_index, name in enumerate(sorted({n for n in class_map.values() if n not in ids})):
        ids[name] = first_new_id + offset_index
    return ids


def _parameter(value: Any, context: Context, what: str, kind: type) -> Any:
    """A literal option, or (given as a string) the name of a parameter that holds it."""
    if isinstance(value, str):
        if value not in context.parameters:
            raise context.fail(f"{what} names parameter {value!r}, which is not defined")
        value = context.parameters[value]
    if not isinstance(value, kind):
        raise context.fail(f"{what} must be {'an object' if kind is dict else 'true or false'}, got {describe(value)}")
    return value
