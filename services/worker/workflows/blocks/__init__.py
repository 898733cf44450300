"""Every block implementation, by canonical type name (one module per family)."""

import importlib

from services.core.workflows.catalogue import FAMILY_NAMES
from services.worker.workflows.blocks.base import BlockFactory

# One implementation module per family of the catalogue, under the same name: the catalogue's list
# of families is the one list (a family without its implementation module fails at import).
REGISTRY: dict[str, BlockFactory] = {
    name: factory
    for family in FAMILY_NAMES
    for name, factory in importlib.import_module(f"{__name__}.{family}").BLOCKS.items()
}
