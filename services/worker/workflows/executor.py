"""Runs a compiled workflow on one video source's frames, one frame at a time, in frame order.

Theory of operation: the plan's steps are already in dependency order. For each frame the executor
walks them once: it resolves a step's selectors against the frame's inputs and the outputs of the
steps before it, and calls the step's block. A step is skipped (its outputs are ``None``) when a
flow-control step gating it said no or was itself skipped, or when any selector it reads gives
``None`` (the reference's null propagation), unless its block accepts empty values (``BlockSpec.accepts_empty``:
it is called with the ``None``). A step runs at its plan level: level 0 once per frame,
level 1 once per item of the lists its level-1 inputs hold (crops, slices), and so on; inputs at a
lower level are broadcast to every item. A block that raises fails that step on that frame only:
the error is reported with the frame's outputs and its readers see ``None``.

Blocks are built once per source, so what they keep between frames (tracks, counts, cooldowns) is
per source. State lives in this process: a re-dispatched pipeline starts its blocks afresh.

A block that waits on a remote service (a hosted LLM) names the field that bounds its concurrent calls
(``concurrency_field``, the manifests' ``max_concurrent_requests``): its items (a crop per person) are then called
that many at a time, in threads, as the reference does; their results and errors keep the items' order.
"""

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import supervision as sv

from services.core.redaction import redact_text
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import RESERVED_OUTPUT
from services.core.workflows.plan import PlanOutput, PlanStep, WorkflowPlan
from services.worker.workflows.blocks.base import Block, BlockEnvironment, BlockFactory, FlowDecision
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import WorkflowImage, to_root_coordinates

log = logging.getLogger(__name__)

ERRORS_KEY = RESERVED_OUTPUT  # the frame output key listing failed steps
_LOGGED_FAILURES = (1, 10, 100)  # a step's failures that are logged (then every _LOG_EVERY-th)
_LOG_EVERY = 1000
# Items of one step called at once when its concurrency field is null: the reference's default
# (WORKFLOWS_REMOTE_EXECUTION_MAX_STEP_CONCURRENT_REQUESTS).
DEFAULT_CONCURRENT_CALLS = 8


@dataclass(frozen=True, slots=True)
class StepError:
    step: str
    error_type: str
    error_message: str

    def as_dict(self) -> dict[str, str]:
        return {"step": self.step, "error_type": self.error_type, "error_message": self.error_message}


class _Skipped:
    """Marks a step that did not run on this frame (its outputs read as None)."""


_SKIPPED = _Skipped()


