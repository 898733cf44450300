"""Dimension collapse: a frame's per-crop (or per-slice) results back at the frame's level, as one list."""

from typing import Any

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment


class DimensionCollapse:
    """``roboflow_core/dimension_collapse@v1``: the items of a one-deeper input (a frame's crops' or slices'
    results) as one list at the frame's level, in order, nulls (a crop clipped away) kept in place; a value
    that is not a list (the input was not deeper) becomes a one-item list."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, data: Any) -> dict[str, Any]:
        return {"output": list(data) if isinstance(data, list) else [data]}
