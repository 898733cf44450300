"""Compiles a Workflows definition (the reference's published JSON format) into a :class:`WorkflowPlan`.

Runs in the manager at INIT (no heavy imports): the definition's structure, every block type and
field against the catalogue, every selector (it must name a declared input or an earlier step's
output of a compatible kind), missing parameters and cycles. Every problem is an
``InvalidPayloadError`` naming its JSON path, so nothing reaches a worker that cannot run.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import LITERALS, BlockSpec, Field
from services.core.workflows.catalogue import CATALOGUE, CHECKS, supported_types
from services.core.workflows.graph import in_dependency_order, with_levels
from services.core.workflows.inner import Resolver, inline_inner_workflows
from services.core.workflows.plan import PlanOutput, PlanStep, WorkflowPlan

IMAGE_INPUTS = ("WorkflowImage", "InferenceImage")
METADATA_INPUTS = ("WorkflowVideoMetadata",)
PARAMETER_INPUTS = ("WorkflowParameter", "InferenceParameter")
RESERVED_OUTPUT = "workflow_errors"  # the executor reports a frame's failed steps under this key
_NAME = re.compile(r"[A-Za-z0-9_\-]+")
_INPUT_SELECTOR = re.compile(r"\$inputs\.(?P<name>[A-Za-z0-9_\-]+)")
_STEP_SELECTOR = re.compile(r"\$steps\.(?P<step>[A-Za-z0-9_\-]+)(?:\.(?P<output>[A-Za-z0-9_\-]+|\*))?")


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed ``$inputs.x`` / ``$steps.x.y`` / ``$steps.x.*`` / ``$steps.x`` reference."""

    source: str  # "inputs" or "steps"
    name: str
    output: str | None = None  # steps only: an output name, "*", or None (a step reference)

    @classmethod
    def parse(cls, text: str, path: str) -> "Selector":
        if (match := _INPUT_SELECTOR.fullmatch(text)) is not None:
            return cls("inputs", match["name"])
        if (match := _STEP_SELECTOR.fullmatch(text)) is not None:
            return cls("steps", match["step"], match["output"])
        raise InvalidPayloadError(
            f"field '{path}': {text!r} is not a selector; expected '$inputs.<name>', "
            "'$steps.<step>.<output>' or '$steps.<step>.*'"
        )


@dataclass
class _Context:
    """What the compiler has learnt so far about one definition."""

    where: str
    parameters: Mapping[str, Any]
    image_inputs: list[str] = field(default_factory=list)
    metadata_inputs: list[str] = field(default_factory=list)
    parameter_inputs: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    blocks: dict[str, BlockSpec] = field(default_factory=dict)  # step name -> its block
    definitions: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # step name -> as given


def compile_workflow(
    definition: Any,
    where: str = "workflow",
    parameters: Mapping[str, Any] | None = None,
    image_input_name: str = "image",
    video_metadata_input_name: str = "video_metadata",
    resolve: Resolver | None = None,
) -> WorkflowPlan:
    """The plan of one definition; ``parameters`` are the INIT's ``workflows_parameters``; ``resolve`` returns a
    workflow an inner workflow step names (:mod:`services.core.workflows.inner`)."""
    definition, step_paths = inline_inner_workflows(object_at(definition, where), where, resolve)
    context = _Context(where, parameters or {})
    _declare_inputs(context, list_at(definition.get("inputs", []), f"{where}.inputs"))
    steps = list_at(definition.get("steps", []), f"{where}.steps")
    _declare_steps(context, steps, step_paths)
    image_input = _frame_input(context, image_input_name)
    del video_metadata_input_name  # every WorkflowVideoMetadata input gets the frame's metadata
    compiled = {
        name: _compile_step(context, steps[index], name, step_paths[index])
        for index, name in enumerate(context.blocks)
    }
    ordered = in_dependency_order(context.where, compiled, context.blocks)
    outputs = [
        _compile_output(context, item, f"{where}.outputs[{index}]")
        for index, item in enumerate(list_at(definition.get("outputs", []), f"{where}.outputs"))
    ]
    _unique([o.name for o in outputs], f"{where}.outputs", "output")
    return WorkflowPlan(
        image_input=image_input,
        image_inputs=context.image_inputs,
        metadata_inputs=context.metadata_inputs,
        steps=with_levels(context.blocks, ordered),
        outputs=outputs,
    )


# ---------------------------------------------------------------------------- inputs


def _declare_inputs(context: _Context, declared: list[Any]) -> None:
    for index, item in enumerate(declared):
        path = f"{context.where}.inputs[{index}]"
        item = object_at(item, path)
        name = _name(item.get("name"), f"{path}.name")
        kind = item.get("type")
        if name in context.image_inputs + context.metadata_inputs or name in context.parameter_inputs:
            raise InvalidPayloadError(f"field '{path}.name': input {name!r} is declared twice")
        if kind in IMAGE_INPUTS:
            context.image_inputs.append(name)
        elif kind in METADATA_INPUTS:
            context.metadata_inputs.append(name)
        elif kind in PARAMETER_INPUTS:
            context.parameter_inputs[name] = item
        else:
            raise InvalidPayloadError(
                f"field '{path}.type': input type {kind!r} is not supported; expected one of "
                f"{', '.join(IMAGE_INPUTS + METADATA_INPUTS + PARAMETER_INPUTS)}"
            )