class WorkflowExecutor:
    """One source's instance of a workflow: its blocks and their state."""

    def __init__(self, plan: WorkflowPlan, registry: Mapping[str, BlockFactory], env: BlockEnvironment) -> None:
        missing = [step.type for step in plan.steps if step.type not in registry]
        if missing:
            raise ValueError(f"no implementation for block type(s) {', '.join(sorted(set(missing)))}")
        self._plan = plan
        self._env = env
        self._blocks: dict[str, Block] = {step.name: registry[step.type](step, env) for step in plan.steps}
        self._failures: dict[str, int] = {}
        self._failures_lock = threading.Lock()  # a step's items may fail in several threads at once

    def run(self, image: WorkflowImage) -> tuple[dict[str, Any], list[StepError]]:
        """The frame's serialised outputs (by output name) and the steps that failed on it."""
        frame = _Frame(self._plan, image)
        self._env.video = image.video
        errors: list[StepError] = []
        for step in self._plan.steps:
            frame.outputs[step.name] = self._run_step(step, frame, errors)
        return {output.name: self._output(output, frame) for output in self._plan.outputs}, errors

    # ------------------------------------------------------------------ steps

    def _run_step(self, step: PlanStep, frame: "_Frame", errors: list[StepError]) -> Any:
        if not all(_lets_through(frame.outputs.get(gate), step.name) for gate in step.gates):
            return _SKIPPED
        nulls = CATALOGUE[step.type].accepts_empty
        try:
            resolved = {name: frame.resolve(value, nulls) for name, value in step.params.items()}
        except _NullInput:
            return _SKIPPED
        result = self._call(step, resolved, step.dimensionality, errors)
        if result is _SKIPPED:
            return _SKIPPED
        if CATALOGUE[step.type].flow_control:
            return _verdict(result)
        return result

    def _call(self, step: PlanStep, inputs: dict[str, "_Value"], level: int, errors: list[StepError]) -> Any:
        """Call the block at ``level``: once, or once per item of the deepest inputs (a list back).

        A failure fails its own call only: the whole step at level 0, one item (None) below it.
        """
        if level == 0:
            try:
                return self._blocks[step.name].run(**{name: value.get() for name, value in inputs.items()})
            except Exception as exc:
                errors.append(self._error(step, exc))
                return _SKIPPED
        try:
            length = _common_length(step, inputs, level)
        except ValueError as exc:
            errors.append(self._error(step, exc))
            return _SKIPPED
        nulls = CATALOGUE[step.type].accepts_empty
        calls: dict[int, dict[str, _Value]] = {}  # the items called, by index (an item with a null is not)
        for index in range(length):
            items = {name: value.item(index, level) for name, value in inputs.items()}
            if nulls or not any(item.is_null() for item in items.values()):
                calls[index] = items
        width = self._concurrency(step, inputs) if level == 1 else 1
        if width > 1 and len(calls) > 1:
            own_errors: dict[int, list[StepError]] = {index: [] for index in calls}  # merged in the items' order
            with ThreadPoolExecutor(max_workers=min(width, len(calls)), thread_name_prefix=f"step-{step.name}") as pool:
                futures = {index: pool.submit(self._call, step, items, 0, own_errors[index])
                           for index, items in calls.items()}
            outcomes = {index: future.result() for index, future in futures.items()}
            for index in calls:
                errors.extend(own_errors[index])
        else:
            outcomes = {index: self._call(step, items, level - 1, errors) for index, items in calls.items()}
        return [None if outcomes.get(index, _SKIPPED) is _SKIPPED else outcomes[index] for index in range(length)]

    def _concurrency(self, step: PlanStep, inputs: Mapping[str, "_Value"]) -> int:
        """How many items of ``step`` may be called at once: 1 unless its block names a concurrency field, then
        that field's value (null or below 1: ``DEFAULT_CONCURRENT_CALLS``)."""
        field = getattr(self._blocks[step.name], "concurrency_field", None)
        if field is None or field not in inputs:
            return 1
        value = inputs[field].get()
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 \
            else DEFAULT_CONCURRENT_CALLS

    def _error(self, step: PlanStep, exc: Exception) -> StepError:
        message = redact_text(str(exc), tuple(self._env.secrets))
        with self._failures_lock:
            failures = self._failures[step.name] = self._failures.get(step.name, 0) + 1
        if failures in _LOGGED_FAILURES or failures % _LOG_EVERY == 0:  # a step failing on every frame
            log.warning("workflow step %s (%s) failed (%d times on source %d): %s: %s", step.name, step.type,
                        failures, self._env.source_id, type(exc).__name__, message)
        return StepError(step.name, type(exc).__name__, message)

    # ------------------------------------------------------------------ outputs

    def _output(self, output: PlanOutput, frame: "_Frame") -> Any:
        try:
            value = frame.resolve(output.selector).get()
        except _NullInput:
            return None
        if output.coordinates_system == "parent":
            value = _in_parent_coordinates(value)
        return serialise(value)


class _NullInput(Exception):
    """A selector read a value that is None on this frame: the step is skipped."""


@dataclass(frozen=True, slots=True)
class _Gate:
    """A flow-control step's verdict on this frame: the steps it lets through (None: all it gates)."""

    opens: frozenset[str] | None

    def lets_through(self, step: str) -> bool:
        return self.opens is None or step in self.opens


_OPEN, _CLOSED = _Gate(None), _Gate(frozenset())


@dataclass(frozen=True, slots=True)
class _Value:
    """A resolved input, how many list levels deep it is, and whether a selector gave it.

    A nested field (a list or object of selectors) keeps its resolved parts, so taking its
    ``index``-th item takes the item of every part (broadcasting the shallower ones).
    """

    value: Any
    level: int
    selected: bool = False
    parts: list["_Value"] | dict[str, "_Value"] | None = None

    def get(self) -> Any:
        return self.value

    def is_null(self) -> bool:
        """A selector's null anywhere in it (skips the step); a literal null is just an unset option."""
        if isinstance(self.parts, list):
            return any(part.is_null() for part in self.parts)
        if isinstance(self.parts, dict):
            return any(part.is_null() for part in self.parts.values())
        return self.selected and self.value is None

    def item(self, index: int, level: int) -> "_Value":
        """The ``index``-th item when this value is at ``level`` (broadcast when it is shallower)."""
        if self.level < level:
            return self
        if isinstance(self.parts, list):
            return _container([part.item(index, level) for part in self.parts])
        if isinstance(self.parts, dict):
            return _container({key: part.item(index, level) for key, part in self.parts.items()})
        present = self.value is not None and index < len(self.value)
        return _Value(self.value[index] if present else None, self.level - 1, selected=True)


