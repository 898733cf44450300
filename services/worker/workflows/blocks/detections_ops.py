"""Detections to detections: detections_filter@v1 and detections_transformation@v1 (a query-language chain),
per_class_confidence_filter@v1 and detections_combine@v1."""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.catalogue.detections_ops import COMBINE, FILTER, PER_CLASS_FILTER, TRANSFORMATION
from services.core.workflows.plan import PlanStep
from services.core.workflows.query_language import DEFAULT_OPERAND
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory
from services.worker.workflows.blocks.video.tracked import subset
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


class PerClassConfidenceFilter:
    """Keeps a detection whose confidence reaches its class's threshold (``default_threshold`` for a class
    not named, or a detection without a class name); detections without confidences are kept as they are."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, predictions: sv.Detections, class_thresholds: dict[str, Any],
            default_threshold: float = 0.3) -> dict[str, Any]:
        if not isinstance(class_thresholds, dict):
            raise ValueError(f"class_thresholds must be an object of class name -> threshold, got {class_thresholds!r}")
        thresholds = {str(name): float(threshold) for name, threshold in class_thresholds.items()}
        if predictions.confidence is None or not len(predictions):
            return {"predictions": predictions}
        names = predictions.data.get(values.CLASS_NAME)
        if names is None:
            needed = np.full(len(predictions), float(default_threshold))
        else:
            needed = np.array([thresholds.get(str(name), float(default_threshold)) for name in names])
        return {"predictions": subset(predictions, np.flatnonzero(predictions.confidence >= needed))}


class DetectionsCombine:
    """Both sets of detections as one (the first's, then the second's), as supervision merges them."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del env
        self._step = step.name

    def run(self, prediction_one: sv.Detections, prediction_two: sv.Detections) -> dict[str, Any]:
        try:
            combined = sv.Detections.merge([prediction_one, prediction_two])
        except ValueError as error:  # e.g. one tracked and one not, other data fields, other images
            raise ValueError(f"step {self._step!r}: these detections cannot be combined: {error}") from None
        return {"predictions": combined}


BLOCKS: dict[str, BlockFactory] = {
    FILTER: DetectionsTransformation,
    TRANSFORMATION: DetectionsTransformation,
    PER_CLASS_FILTER: PerClassConfidenceFilter,
    COMBINE: DetectionsCombine,
}