def _frame_input(context: _Context, image_input_name: str) -> str:
    if not context.image_inputs:
        raise InvalidPayloadError(
            f"workflow at '{context.where}' declares no image input (an input of type 'WorkflowImage') "
            "to receive the video frames"
        )
    if image_input_name not in context.image_inputs:
        raise InvalidPayloadError(
            f"field 'processing_configuration.image_input_name': {image_input_name!r} names no image input "
            f"of the workflow (it declares {', '.join(map(repr, context.image_inputs))})"
        )
    return image_input_name


def _parameter(context: _Context, name: str, path: str) -> Any:
    if name in context.parameters:
        return context.parameters[name]
    declared = context.parameter_inputs[name]
    if "default_value" not in declared or declared["default_value"] is None:
        raise InvalidPayloadError(
            f"field '{path}': workflow parameter {name!r} has no default_value and is missing from "
            "processing_configuration.workflows_parameters"
        )
    return declared["default_value"]


# ---------------------------------------------------------------------------- steps


def _declare_steps(context: _Context, steps: list[Any], paths: list[str]) -> None:
    """``paths``: each step's JSON path as written (an inner workflow's inlined steps are inside it)."""
    for step, path in zip(steps, paths, strict=True):
        step = object_at(step, path)
        kind = step.get("type")
        spec = CATALOGUE.get(kind) if isinstance(kind, str) else None
        if spec is None:
            raise InvalidPayloadError(
                f"unsupported workflow block type {kind!r} at '{path}.type'; supported: {', '.join(supported_types())}"
            )
        name = _name(step.get("name"), f"{path}.name")
        if name in context.blocks:
            raise InvalidPayloadError(f"field '{path}.name': step name {name!r} is used twice")
        context.blocks[name] = spec
        context.definitions[name] = step


def _compile_step(context: _Context, step: Mapping[str, Any], name: str, path: str) -> PlanStep:
    spec = context.blocks[name]
    params: dict[str, Any] = {}
    for spec_field in spec.fields:
        given = [key for key in (spec_field.name, *spec_field.aliases) if step.get(key) is not None]
        if len(given) > 1:
            raise InvalidPayloadError(f"field '{path}': {' and '.join(given)} name the same field; give one")
        field_path = f"{path}.{given[0] if given else spec_field.name}"
        if not given:
            if spec_field.required:
                raise InvalidPayloadError(f"field '{field_path}' is required by {spec.name}")
            params[spec_field.name] = spec_field.default
            continue
        params[spec_field.name] = value = _compile_value(context, spec_field, step[given[0]], field_path, name)
        check = CHECKS.get((spec.name, spec_field.name))
        if check is not None and not (isinstance(value, str) and value.startswith("$")):
            check(value, field_path)
    if spec.check is not None:
        spec.check(params, path)
    return PlanStep(name=name, type=spec.name, params=params)


def _compile_value(context: _Context, spec_field: Field, value: Any, path: str, step: str) -> Any:
    if spec_field.steps:
        return _step_references(context, value, path, step)
    if isinstance(value, str) and value.startswith("$"):
        return _compile_selector(context, spec_field, value, path, step)
    if spec_field.nested and isinstance(value, list | dict):
        if isinstance(value, dict):
            return {key: _compile_nested(context, item, f"{path}.{key}", step) for key, item in value.items()}
        return [_compile_nested(context, item, f"{path}[{index}]", step) for index, item in enumerate(value)]
    return _literal(spec_field, value, path)


def _compile_nested(context: _Context, value: Any, path: str, step: str) -> Any:
    """An item of a nested field: a selector of any kind, or a literal kept as is."""
    if isinstance(value, str) and value.startswith("$"):
        return _compile_selector(context, Field("item", kinds=(kinds.WILDCARD,)), value, path, step)
    return value


def _compile_selector(context: _Context, spec_field: Field, text: str, path: str, step: str) -> Any:
    selector = Selector.parse(text, path)
    if selector.source == "inputs":
        if selector.name in context.parameter_inputs:
            return _literal(spec_field, _parameter(context, selector.name, path), path)
        if selector.name in context.image_inputs:
            produced: tuple[str, ...] = (kinds.IMAGE,)
        elif selector.name in context.metadata_inputs:
            produced = (kinds.VIDEO_METADATA,)
        else:
            raise InvalidPayloadError(f"field '{path}': selector {text!r} names no declared workflow input")
    else:
        produced = _step_output_kinds(context, selector, text, path)
        if selector.name == step:
            raise InvalidPayloadError(f"field '{path}': step {step!r} cannot read its own output ({text!r})")
    if not spec_field.kinds:
        raise InvalidPayloadError(f"field '{path}' takes a literal value, not a selector ({text!r})")
    if not kinds.compatible(produced, spec_field.kinds):
        raise InvalidPayloadError(
            f"field '{path}': {text!r} gives {' or '.join(produced)}, but the field takes "
            f"{' or '.join(spec_field.kinds)}"
        )
    return text