def _container(parts: list[_Value] | dict[str, _Value]) -> _Value:
    values = parts if isinstance(parts, list) else list(parts.values())
    value: Any = [p.value for p in parts] if isinstance(parts, list) else {k: p.value for k, p in parts.items()}
    return _Value(value, max((p.level for p in values), default=0), parts=parts)


class _Frame:
    """One frame's values: the inputs and each step's outputs so far."""

    def __init__(self, plan: WorkflowPlan, image: WorkflowImage) -> None:
        self.inputs: dict[str, Any] = {name: image for name in plan.image_inputs}
        self.inputs.update({name: image.video for name in plan.metadata_inputs})
        self.outputs: dict[str, Any] = {}
        self._levels = {step.name: step.dimensionality + CATALOGUE[step.type].dimensionality for step in plan.steps}

    def resolve(self, value: Any, nulls: bool = False) -> Any:
        """A step parameter with its selectors replaced by values (a :class:`_Value` at top level).

        A selector that reads null (a skipped step, a null output) raises :class:`_NullInput`, or with
        ``nulls`` (a block that accepts empty values) stands for None."""
        if isinstance(value, str) and value.startswith("$inputs."):
            return _Value(self.inputs[value.split(".", 1)[1]], 0, selected=True)
        if isinstance(value, str) and value.startswith("$steps."):
            return self._step_value(value, nulls)
        if isinstance(value, list):
            return _container([self._nested(item, nulls) for item in value])
        if isinstance(value, dict):
            return _container({key: self._nested(item, nulls) for key, item in value.items()})
        return _Value(value, 0)

    def _nested(self, value: Any, nulls: bool) -> _Value:
        resolved = self.resolve(value, nulls)
        return resolved if isinstance(resolved, _Value) else _Value(resolved, 0)

    def _step_value(self, selector: str, nulls: bool) -> _Value:
        _, step, output = selector.split(".", 2)
        produced = self.outputs.get(step, _SKIPPED)
        level = self._levels[step]
        value = None if produced is _SKIPPED else _select(produced, output, level)
        if value is None and not nulls:
            raise _NullInput(selector)
        return _Value(value, level, selected=True)


def _select(produced: Any, output: str, level: int) -> Any:
    """One output (or all, for ``*``) out of a step's result, keeping its list levels."""
    if level == 0:
        if produced is None:
            return None
        return dict(produced) if output == "*" else produced.get(output)
    return [_select(item, output, level - 1) for item in produced]


def _common_length(step: PlanStep, inputs: Mapping[str, _Value], level: int) -> int:
    lengths = {len(leaf.value) for value in inputs.values() for leaf in _leaves(value)
               if leaf.level >= level and leaf.value is not None}
    if len(lengths) > 1:
        raise ValueError(f"step {step.name!r}: its inputs hold lists of different lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _leaves(value: _Value) -> list[_Value]:
    if isinstance(value.parts, list):
        return [leaf for part in value.parts for leaf in _leaves(part)]
    if isinstance(value.parts, dict):
        return [leaf for part in value.parts.values() for leaf in _leaves(part)]
    return [value]


def _lets_through(gate: Any, step: str) -> bool:
    """Whether a gate's verdict (a skipped gate has none) lets ``step`` run."""
    return isinstance(gate, _Gate) and gate.lets_through(step)


def _verdict(result: Any) -> _Gate:
    if isinstance(result, FlowDecision):
        return _CLOSED if not result.proceed else _Gate(result.only)
    if isinstance(result, list):  # a flow step on crops: a step runs when any item lets it through
        verdicts = [_verdict(item) for item in result if item is not None]
        if any(verdict.opens is None for verdict in verdicts):
            return _OPEN
        return _Gate(frozenset().union(*(verdict.opens or () for verdict in verdicts)))
    return _CLOSED


def _in_parent_coordinates(value: Any) -> Any:
    if isinstance(value, sv.Detections):
        return to_root_coordinates(value)
    if isinstance(value, list):
        return [_in_parent_coordinates(item) for item in value]
    if isinstance(value, dict):
        return {key: _in_parent_coordinates(item) for key, item in value.items()}
    return value
