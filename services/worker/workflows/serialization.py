"""Workflow output values -> JSON, as the reference serialises them.

Detections become the reference's prediction dict (``{"image": {width, height}, "predictions":
[...]}`` with centre x/y, width, height, confidence, class_id, [tracker_id], class, detection_id,
parent_id, then the extra fields blocks add); images ``{"type": "base64", "value": <JPEG>,
"video_metadata": {...}}`` (a :class:`SerialisedImage`, which also carries the pixels, outside the
JSON); numpy values plain numbers and lists; anything else as JSON allows.
"""

import base64
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.redaction import REDACTED
from services.worker.workflows import values as v

JPEG_QUALITY = 90
_ORIGIN_KEYS = ((v.PARENT_COORDINATES, v.PARENT_DIMENSIONS, "parent_origin"),
                (v.ROOT_PARENT_COORDINATES, v.ROOT_PARENT_DIMENSIONS, "root_parent_origin"))


def serialise(value: Any) -> Any:
    """A JSON-ready copy of any value a block may output (a secret as ``***``)."""
    if isinstance(value, v.SecretText):
        return REDACTED
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, sv.Detections):
        return serialise_detections(value)
    if isinstance(value, v.WorkflowImage):
        return serialise_image(value)
    if isinstance(value, v.Classification):
        return serialise_classification(value)
    if isinstance(value, v.VideoMetadata):
        return value.as_dict()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return serialise(value.value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(key): serialise(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [serialise(item) for item in value]
    return str(value)


def serialise_detections(detections: sv.Detections) -> dict[str, Any]:
    data = detections.data
    predictions = []
    xyxy = detections.xyxy.astype(float).tolist()
    confidence = (detections.confidence if detections.confidence is not None
                  else np.ones(len(detections))).astype(float).tolist()
    class_id = (detections.class_id if detections.class_id is not None
                else np.zeros(len(detections), dtype=int)).tolist()
    tracker_id = detections.tracker_id.tolist() if detections.tracker_id is not None else None
    for index, (x1, y1, x2, y2) in enumerate(xyxy):
        width, height = abs(x2 - x1), abs(y2 - y1)
        item: dict[str, Any] = {"width": width, "height": height, "x": x1 + width / 2, "y": y1 + height / 2,
                                "confidence": confidence[index], "class_id": int(class_id[index])}
        if tracker_id is not None:
            item["tracker_id"] = int(tracker_id[index])
        item["class"] = str(data[v.CLASS_NAME][index]) if v.CLASS_NAME in data else str(class_id[index])
        if v.DETECTION_ID in data:
            item["detection_id"] = str(data[v.DETECTION_ID][index])
        if v.PARENT_ID in data:
            item["parent_id"] = str(data[v.PARENT_ID][index])
            _origins(item, data, index)
        for key in v.EXTRA_FIELDS:
            if key in data:
                item[key] = serialise(data[key][index])
        if all(key in data for key in v.RECT_FIELDS):  # bounding_rect's: its width and height replace the box's
            item.update({key: serialise(data[key][index]) for key in v.RECT_FIELDS})
        predictions.append(item)
    return {"image": _image_size(detections), "predictions": predictions}


def _origins(item: dict[str, Any], data: Mapping[str, Any], index: int) -> None:
    """Crop lineage, only for detections made on a crop or slice (as the reference)."""
    if v.ROOT_PARENT_ID not in data or str(data[v.ROOT_PARENT_ID][index]) == item["parent_id"]:
        return
    for coordinates, dimensions, key in _ORIGIN_KEYS:
        if coordinates in data and dimensions in data:
            (x, y), (h, w) = np.asarray(data[coordinates][index]).tolist(), np.asarray(data[dimensions][index]).tolist()
            item[key] = {"offset_x": int(x), "offset_y": int(y), "width": int(w), "height": int(h)}
            if key == "parent_origin":
                item["root_parent_id"] = str(data[v.ROOT_PARENT_ID][index])


def _image_size(detections: sv.Detections) -> dict[str, int | None]:
    if len(detections) and v.IMAGE_DIMENSIONS in detections.data:
        height, width = np.asarray(detections.data[v.IMAGE_DIMENSIONS][0]).tolist()
        return {"width": int(width), "height": int(height)}
    size = detections.metadata.get(v.IMAGE_SIZE)
    if size is not None:
        return {"width": int(size[1]), "height": int(size[0])}
    return {"width": None, "height": None}


class SerialisedImage(dict[str, Any]):
    """An image output's JSON (``{"type": "base64", "value": <JPEG>, ...}``) that also keeps its BGR pixels.

    ``pixels`` is an attribute, not a key: ``json.dumps`` writes only the keys, while a consumer in the same
    process (the WebRTC session's outgoing video) uses the pixels as they are instead of decoding the JPEG.
    """

    __slots__ = ("pixels",)

    def __init__(self, fields: dict[str, Any], pixels: np.ndarray | None) -> None:
        super().__init__(fields)
        self.pixels = pixels


def drop_pixels(value: Any) -> None:
    """Forgets the pixels of every image in a serialised output (their JSON stays): a result that waits in
    a sink queue then holds only its JPEG. Pipelines that send no video back call this on every output."""
    if isinstance(value, SerialisedImage):
        value.pixels = None
    if isinstance(value, dict):
        for item in value.values():
            drop_pixels(item)
    elif isinstance(value, list):
        for item in value:
            drop_pixels(item)


def serialise_image(image: v.WorkflowImage) -> SerialisedImage:
    fields = {"type": "base64", "value": jpeg_base64(image.image), "video_metadata": image.video.as_dict()}
    return SerialisedImage(fields, image.image)


def jpeg_base64(pixels: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the image cannot be encoded as JPEG")
    return base64.b64encode(encoded.tobytes()).decode("ascii")


def serialise_classification(result: v.Classification) -> dict[str, Any]:
    """The reference's single-label prediction (``predictions`` a list, most confident first, ``top``,
    ``confidence``) or multi-label one (``predictions`` by class name, ``predicted_classes``)."""
    image = {"width": result.image.width, "height": result.image.height}
    lineage = {"prediction_type": "classification", "parent_id": result.image.parent_id,
               "root_parent_id": result.image.root_origin.parent_id}
    if result.multi_label:
        return {
            "inference_id": result.inference_id,
            "image": image,
            "predictions": {name: {"confidence": float(result.confidences[i]), "class_id": result.class_id(i)}
                            for i, name in enumerate(result.class_names)},
            "predicted_classes": list(result.predicted),
            **lineage,
        }
    order = np.argsort(-result.confidences, kind="stable")
    return {
        "inference_id": result.inference_id,
        "image": image,
        "predictions": [
            {"class": result.class_names[i], "class_id": result.class_id(i), "confidence": float(result.confidences[i])}
            for i in order.tolist()
        ],
        "top": result.top,
        "confidence": result.top_confidence,
        **lineage,
    }