def _step_output_kinds(context: _Context, selector: Selector, text: str, path: str) -> tuple[str, ...]:
    spec = context.blocks.get(selector.name)
    if spec is None:
        raise InvalidPayloadError(f"field '{path}': selector {text!r} names no step of the workflow")
    if selector.output is None:
        raise InvalidPayloadError(f"field '{path}': {text!r} names a step, not one of its outputs")
    if selector.output == "*":
        return (kinds.WILDCARD,)
    outputs = spec.outputs_of(context.definitions[selector.name])
    if selector.output not in outputs:
        raise InvalidPayloadError(
            f"field '{path}': step {selector.name!r} ({spec.name}) has no output {selector.output!r}; "
            f"its outputs: {', '.join(outputs) or 'none'}"
        )
    return outputs[selector.output]


def _step_references(context: _Context, value: Any, path: str, step: str) -> list[str] | dict[str, str]:
    """The step names of a flow-control field: a reference or a list of them (a list), or an object of them."""
    if isinstance(value, dict):
        return {key: _step_reference(context, reference, f"{path}.{key}", step) for key, reference in value.items()}
    references = value if isinstance(value, list) else [value]
    return [_step_reference(context, reference, f"{path}[{index}]", step) for index, reference in enumerate(references)]


def _step_reference(context: _Context, reference: Any, path: str, step: str) -> str:
    if not isinstance(reference, str):
        raise InvalidPayloadError(f"field '{path}' must be a step reference '$steps.<name>'")
    selector = Selector.parse(reference, path)
    if selector.source != "steps" or selector.output is not None or selector.name not in context.blocks:
        raise InvalidPayloadError(f"field '{path}': {reference!r} names no step of the workflow")
    if selector.name == step:
        raise InvalidPayloadError(f"field '{path}': step {step!r} cannot gate itself")
    return selector.name


def _literal(spec_field: Field, value: Any, path: str) -> Any:
    if spec_field.literal is None:
        raise InvalidPayloadError(
            f"field '{path}' takes a selector of {' or '.join(spec_field.kinds)}, got {value!r}"
        )
    if value is None and spec_field.default is None:
        return None
    check, expected = LITERALS[spec_field.literal]
    if not check(value):
        raise InvalidPayloadError(f"field '{path}': expected {expected}, got {value!r}")
    if spec_field.choices and value not in spec_field.choices:
        raise InvalidPayloadError(
            f"field '{path}': {value!r} is not one of {', '.join(map(repr, spec_field.choices))}"
        )
    return value


# ---------------------------------------------------------------------------- outputs


def _compile_output(context: _Context, item: Any, path: str) -> PlanOutput:
    item = object_at(item, path)
    if item.get("type", "JsonField") != "JsonField":
        raise InvalidPayloadError(
            f"field '{path}.type': output type {item.get('type')!r} is not supported; expected 'JsonField'"
        )
    name = _name(item.get("name"), f"{path}.name")
    if name == RESERVED_OUTPUT:
        raise InvalidPayloadError(
            f"field '{path}.name': {RESERVED_OUTPUT!r} is reserved (it lists a frame's failed steps)"
        )
    text = item.get("selector")
    if not isinstance(text, str):
        raise InvalidPayloadError(f"field '{path}.selector' is required (a '$steps.<step>.<output>' selector)")
    selector = Selector.parse(text, f"{path}.selector")
    if selector.source == "inputs":
        if selector.name in context.parameter_inputs:
            raise InvalidPayloadError(
                f"field '{path}.selector': {text!r} is a workflow parameter, known before the pipeline starts; "
                "outputs select images, video metadata or step outputs"
            )
        if selector.name not in context.image_inputs + context.metadata_inputs:
            raise InvalidPayloadError(f"field '{path}.selector': {text!r} names no declared workflow input")
    else:
        _step_output_kinds(context, selector, text, f"{path}.selector")
    system = item.get("coordinates_system", "parent")
    if system not in ("own", "parent"):
        raise InvalidPayloadError(f"field '{path}.coordinates_system': expected 'own' or 'parent', got {system!r}")
    return PlanOutput(name=name, selector=text, coordinates_system=system)


# ---------------------------------------------------------------------------- helpers


def object_at(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidPayloadError(f"field '{path}' must be an object, got {type(value).__name__}")
    return value


def list_at(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidPayloadError(f"field '{path}' must be a list, got {type(value).__name__}")
    return value


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidPayloadError(f"field '{path}' must be a name of letters, digits, '_' or '-', got {value!r}")
    return value


def _unique(names: list[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidPayloadError(f"field '{path}': {what} name {name!r} is used twice")
        seen.add(name)


__all__ = ["Selector", "compile_workflow", "list_at", "object_at"]
