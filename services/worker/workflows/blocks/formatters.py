"""formatters blocks."""

from services.worker.workflows.blocks.base import BlockFactory

BLOCKS: dict[str, BlockFactory] = {}
