"""Every block type the engine runs, by every name it answers to (canonical and legacy)."""

from collections.abc import Callable
from typing import Any

from services.core.workflows.blocks import BlockSpec
from services.core.workflows.catalogue import (
    aggregation,
    analytics,
    classical_cv,
    detections_ops,
    flow,
    formatters,
    llm,
    models,
    sampling,
    sinks,
    tracking,
    transformations,
    visualization,
)

FAMILIES = (models, tracking, analytics, transformations, formatters, flow, visualization, sinks,
            detections_ops, aggregation, classical_cv, llm, sampling)
# Their module names: the worker's implementations live in modules of the same names.
FAMILY_NAMES: tuple[str, ...] = tuple(family.__name__.rsplit(".", 1)[1] for family in FAMILIES)

BLOCKS: tuple[BlockSpec, ...] = tuple(spec for family in FAMILIES for spec in family.BLOCKS)

CATALOGUE: dict[str, BlockSpec] = {name: spec for spec in BLOCKS for name in spec.names}

# (canonical block name, field name) -> a structural check of that field's literal value, raising
# InvalidPayloadError with the path (query-language operations and statements, aggregation modes).
CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    key: check for family in FAMILIES for key, check in getattr(family, "CHECKS", {}).items()
}


def supported_types() -> list[str]:
    """Every accepted type name, canonical names first (for error messages and docs)."""
    return [spec.name for spec in BLOCKS] + [alias for spec in BLOCKS for alias in spec.names[1:]]
