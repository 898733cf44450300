"""Every block implementation, by canonical type name (one module per family)."""

from services.worker.workflows.blocks import (
    aggregation,
    analytics,
    detections_ops,
    flow,
    formatters,
    models,
    sinks,
    tracking,
    transformations,
    visualization,
)
from services.worker.workflows.blocks.base import BlockFactory

REGISTRY: dict[str, BlockFactory] = {
    name: factory
    for family in (models, tracking, analytics, transformations, formatters, flow, visualization, sinks,
                   detections_ops, aggregation)
    for name, factory in family.BLOCKS.items()
}
