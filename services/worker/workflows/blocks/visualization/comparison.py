"""model_comparison_visualization: where two models' predictions disagree.

Areas only model A covers are tinted ``color_a``, areas only B covers ``color_b``, areas neither
covers ``background_color``, each blended at ``opacity``; areas both cover are left as they are.
An area is a detection's mask, or its box when the predictions have no masks.
"""

from typing import Any

import cv2
import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.visualization.base import OUTPUT, AnnotatorCache, canvas
from services.worker.workflows.blocks.visualization.colours import parse_color
from services.worker.workflows.values import WorkflowImage


def coverage(detections: sv.Detections, height: int, width: int) -> np.ndarray:
    """Where any of ``detections`` lies: the union of their masks, else of their boxes (clipped)."""
    covered = np.zeros((height, width), dtype=bool)
    if detections.mask is not None:
        for mask in detections.mask:
            covered |= mask.astype(bool)
        return covered
    for x1, y1, x2, y2 in detections.xyxy.astype(int).tolist():
        covered[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = True
    return covered


class ModelComparison:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._colours = AnnotatorCache(lambda **names: {key: parse_color(value).as_bgr()
                                                        for key, value in names.items()})

    def run(self, image: WorkflowImage, predictions_a: sv.Detections, predictions_b: sv.Detections,
            copy_image: bool = True, color_a: str = "GREEN", color_b: str = "RED",
            background_color: str = "BLACK", opacity: float = 0.7) -> dict[str, Any]:
        bgr = self._colours.get({"a": color_a, "b": color_b, "background": background_color})
        scene = canvas(image, copy_image)
        height, width = scene.shape[:2]
        in_a, in_b = coverage(predictions_a, height, width), coverage(predictions_b, height, width)
        tint = np.empty_like(scene)
        tint[~(in_a | in_b)] = bgr["background"]
        tint[in_a & ~in_b] = bgr["a"]
        tint[in_b & ~in_a] = bgr["b"]
        tinted = ~(in_a & in_b)
        blended = cv2.addWeighted(scene, 1.0 - opacity, tint, opacity, 0.0)
        scene[tinted] = blended[tinted]
        return {OUTPUT: image.with_image(scene)}
