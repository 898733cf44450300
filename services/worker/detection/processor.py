"""The round processor of a plain detection pipeline: one model, the reference prediction per frame.

Pre-processing (letterbox, stacking the round's canvases into one batch) runs on the pipeline's
collector thread, ``session.run`` on its inference threads, decoding and NMS on its post thread.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from services.worker.detection.detector import DetectionParams, Detections
from services.worker.detection.letterbox import LetterboxTransform
from services.worker.detection.predictions import to_prediction
from services.worker.engine.frames import VideoFrame


class FrameDetector(Protocol):
    """The part of ``Detector`` the processor uses (tests may substitute a fake)."""

    @property
    def class_names(self) -> Sequence[str]: ...

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, LetterboxTransform]: ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def postprocess(self, raw: np.ndarray, transform: LetterboxTransform, params: DetectionParams) -> Detections: ...


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    batch: np.ndarray
    transforms: list[LetterboxTransform]


class DetectionProcessor:
    def __init__(self, detector: FrameDetector, params: DetectionParams | None = None) -> None:
        self._detector = detector
        self._params = params or DetectionParams()

    def take_turn(self) -> object | None:
        """A turn at the inference service before the next round's frames are picked (None: runs locally)."""
        take = getattr(self._detector, "take_turn", None)
        return take() if take is not None else None

    def prepare(self, frames: Sequence[VideoFrame]) -> PreparedBatch:
        canvases, transforms = zip(*(self._detector.preprocess(frame.image) for frame in frames), strict=True)
        batch = canvases[0] if len(canvases) == 1 else np.concatenate(canvases)
        return PreparedBatch(batch, list(transforms))

    def infer(self, prepared: PreparedBatch) -> np.ndarray:
        return self._detector.infer(prepared.batch)

    def finish(self, frames: Sequence[VideoFrame], prepared: PreparedBatch, inferred: Any) -> list[dict[str, Any]]:
        outputs = []
        for index, (frame, transform) in enumerate(zip(frames, prepared.transforms, strict=True)):
            detections = self._detector.postprocess(inferred[index], transform, self._params)
            height, width = frame.image.shape[:2]
            outputs.append(to_prediction(detections, self._detector.class_names, width, height))
        return outputs

    def close(self, timeout: float) -> None:
        pass  # the detector's session goes with the process
