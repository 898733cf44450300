"""The detections of one frame: parallel numpy arrays in source-frame pixels."""

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
