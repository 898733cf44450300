"""``roboflow_core/inner_workflow@v1``: a workflow pasted inside another, inlined before compiling.

As in the reference, an inner workflow is never run as a unit: its steps join the parent's, renamed
``<inner step>__<child step>`` (with a ``__2``, ``__3`` suffix where that name is taken), and

- in the child's steps, ``$inputs.<name>`` becomes the parent's value bound to it in ``parameter_bindings`` (a
  selector of the parent, or a literal), or the child parameter's own ``default_value`` when it is not bound;
  ``$steps.<child step>`` becomes the renamed step;
- in the parent, ``$steps.<inner step>.<output>`` becomes the selector of the child's output of that name, and a
  bare ``$steps.<inner step>`` (a flow-control target) the first inlined step.

Inner workflows may nest (to :data:`MAX_DEPTH`); the innermost are inlined first. Every problem is an
``InvalidPayloadError`` naming its JSON path, and the steps keep their paths in the definition as written (an
inlined step is reported at ``...steps[i].workflow_definition.steps[j]``).

A child may instead be named by ``workflow_workspace_id`` and ``workflow_id``: a workflow of this manager (put over
the wire, or a file of ``MANAGER_WORKFLOWS_DIRECTORY``), which ``resolve`` returns (the reference fetches it from the
Roboflow API). Without a ``resolve``, or with a ``workflow_version_id`` (no versions are kept here), a reference is
refused; one that names itself, directly or through others, is refused as a cycle.
"""

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from services.core.errors import InvalidPayloadError, NotFoundError

INNER_WORKFLOW = "roboflow_core/inner_workflow@v1"
MAX_DEPTH = 8
_PARAMETERS = ("WorkflowParameter", "InferenceParameter")
_STEP = re.compile(r"\$steps\.(?P<step>[A-Za-z0-9_\-]+)(?:\.(?P<output>[A-Za-z0-9_\-]+|\*))?")
_INPUT = re.compile(r"\$inputs\.(?P<name>[A-Za-z0-9_\-]+)")
Resolver = Callable[[str, str], Mapping[str, Any]]  # (workspace, workflow id) -> the stored definition


def referenced_workflows(definition: Any) -> list[tuple[str, str]]:
    """The (workspace, workflow id) pairs that ``definition``'s inner workflows name, at any depth of pasted
    definitions (not inside the ones they name: the caller fetches those and asks again)."""
    found: list[tuple[str, str]] = []
    steps = definition.get("steps") if isinstance(definition, Mapping) else None
    for step in steps if isinstance(steps, list) else ():
        if not _is_inner(step):
            continue
        workspace, workflow_id = step.get("workflow_workspace_id"), step.get("workflow_id")
        if isinstance(workspace, str) and isinstance(workflow_id, str):
            found.append((workspace, workflow_id))
        found.extend(referenced_workflows(step.get("workflow_definition")))
    return found


def inline_inner_workflows(definition: Mapping[str, Any], where: str, resolve: Resolver | None = None,
                           depth: int = 0,
                           named: tuple[tuple[str, str], ...] = ()) -> tuple[Mapping[str, Any], list[str]]:
    """``definition`` with its inner workflows inlined, and each resulting step's JSON path as written (``named``:
    the workflows being inlined around this one, by reference)."""
    steps = definition.get("steps")
    if not isinstance(steps, list):
        return definition, []
    paths = [f"{where}.steps[{index}]" for index in range(len(steps))]
    if not any(_is_inner(step) for step in steps):
        return definition, paths
    if depth >= MAX_DEPTH:
        raise InvalidPayloadError(f"field '{where}': inner workflows nest deeper than {MAX_DEPTH} levels")
    workflow = copy.deepcopy(dict(definition))
    while True:
        steps = workflow["steps"]
        index = next((i for i, step in enumerate(steps) if _is_inner(step)), None)
        if index is None:
            return workflow, paths
        inlined, inlined_paths, outputs = _expand(steps[index], paths[index], workflow, resolve, depth, named)
        first = inlined[0]["name"]
        workflow = _patched_parent(workflow, steps[index]["name"], outputs, first, paths[index])
        workflow["steps"] = workflow["steps"][:index] + inlined + workflow["steps"][index + 1:]
        paths = paths[:index] + inlined_paths + paths[index + 1:]


def _is_inner(step: Any) -> bool:
    return isinstance(step, dict) and step.get("type") == INNER_WORKFLOW


