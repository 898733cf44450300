"""grid_visualization: several images tiled into one ``width`` x ``height`` canvas.

``images`` lists selectors of images and of lists of images (dimension_collapse's output of crops); the
lists are flattened. The grid is square, ``ceil(sqrt(n))`` cells a side, filled row by row; each image is
scaled to fit its cell (aspect ratio kept) and centred in it, on black. The output keeps the first
image's lineage. Unlike the reference, a grid with no image at all gives no image (its readers are
skipped): a canvas needs a frame's video metadata, which no image brings then; and nothing is cached
between frames (a video's images are new on every frame).
"""

import math
from typing import Any

import cv2
import numpy as np

from services.core.workflows.catalogue.visualization import MAX_GRID_SIDE
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.visualization.base import OUTPUT
from services.worker.workflows.values import WorkflowImage


class Grid:
    """The tiled images as one image, or none when there is no image to tile."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, images: Any, width: int = 2560, height: int = 1440) -> dict[str, Any]:
        width, height = _side(width, "width"), _side(height, "height")
        tiles = flatten(images)
        first = next((tile for tile in tiles if tile is not None), None)
        if first is None:
            return {OUTPUT: None}
        return {OUTPUT: first.with_image(tile_grid([None if t is None else t.image for t in tiles], width, height))}


def flatten(images: Any) -> list[WorkflowImage | None]:
    """The images of ``images`` (an image, or a list of images and lists of images) in order; a missing
    one (None, e.g. a crop whose step failed) keeps its cell empty."""
    items = images if isinstance(images, list) else [images]
    tiles: list[WorkflowImage | None] = []
    for item in items:
        for tile in item if isinstance(item, list) else [item]:
            if tile is not None and not isinstance(tile, WorkflowImage):
                raise ValueError(f"grid_visualization tiles images, got {type(tile).__name__}")
            tiles.append(tile)
    return tiles


def tile_grid(tiles: list[np.ndarray | None], width: int, height: int) -> np.ndarray:
    """``tiles`` on a black ``width`` x ``height`` canvas, a square grid of cells, each scaled to fit and centred."""
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    side = math.ceil(math.sqrt(len(tiles)))
    cell_width, cell_height = width // side, height // side
    if cell_width == 0 or cell_height == 0:
        return canvas
    for index, tile in enumerate(tiles):
        if tile is None or tile.size == 0:
            continue
        row, column = divmod(index, side)
        scale = min(cell_width / tile.shape[1], cell_height / tile.shape[0])
        size = (max(1, int(tile.shape[1] * scale)), max(1, int(tile.shape[0] * scale)))
        scaled = cv2.resize(tile, size, interpolation=cv2.INTER_AREA)
        top = row * cell_height + (cell_height - size[1]) // 2
        left = column * cell_width + (cell_width - size[0]) // 2
        canvas[top:top + size[1], left:left + size[0]] = scaled
    return canvas


def _side(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_GRID_SIDE:
        raise ValueError(f"{name} must be an integer from 1 to {MAX_GRID_SIDE} (pixels), got {value!r}")
    return value
