"""The values that flow between workflow blocks at run time.

Images are :class:`WorkflowImage` (the frame, or a crop/slice of it, with where it came from and the
video metadata); detections are ``supervision.Detections`` whose ``data`` carries the fields the
reference's serialiser writes (class name, detection id, parent id, ...) under the keys below;
everything else is plain Python (numbers, strings, lists, dicts). Per-detection extras that blocks
add (time in zone, path deviation, velocity, ...) are more ``data`` keys; :data:`EXTRA_FIELDS` lists
the ones that are serialised, in order.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast

import numpy as np
import supervision as sv

from services.worker.detection.detections import detection_ids

# Keys of ``sv.Detections.data`` (the reference's names).
CLASS_NAME = "class_name"
DETECTION_ID = "detection_id"
PARENT_ID = "parent_id"
INFERENCE_ID = "inference_id"
IMAGE_DIMENSIONS = "image_dimensions"  # (h, w) of the image the detection was made on
PREDICTION_TYPE = "prediction_type"
PARENT_COORDINATES = "parent_coordinates"  # (x, y) offset of that image in its parent
PARENT_DIMENSIONS = "parent_dimensions"  # (h, w) of the parent
ROOT_PARENT_ID = "root_parent_id"
ROOT_PARENT_COORDINATES = "root_parent_coordinates"  # (x, y) offset in the video frame
ROOT_PARENT_DIMENSIONS = "root_parent_dimensions"  # (h, w) of the video frame
TIME_IN_ZONE = "time_in_zone"
PATH_DEVIATION = "path_deviation"
VELOCITY = "velocity"
SPEED = "speed"
SMOOTHED_VELOCITY = "smoothed_velocity"
SMOOTHED_SPEED = "smoothed_speed"
DETECTED_CODE = "data"  # the text a QR code or barcode decodes to
NEAREST_TARGET_DISTANCE = "nearest_target_distance"  # px to the nearest target (detections_nearest_neighbor)
AREA_PX = "area_px"  # mask_area_measurement: px², and px² / pixels_per_unit²
AREA_CONVERTED = "area_converted"
# bounding_rect: the minimum-area rectangle's corners (4 x 2), its sides and angle (OpenCV's minAreaRect). Serialised
# as the reference does: "rect" and "angle" added, and "width" / "height" then the rectangle's own sides.
RECT = "rect"
RECT_WIDTH = "width"
RECT_HEIGHT = "height"
RECT_ANGLE = "angle"
RECT_FIELDS = (RECT_ANGLE, RECT, RECT_HEIGHT, RECT_WIDTH)

# Per-detection data keys that appear in serialised predictions, in this order, after parent_id.
EXTRA_FIELDS = (TIME_IN_ZONE, PATH_DEVIATION, DETECTED_CODE, VELOCITY, SPEED, SMOOTHED_VELOCITY, SMOOTHED_SPEED,
                AREA_PX, AREA_CONVERTED, NEAREST_TARGET_DISTANCE)


@dataclass(frozen=True, slots=True)
class VideoMetadata:
    """The reference's video metadata of a frame."""

    video_identifier: str
    frame_number: int
    frame_timestamp: datetime
    fps: float | None = None
    measured_fps: float | None = None
    comes_from_video_file: bool | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "video_identifier": self.video_identifier,
            "frame_number": self.frame_number,
            "frame_timestamp": self.frame_timestamp.isoformat(),
            "fps": self.fps,
            "measured_fps": self.measured_fps,
            "comes_from_video_file": self.comes_from_video_file,
        }


@dataclass(frozen=True, slots=True)
class ImageOrigin:
    """Where an image sits in another: its parent's id, its offset there and the parent's size."""

    parent_id: str
    offset_x: int = 0
    offset_y: int = 0
    parent_width: int = 0
    parent_height: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"offset_x": self.offset_x, "offset_y": self.offset_y,
                "width": self.parent_width, "height": self.parent_height}


@dataclass(frozen=True, slots=True)
class WorkflowImage:
    """An image in a workflow: BGR uint8 HxWx3 plus lineage and the video metadata of its frame.

    ``origin``: its place in its direct parent; ``root_origin``: its place in the video frame.
    For the frame itself both are the frame (offset 0, its own size).
    """

    image: np.ndarray
    parent_id: str
    origin: ImageOrigin
    root_origin: ImageOrigin
    video: VideoMetadata

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @classmethod
    def frame(cls, image: np.ndarray, parent_id: str, video: VideoMetadata) -> "WorkflowImage":
        height, width = image.shape[:2]
        origin = ImageOrigin(parent_id, 0, 0, int(width), int(height))
        return cls(image, parent_id, origin, origin, video)

    def crop(self, x1: int, y1: int, x2: int, y2: int, crop_id: str | None = None,
             image: np.ndarray | None = None) -> "WorkflowImage":
        """The region [x1, x2) x [y1, y2) (clipped) as a child image (``image`` replaces its pixels)."""
        x1, y1 = max(0, int(x1)), max(0, int(y1))
        x2, y2 = min(self.width, int(x2)), min(self.height, int(y2))
        pixels = self.image[y1:y2, x1:x2] if image is None else image
        origin = ImageOrigin(self.parent_id, x1, y1, self.width, self.height)
        root = ImageOrigin(self.root_origin.parent_id, self.root_origin.offset_x + x1,
                           self.root_origin.offset_y + y1, self.root_origin.parent_width,
                           self.root_origin.parent_height)
        return WorkflowImage(pixels, crop_id or str(uuid.uuid4()), origin, root, self.video)

    def with_image(self, image: np.ndarray) -> "WorkflowImage":
        """The same image (same lineage) with other pixels, e.g. after drawing on it."""
        return replace(self, image=image)


