"""Operations on images: size properties, JPEG / base64 encoding and the frame's video metadata."""

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

from services.worker.workflows.operations.base import Context, describe, integer
from services.worker.workflows.serialization import jpeg_base64
from services.worker.workflows.values import VideoMetadata, WorkflowImage

Operation = Mapping[str, Any]

_IMAGE_PROPERTIES: dict[str, Callable[[np.ndarray], int | float]] = {
    "size": lambda pixels: int(pixels.shape[0] * pixels.shape[1]),
    "height": lambda pixels: int(pixels.shape[0]),
    "width": lambda pixels: int(pixels.shape[1]),
    "aspect_ratio": lambda pixels: pixels.shape[1] / pixels.shape[0] if pixels.shape[0] else 0,
}


def _image(value: Any, context: Context) -> WorkflowImage:
    if not isinstance(value, WorkflowImage):
        raise context.fail(f"expected an image, got {describe(value)}")
    return value


def image_property(value: Any, operation: Operation, context: Context) -> int | float:
    return _IMAGE_PROPERTIES[operation["property_name"]](_image(value, context).image)


def to_jpeg(value: Any, operation: Operation, context: Context) -> bytes:
    quality = integer(operation.get("compression_level", 95))
    ok, encoded = cv2.imencode(".jpg", _image(value, context).image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise context.fail("the image cannot be encoded as JPEG")
    return encoded.tobytes()


def to_base64(value: Any, operation: Operation, context: Context) -> str:
    """The image as base64-encoded JPEG (the encoding of images in workflow outputs)."""
    try:
        return jpeg_base64(_image(value, context).image)
    except ValueError as exc:
        raise context.fail(str(exc)) from exc


def frame_metadata(value: Any, operation: Operation, context: Context) -> Any:
    """``frame_number``, ``frame_timestamp`` (a datetime) or ``seconds_since_start`` ((n - 1) / fps)."""
    if isinstance(value, WorkflowImage):
        value = value.video
    if not isinstance(value, VideoMetadata):
        raise context.fail(f"expected a video frame, got {describe(value)}")
    name = operation["property_name"]
    if name == "frame_number":
        return value.frame_number
    if name == "frame_timestamp":
        return value.frame_timestamp
    if not value.fps:
        raise context.fail("seconds_since_start needs the video's fps, which this source does not report")
    return (value.frame_number - 1) / value.fps