def _expand(step: dict[str, Any], path: str, parent: Mapping[str, Any], resolve: Resolver | None, depth: int,
            named: tuple[tuple[str, str], ...]) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """The inner step's child steps renamed and rewritten (with their paths), and its outputs' selectors."""
    name = step.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidPayloadError(f"field '{path}.name' must be a non-empty string")
    child, child_where, reference = _child_definition(step, path, resolve, named)
    child, child_paths = inline_inner_workflows(child, child_where, resolve, depth + 1,
                                                named if reference is None else (*named, reference))
    values = _input_values(step, child, path)

    child_steps = child.get("steps")
    if not isinstance(child_steps, list) or not child_steps:
        raise InvalidPayloadError(f"field '{child_where}.steps': an inner workflow needs at least one step")
    taken = {s["name"] for s in parent["steps"] if isinstance(s, dict) and isinstance(s.get("name"), str)}
    taken.discard(name)
    renamed: dict[str, str] = {}
    for index, child_step in enumerate(child_steps):
        child_name = child_step.get("name") if isinstance(child_step, dict) else None
        if not isinstance(child_name, str) or not child_name:
            raise InvalidPayloadError(f"field '{child_paths[index]}.name' must be a non-empty string")
        renamed[child_name] = _unique(f"{name}__{child_name}", taken)

    def rewrite(value: Any) -> Any:
        return _map_strings(value, lambda text: _rewrite_child(text, renamed, values))

    inlined = []
    for child_step in child_steps:
        rewritten = {key: rewrite(value) for key, value in child_step.items() if key != "name"}
        inlined.append({"name": renamed[child_step["name"]], **rewritten})
    outputs: dict[str, str] = {}
    for index, output in enumerate(_list(child.get("outputs", []), f"{child_where}.outputs")):
        output_path = f"{child_where}.outputs[{index}]"
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise InvalidPayloadError(f"field '{output_path}' must be an object with a string 'name'")
        selector = rewrite(output.get("selector"))
        if not isinstance(selector, str) or not selector.startswith("$"):
            raise InvalidPayloadError(f"field '{output_path}.selector' must be a selector (once its inputs are bound)")
        outputs[output["name"]] = selector
    return inlined, child_paths, outputs


def _child_definition(step: Mapping[str, Any], path: str, resolve: Resolver | None, named: tuple[tuple[str, str], ...],
                      ) -> tuple[Mapping[str, Any], str, tuple[str, str] | None]:
    """The child's definition, where its steps are reported, and its (workspace, id) when it is named."""
    inline = step.get("workflow_definition")
    referenced = [key for key in ("workflow_workspace_id", "workflow_id", "workflow_version_id") if step.get(key)]
    if isinstance(inline, dict) and inline and referenced:
        raise InvalidPayloadError(f"field '{path}': give either workflow_definition or {' and '.join(referenced)}, "
                                  "not both")
    if not referenced:
        if not isinstance(inline, dict) or not inline:
            raise InvalidPayloadError(f"field '{path}.workflow_definition' must be a non-empty workflow definition "
                                      "(an object with inputs, steps and outputs), or name a workflow with "
                                      "workflow_workspace_id and workflow_id")
        return inline, f"{path}.workflow_definition", None
    if step.get("workflow_version_id"):
        raise InvalidPayloadError(f"field '{path}.workflow_version_id': workflow versions are not kept here; name "
                                  "the workflow by workflow_workspace_id and workflow_id only")
    workspace, workflow_id = step.get("workflow_workspace_id"), step.get("workflow_id")
    if not (isinstance(workspace, str) and workspace and isinstance(workflow_id, str) and workflow_id):
        raise InvalidPayloadError(f"field '{path}': an inner workflow by reference needs both "
                                  "workflow_workspace_id and workflow_id (non-empty strings)")
    if resolve is None:
        raise InvalidPayloadError(f"field '{path}.workflow_workspace_id': an inner workflow by reference is not "
                                  "supported here; paste its definition as workflow_definition")
    reference = (workspace, workflow_id)
    if reference in named:
        cycle = " -> ".join(f"{w}/{i}" for w, i in (*named[named.index(reference):], reference))
        raise InvalidPayloadError(f"field '{path}': the inner workflows name each other in a cycle ({cycle})")
    try:
        child = resolve(workspace, workflow_id)
    except InvalidPayloadError as exc:
        raise InvalidPayloadError(f"inner workflow at '{path}': {exc}") from exc
    except NotFoundError as exc:
        raise NotFoundError(f"{exc} (the inner workflow at '{path}')", exc.public_message) from exc
    if not isinstance(child, Mapping):
        raise InvalidPayloadError(f"field '{path}': workflow '{workspace}/{workflow_id}' is not a definition")
    return child, f"workflow({workspace}/{workflow_id})", reference


