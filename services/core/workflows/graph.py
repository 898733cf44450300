"""The step graph of a workflow: dependency order (with flow-control gates) and each step's level.

A step depends on every step a selector of its names (``$steps.<name>...``) and on the flow-control
steps that name it in their step-reference fields (``next_steps``, switch_case's ``cases``: its gates).
Its level is how many list levels deep it runs: the deepest level of what it reads, one less through
a ``batch`` field; a block with ``dimensionality`` +1 (crops, slices) puts its outputs one level deeper
than it runs.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows.blocks import BlockSpec
from services.core.workflows.plan import PlanStep


def step_references(value: Any) -> Iterator[str]:
    """The step names that the selectors in a (possibly nested) parameter read."""
    if isinstance(value, str) and value.startswith("$steps."):
        yield value.split(".")[1]
    elif isinstance(value, list):
        for item in value:
            yield from step_references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from step_references(item)


def in_dependency_order(where: str, compiled: Mapping[str, PlanStep], blocks: Mapping[str, BlockSpec]
                        ) -> list[PlanStep]:
    """Steps after everything they read and their gates (definition order where free); a cycle is an error."""
    gates: dict[str, list[str]] = {name: [] for name in compiled}
    for name, step in compiled.items():
        for gated in blocks[name].gated_steps(step.params):
            gates[gated].append(name)
    needs = {name: set(step_references(step.params)) | set(gates[name]) for name, step in compiled.items()}
    ordered: list[str] = []
    while len(ordered) < len(compiled):
        ready = [name for name in compiled if name not in ordered and needs[name] <= set(ordered)]
        if not ready:
            stuck = [name for name in compiled if name not in ordered]
            raise InvalidPayloadError(f"workflow at '{where}' has a cycle among steps {', '.join(map(repr, stuck))}")
        ordered.append(ready[0])
    return [compiled[name].model_copy(update={"gates": gates[name]}) for name in ordered]


def with_levels(blocks: Mapping[str, BlockSpec], ordered: list[PlanStep]) -> list[PlanStep]:
    """Each step with its running level (``PlanStep.dimensionality``)."""
    output_level: dict[str, int] = {}
    result = []
    for step in ordered:
        spec = blocks[step.name]
        level = 0
        for spec_field in spec.fields:
            for reference in step_references(step.params.get(spec_field.name)):
                level = max(level, output_level[reference] - (1 if spec_field.batch else 0))
        output_level[step.name] = level + spec.dimensionality
        result.append(step.model_copy(update={"dimensionality": level}))
    return result