# ``sv.Detections.metadata`` key: (h, w) of the image the detections were made on, so even an empty
# result serialises with its image size (the reference writes null width/height then).
IMAGE_SIZE = "image_dimensions"


def detections_on(image: WorkflowImage, xyxy: np.ndarray, confidence: np.ndarray, class_id: np.ndarray,
                  class_names: Sequence[str], inference_id: str, prediction_type: str = "object-detection"
                  ) -> sv.Detections:
    """``sv.Detections`` for boxes found on ``image``, with every lineage field the blocks rely on."""
    count = len(confidence)
    names = np.array([class_names[c] if 0 <= c < len(class_names) else str(c) for c in class_id.tolist()],
                     dtype=object)
    order = np.argsort(-confidence, kind="stable")  # the reference sorts by confidence
    detections = sv.Detections(xyxy=np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)[order],
                               confidence=np.asarray(confidence, dtype=np.float32)[order],
                               class_id=np.asarray(class_id, dtype=np.int64)[order])
    root = image.root_origin
    detections.data = {
        CLASS_NAME: names[order],
        DETECTION_ID: np.array(detection_ids(count), dtype=object),
        PARENT_ID: np.array([image.parent_id] * count, dtype=object),
        INFERENCE_ID: np.array([inference_id] * count, dtype=object),
        PREDICTION_TYPE: np.array([prediction_type] * count, dtype=object),
        IMAGE_DIMENSIONS: np.array([[image.height, image.width]] * count, dtype=np.int64).reshape(-1, 2),
        PARENT_COORDINATES: np.array([[image.origin.offset_x, image.origin.offset_y]] * count,
                                     dtype=np.int64).reshape(-1, 2),
        PARENT_DIMENSIONS: np.array([[image.origin.parent_height, image.origin.parent_width]] * count,
                                    dtype=np.int64).reshape(-1, 2),
        ROOT_PARENT_ID: np.array([root.parent_id] * count, dtype=object),
        ROOT_PARENT_COORDINATES: np.array([[root.offset_x, root.offset_y]] * count, dtype=np.int64).reshape(-1, 2),
        ROOT_PARENT_DIMENSIONS: np.array([[root.parent_height, root.parent_width]] * count,
                                         dtype=np.int64).reshape(-1, 2),
    }
    detections.metadata[IMAGE_SIZE] = (image.height, image.width)
    return detections


def to_root_coordinates(detections: sv.Detections) -> sv.Detections:
    """The detections moved into the video frame's coordinates (no-op for detections made on it)."""
    if len(detections) == 0 or ROOT_PARENT_COORDINATES not in detections.data:
        return detections
    offsets = np.asarray(detections.data[ROOT_PARENT_COORDINATES], dtype=np.float32)
    if not offsets.any():
        return detections
    moved = cast(sv.Detections, detections[np.arange(len(detections))])  # a copy
    moved.xyxy = detections.xyxy + np.hstack([offsets, offsets])
    moved.data[IMAGE_DIMENSIONS] = np.asarray(detections.data[ROOT_PARENT_DIMENSIONS])
    moved.data[PARENT_ID] = np.asarray(detections.data[ROOT_PARENT_ID])
    zeros = np.zeros_like(offsets, dtype=np.int64)
    moved.data[PARENT_COORDINATES] = zeros
    moved.data[ROOT_PARENT_COORDINATES] = zeros
    moved.data[PARENT_DIMENSIONS] = np.asarray(detections.data[ROOT_PARENT_DIMENSIONS])
    height, width = np.asarray(detections.data[ROOT_PARENT_DIMENSIONS])[0].tolist()
    moved.metadata[IMAGE_SIZE] = (int(height), int(width))
    return moved


@dataclass(frozen=True, slots=True)
class Classification:
    """A classification of one image (the reference's classification prediction): single-label (one top class)
    or multi-label (``predicted``: every class the image has, e.g. each class a sigmoid scores above the
    threshold, or the classes a VLM listed).

    ``class_ids``: each class's id (empty: its position; a VLM's answer may name a class outside the list it was
    given, id -1). ``top_index``: the single-label top class when it is not simply the most confident (a VLM's
    answer names it)."""

    image: WorkflowImage
    class_names: tuple[str, ...]
    confidences: np.ndarray  # per class, same order as class_names
    inference_id: str
    threshold: float = 0.4
    multi_label: bool = False
    predicted: tuple[str, ...] = ()
    class_ids: tuple[int, ...] = ()
    top_index: int | None = None

    def class_id(self, index: int) -> int:
        return self.class_ids[index] if self.class_ids else index

    @property
    def leading_index(self) -> int | None:
        """The index of the top class: single-label, the chosen or most confident class; multi-label, the most
        confident predicted class. None when there is none (no classes, nothing predicted)."""
        if not len(self.confidences):
            return None
        if not self.multi_label:
            return self.top_index if self.top_index is not None else int(np.argmax(self.confidences))
        predicted = [index for index, name in enumerate(self.class_names) if name in self.predicted]
        return max(predicted, key=lambda index: float(self.confidences[index]), default=None)

    @property
    def top(self) -> str:
        index = self.leading_index
        return self.class_names[index] if index is not None else ""

    @property
    def top_confidence(self) -> float:
        index = self.leading_index
        return float(self.confidences[index]) if index is not None else 0.0


class SecretText(str):
    """A secret environment_secrets_store read: a plain string to the blocks it feeds (a Slack token, a password),
    but ``***`` in a frame's serialised outputs and in its ``repr``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"