def _input_values(step: Mapping[str, Any], child: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Each child input's value in the parent: its binding, else its parameter default."""
    bindings = step.get("parameter_bindings")
    if bindings is None:
        bindings = {}
    if not isinstance(bindings, dict):
        raise InvalidPayloadError(f"field '{path}.parameter_bindings' must be an object (child input -> value)")
    declared: dict[str, Mapping[str, Any]] = {}
    inputs_path = f"{path}.workflow_definition.inputs"
    for index, item in enumerate(_list(child.get("inputs", []), inputs_path)):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidPayloadError(f"field '{inputs_path}[{index}]' must be an object with a string 'name'")
        declared[item["name"]] = item
    for bound in bindings:
        if bound not in declared:
            raise InvalidPayloadError(f"field '{path}.parameter_bindings.{bound}': the inner workflow has no input "
                                      f"{bound!r} (its inputs: {', '.join(map(repr, declared)) or 'none'})")
    values: dict[str, Any] = {}
    for input_name, item in declared.items():
        if input_name in bindings:
            values[input_name] = bindings[input_name]
        elif item.get("type") in _PARAMETERS and item.get("default_value") is not None:
            values[input_name] = item["default_value"]
        else:
            raise InvalidPayloadError(f"field '{path}.parameter_bindings': the inner workflow's input "
                                      f"{input_name!r} is not bound (only parameters with a default_value may "
                                      "be left out)")
    return values


def _rewrite_child(text: str, renamed: Mapping[str, str], values: Mapping[str, Any]) -> Any:
    """One string of a child step: its step references renamed, its input references replaced by their values."""
    whole = _INPUT.fullmatch(text)
    if whole is not None:
        return copy.deepcopy(values.get(whole["name"], text))  # a value of any type, for a whole-field selector

    def step(match: re.Match[str]) -> str:
        new = renamed.get(match["step"])
        if new is None:
            return match[0]
        return f"$steps.{new}" + (f".{match['output']}" if match["output"] else "")

    def value(match: re.Match[str]) -> str:
        bound = values.get(match["name"])
        return bound if isinstance(bound, str) else match[0]

    return _INPUT.sub(value, _STEP.sub(step, text))


def _patched_parent(workflow: dict[str, Any], inner: str, outputs: Mapping[str, str], first: str,
                    path: str) -> dict[str, Any]:
    """The parent with its references to the inner step's outputs (and to the step itself) redirected."""
    def patch(match: re.Match[str]) -> str:
        if match["step"] != inner:
            return match[0]
        if match["output"] is None:
            return f"$steps.{first}"
        if match["output"] not in outputs:
            raise InvalidPayloadError(f"selector {match[0]!r}: the inner workflow at '{path}' has no output "
                                      f"{match['output']!r} (its outputs: {', '.join(map(repr, outputs)) or 'none'})")
        return outputs[match["output"]]

    def patch_strings(value: Any) -> Any:
        return _map_strings(value, lambda text: _STEP.sub(patch, text))

    # Not inside another inner step's own definition: its names are its own (it reaches the parent by its bindings).
    steps = [{key: value if key == "workflow_definition" else patch_strings(value) for key, value in step.items()}
             if _is_inner(step) else patch_strings(step) for step in workflow["steps"]]
    return {**{key: patch_strings(value) for key, value in workflow.items() if key != "steps"}, "steps": steps}


def _map_strings(value: Any, function: Callable[[str], Any]) -> Any:
    if isinstance(value, str):
        return function(value)
    if isinstance(value, dict):
        return {key: _map_strings(item, function) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, function) for item in value]
    return value


def _unique(name: str, taken: set[str]) -> str:
    candidate, suffix = name, 2
    while candidate in taken:
        candidate, suffix = f"{name}__{suffix}", suffix + 1
    taken.add(candidate)
    return candidate


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidPayloadError(f"field '{path}' must be a list")
    return value
