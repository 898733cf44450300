"""The image slicer (SAHI's first half): overlapping tiles of an image, one level deeper.

v1 steps from the left/top edge and lets the last row and column run short (supervision's original
slicer, as the reference's v1). v2 pushes the last row and column back inside the image so every
tile has the full size, and drops the duplicates that makes (as supervision's current
``InferenceSlicer`` does when there is overlap).
"""

import uuid
from typing import Any

import numpy as np

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import WorkflowImage


def _starts(size: int, tile: int, overlap_ratio: float, pushed: bool) -> list[int]:
    tile = min(tile, size) if pushed else tile
    stride = tile - int(overlap_ratio * tile)
    starts = list(range(0, size, stride))
    if not pushed:
        return starts
    last = size - tile
    return sorted({min(start, last) for start in starts})


def slice_offsets(resolution_wh: tuple[int, int], slice_wh: tuple[int, int], overlap_ratio_wh: tuple[float, float],
                  pushed: bool) -> np.ndarray:
    """Tiles (N, 4) as x_min, y_min, x_max, y_max, row by row; ``pushed``: v2's full-size border tiles."""
    (width, height), (tile_w, tile_h) = resolution_wh, slice_wh
    xs = _starts(width, tile_w, overlap_ratio_wh[0], pushed)
    ys = _starts(height, tile_h, overlap_ratio_wh[1], pushed)
    x_min, y_min = np.meshgrid(np.array(xs, dtype=np.int64), np.array(ys, dtype=np.int64))
    x_max = np.clip(x_min + tile_w, 0, width)
    y_max = np.clip(y_min + tile_h, 0, height)
    return np.stack([x_min, y_min, x_max, y_max], axis=-1).reshape(-1, 4)


class ImageSlicer:
    """``roboflow_core/image_slicer@v1``: ``slices`` = one image per tile (id ``image_slicer.<uuid>``)."""

    pushed = False

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, slice_width: int = 640, slice_height: int = 640,
            overlap_ratio_width: float = 0.2, overlap_ratio_height: float = 0.2) -> list[dict[str, Any]]:
        ratios = {"overlap_ratio_width": overlap_ratio_width, "overlap_ratio_height": overlap_ratio_height}
        for name, ratio in ratios.items():
            if not 0.0 <= ratio < 1.0:
                raise ValueError(f"{name} must be >= 0 and < 1, got {ratio}")
        if slice_width <= 0 or slice_height <= 0:
            raise ValueError(f"slice size must be positive, got {slice_width}x{slice_height}")
        offsets = slice_offsets((image.width, image.height), (slice_width, slice_height),
                                (overlap_ratio_width, overlap_ratio_height), self.pushed)
        return [{"slices": image.crop(x1, y1, x2, y2, crop_id=f"image_slicer.{uuid.uuid4()}")}
                for x1, y1, x2, y2 in offsets.tolist()]


class ImageSlicerV2(ImageSlicer):
    """``roboflow_core/image_slicer@v2``: border tiles pushed inside, every tile full-size (when it fits)."""

    pushed = True
