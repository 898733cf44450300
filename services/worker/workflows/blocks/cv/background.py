"""background_subtraction@v1: a source's moving pixels, as a mask image (OpenCV's MOG2).

As the reference: the background model (``history`` frames, ``threshold`` on the squared Mahalanobis distance,
shadows detected) is made on the first frame and learns from every frame; the mask is 255 where a pixel is
foreground, 127 where it is a shadow, 0 elsewhere, in the three channels of a BGR image that takes the frame's
place (same lineage). The block is built once per (step, source), so each source has its own model: unlike the
reference, whose one model would learn from every source's frames in turn. Like the reference, ``history`` and
``threshold`` are read on the first frame; a model keeps them.
"""

from typing import Any

import cv2

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.cv.gray import bgr
from services.worker.workflows.blocks.cv.images import checked_int
from services.worker.workflows.values import WorkflowImage


class BackgroundSubtraction:
    """``roboflow_core/background_subtraction@v1``: the background model of one source."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env
        self._subtractor: cv2.BackgroundSubtractorMOG2 | None = None

    def run(self, image: WorkflowImage, threshold: int = 16, history: int = 30) -> dict[str, Any]:
        if self._subtractor is None:
            self._subtractor = cv2.createBackgroundSubtractorMOG2(
                history=checked_int("history", history, 1), varThreshold=checked_int("threshold", threshold, 1),
                detectShadows=True)
        return {"image": image.with_image(bgr(self._subtractor.apply(image.image)))}
