"""The detections of one frame: parallel numpy arrays in source-frame pixels; their ids."""

import os
import uuid
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Detections:
    """``xyxy`` (N, 4) float32 corners, ``confidence`` (N,) float32, ``class_id`` (N,) int64."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray

    def __len__(self) -> int:
        return len(self.confidence)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def detection_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs as strings, from one read of the OS's random source.

    ``uuid.uuid4()`` reads it once per id, and ``os.urandom`` lets go of the GIL for each read: on the
    post thread, with the pipeline's other threads waiting for the GIL, every detection was a hand-off
    and a wake-up. One read per frame makes it one.
    """
    if count <= 0:
        return []
    random = os.urandom(16 * count)
    return [str(uuid.UUID(bytes=random[16 * index:16 * index + 16], version=4)) for index in range(count)]
