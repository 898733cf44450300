"""Crops: dynamic (one crop per detection, one level deeper) and static (absolute or relative, one per image).

Regions are clipped to the image (the reference slices numpy arrays with unclipped, possibly negative
offsets, which wraps around); a region with no pixels left gives ``None``, as the reference does.
"""

import uuid
from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.lineage import copy_of, place_on
from services.worker.workflows.values import WorkflowImage


def clipped_crop(image: WorkflowImage, box: tuple[int, int, int, int], crop_id: str) -> WorkflowImage | None:
    """The region ``box`` (x1, y1, x2, y2) of ``image`` as a child image; None when nothing is left."""
    x1, y1 = max(0, box[0]), max(0, box[1])
    x2, y2 = min(image.width, box[2]), min(image.height, box[3])
    if x2 <= x1 or y2 <= y1:
        return None
    return image.crop(x1, y1, x2, y2, crop_id=crop_id)


def colour_bgr(colour: Any) -> tuple[int, int, int]:
    """A colour given as '#rgb', '#rrggbb', '(r, g, b)', [r, g, b] or ``sv.Color``, as BGR."""
    if isinstance(colour, sv.Color):
        return colour.as_bgr()
    if isinstance(colour, str) and colour.startswith("#"):
        return sv.Color.from_hex(colour).as_bgr()
    if isinstance(colour, str) and colour.startswith("(") and colour.endswith(")"):
        colour = [part.strip() for part in colour[1:-1].split(",")]
    try:
        red, green, blue = (int(c) for c in colour)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid colour {colour!r}: expected '#rrggbb', '#rgb', '(r, g, b)' or [r, g, b]") from exc
    if not all(0 <= c <= 255 for c in (red, green, blue)):
        raise ValueError(f"invalid colour {colour!r}: components must be 0..255")
    return blue, green, red


def _without_background(pixels: np.ndarray, mask: np.ndarray, opacity: float, bgr: tuple[int, int, int]) -> np.ndarray:
    """Pixels outside ``mask`` replaced by ``bgr``, blended with the original at ``opacity``."""
    background = np.empty_like(pixels)
    background[:] = bgr
    isolated = np.where(mask[..., None], pixels, background)
    return cv2.addWeighted(isolated, opacity, pixels, 1.0 - opacity, 0)


class DynamicCrop:
    """``roboflow_core/dynamic_crop@v1``: one crop per detection (id = the detection's id) and that
    detection alone, moved into its crop's pixels and lineage (the reference keeps the frame as its
    parent while moving the box, so its own coordinates and its lineage disagree)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, images: WorkflowImage, predictions: sv.Detections, mask_opacity: float = 0.0,
            background_color: Any = (0, 0, 0)) -> list[dict[str, Any]]:
        if len(predictions) and values.DETECTION_ID not in predictions.data:
            raise ValueError("dynamic_crop needs detections with detection ids (a model step's predictions)")
        bgr = colour_bgr(background_color) if mask_opacity > 0 and predictions.mask is not None else (0, 0, 0)
        boxes = np.round(predictions.xyxy).astype(int).tolist()
        return [self._crop(images, predictions, index, box, mask_opacity, bgr) for index, box in enumerate(boxes)]

    @staticmethod
    def _crop(image: WorkflowImage, predictions: sv.Detections, index: int, box: list[int], opacity: float,
              bgr: tuple[int, int, int]) -> dict[str, Any]:
        crop = clipped_crop(image, (box[0], box[1], box[2], box[3]),
                            str(predictions.data[values.DETECTION_ID][index]))
        if crop is None:
            return {"crops": None, "predictions": None}
        x1, y1 = crop.origin.offset_x, crop.origin.offset_y
        x2, y2 = x1 + crop.width, y1 + crop.height
        own = copy_of(predictions, [index])
        own.xyxy = own.xyxy - np.array([x1, y1, x1, y1], dtype=own.xyxy.dtype)
        if own.mask is not None:
            own.mask = np.ascontiguousarray(np.asarray(own.mask)[:, y1:y2, x1:x2])
            if opacity > 0:
                crop = crop.with_image(_without_background(crop.image, own.mask[0], opacity, bgr))
        return {"crops": crop, "predictions": place_on(own, crop)}


class _StaticCrop:
    """One crop per image at a fixed place; ``crops`` is None when the region misses the image."""

    prefix = ""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def region(self, image: WorkflowImage, x_center: float, y_center: float, width: float,
               height: float) -> tuple[int, int, int, int]:
        raise NotImplementedError

    def run(self, images: WorkflowImage, x_center: float, y_center: float, width: float,
            height: float) -> dict[str, Any]:
        box = self.region(images, x_center, y_center, width, height)
        return {"crops": clipped_crop(images, box, f"{self.prefix}.{uuid.uuid4()}")}


def _centred(x_center: float, y_center: float, width: float, height: float) -> tuple[int, int, int, int]:
    x_min, y_min = round(x_center - width / 2), round(y_center - height / 2)
    return x_min, y_min, round(x_min + width), round(y_min + height)


class AbsoluteStaticCrop(_StaticCrop):
    """``roboflow_core/absolute_static_crop@v1``: centre and size in pixels."""

    prefix = "absolute_static_crop"

    def region(self, image: WorkflowImage, x_center: float, y_center: float, width: float,
               height: float) -> tuple[int, int, int, int]:
        return _centred(x_center, y_center, width, height)


class RelativeStaticCrop(_StaticCrop):
    """``roboflow_core/relative_static_crop@v1``: centre and size as fractions of the image's size."""

    prefix = "relative_static_crop"

    def region(self, image: WorkflowImage, x_center: float, y_center: float, width: float,
               height: float) -> tuple[int, int, int, int]:
        w, h = image.width, image.height
        return _centred(round(w * x_center), round(h * y_center), round(w * width), round(h * height))
