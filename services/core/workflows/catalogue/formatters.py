"""formatters blocks (filled in by their family)."""

from services.core.workflows.blocks import BlockSpec

BLOCKS: tuple[BlockSpec, ...] = ()
