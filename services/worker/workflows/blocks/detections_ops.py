"""detections_filter@v1 and detections_transformation@v1: a query-language chain from detections to detections."""

from typing import Any

import supervision as sv

from services.core.workflows.catalogue.detections_ops import FILTER, TRANSFORMATION
from services.core.workflows.plan import PlanStep
from services.core.workflows.query_language import DEFAULT_OPERAND
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory
from services.worker.workflows.operations import apply_operations


class DetectionsTransformation:
    """Both blocks: the chain runs with ``operations_parameters`` as the values its operands read."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._step = step.name

    def run(self, predictions: sv.Detections, operations: list[dict[str, Any]],
            operations_parameters: dict[str, Any]) -> dict[str, Any]:
        if DEFAULT_OPERAND in operations_parameters:
            raise ValueError(f"operations_parameters may not define {DEFAULT_OPERAND!r}: the name is reserved")
        result = apply_operations(predictions, operations, dict(operations_parameters))
        if not isinstance(result, sv.Detections):
            raise ValueError(
                f"step {self._step!r}: the operations turn detections into {type(result).__name__}; "
                "this block must output detections (use property_definition to extract values)"
            )
        return {"predictions": result}


BLOCKS: dict[str, BlockFactory] = {FILTER: DetectionsTransformation, TRANSFORMATION: DetectionsTransformation}
