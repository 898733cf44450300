"""What the compiler knows of a block: its names, fields, outputs (with kinds) and dimensionality.

The catalogue is plain data (``services.core.workflows.catalogue``): the manager checks a workflow
against it at INIT with no heavy imports; the worker registers one implementation per entry.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.core.workflows import kinds

REQUIRED: Any = object()  # the default of a field that must be given


def _any(value: Any) -> bool:
    return True


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_unit(value: Any) -> bool:
    return is_number(value) and 0.0 <= value <= 1.0


def is_point(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and all(is_number(v) for v in value)


def is_points(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(is_point(p) for p in value)


# Literal checks by name: (predicate, what the error says was expected).
LITERALS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "any": (_any, "any value"),
    "number": (is_number, "a number"),
    "positive_number": (lambda v: is_number(v) and v > 0, "a positive number"),
    "non_negative_number": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "unit": (is_unit, "a number between 0 and 1"),
    "int": (is_int, "an integer"),
    "positive_int": (lambda v: is_int(v) and v > 0, "a positive integer"),
    "non_negative_int": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "optional_str": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "optional_list": (lambda v: v is None or isinstance(v, list), "a list or null"),
    "str_list": (lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
                 "a list of strings or null"),
    "dict": (lambda v: isinstance(v, dict), "an object"),
    "optional_dict": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "point": (is_point, "a point [x, y]"),
    "points": (is_points, "a list of points [[x, y], ...]"),
    "optional_number": (lambda v: v is None or is_number(v), "a number or null"),
    "optional_int": (lambda v: v is None or is_int(v), "an integer or null"),
}


def register_literals(checks: Mapping[str, tuple[Callable[[Any], bool], str]]) -> None:
    """Add a family's own literal checks to :data:`LITERALS` (names must not collide)."""
    for name, check in checks.items():
        if LITERALS.setdefault(name, check) is not check:
            raise RuntimeError(f"literal check {name!r} is registered twice")


@dataclass(frozen=True, slots=True)
class Field:
    """One manifest field.

    ``kinds``: what a selector feeding it may produce (empty: literals only). ``literal``: the name
    of a check in :data:`LITERALS` (None: selectors only). ``choices``: the allowed literal values.
    ``nested``: a list or object whose items may each be a selector (``data``, ``predictions_batches``).
    ``batch``: takes all the items of a one-deeper input at once (e.g. detections_stitch).
    ``steps``: step references (``next_steps`` of flow control): ``$steps.<name>`` strings, a list of them or
    an object of them (switch_case's ``cases``); compiled to the step names.
    """

    name: str
    kinds: tuple[str, ...] = ()
    literal: str | None = "any"
    default: Any = REQUIRED
    aliases: tuple[str, ...] = ()
    choices: tuple[Any, ...] = ()
    nested: bool = False
    batch: bool = False
    steps: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True, slots=True)
class BlockSpec:
    """One block type: ``names[0]`` is canonical, the rest are aliases (legacy names)."""

    names: tuple[str, ...]
    family: str
    fields: tuple[Field, ...]
    outputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # +1: one output item per input item's crop/slice (a list); -1: collapses a list back.
    dimensionality: int = 0
    flow_control: bool = False
    # Runs when a selector gives null (the reference's ``accepts_empty_values``): the block gets None where
    # other blocks are skipped (first_non_empty_or_default, detections_classes_replacement).
    accepts_empty: bool = False
    # Outputs named by the step's own fields (data_aggregator's ``<name>_<mode>``): called with the
    # step's definition, they replace ``outputs``.
    dynamic_outputs: Callable[[Mapping[str, Any]], dict[str, tuple[str, ...]]] | None = None
    # A rule across fields (track_class_lock's reattach_window <= state_ttl): called with the step's
    # compiled params and its path once every field passed, it raises InvalidPayloadError. A field fed
    # by a step's output is a selector string there; the block checks it again at run time.
    check: Callable[[Mapping[str, Any], str], None] | None = None

    def outputs_of(self, step: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        return self.dynamic_outputs(step) if self.dynamic_outputs is not None else self.outputs

    def gated_steps(self, params: Mapping[str, Any]) -> list[str]:
        """The step names a flow-control step's compiled ``steps`` fields name (the steps it gates)."""
        names: list[str] = []
        for spec_field in self.fields:
            value = params.get(spec_field.name) if spec_field.steps else None
            names.extend(value.values() if isinstance(value, dict) else value or [])
        return names

    @property
    def name(self) -> str:
        return self.names[0]

    def field(self, name: str) -> Field | None:
        for candidate in self.fields:
            if candidate.name == name or name in candidate.aliases:
                return candidate
        return None


def image_field(name: str = "image", aliases: tuple[str, ...] = ("images",)) -> Field:
    return Field(name, kinds=(kinds.IMAGE,), literal=None, aliases=aliases)


def detections_field(name: str = "predictions", aliases: tuple[str, ...] = (), **extra: Any) -> Field:
    return Field(name, kinds=kinds.DETECTIONS, literal=None, aliases=aliases, **extra)
