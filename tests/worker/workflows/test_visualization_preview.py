"""The dashboard preview draws with the visualization blocks' annotators: the same drawing code as the
blocks (its cost is measured by the workflow benchmark, not here)."""

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest

from services.worker.preview import PALETTE, annotate
from services.worker.workflows.blocks.visualization.predictions import detections_from_predictions
from services.worker.workflows.values import CLASS_NAME
from tests.worker.workflows.visualization_support import Step, workflow_image


@pytest.fixture
def frame(video_frame: Callable[[str, int], np.ndarray]) -> np.ndarray:
    return video_frame("vtest.avi", 10)


def _item(x: float, y: float, width: float, height: float, class_id: int, name: str, confidence: Any = 0.8
          ) -> dict[str, Any]:
    return {"x": x, "y": y, "width": width, "height": height, "confidence": confidence, "class": name,
            "class_id": class_id, "detection_id": "d"}


def test_reference_predictions_become_detections() -> None:
    items = [_item(100, 50, 40, 20, 2, "car", 0.9), {"x": "?"}, {}, _item(10, 20, 8, 6, 0, "person", None)]
    found = detections_from_predictions(items, scale=0.5)
    assert found.xyxy.tolist() == [[40, 20, 60, 30], [3, 8.5, 7, 11.5]]
    assert found.class_id is not None and found.class_id.tolist() == [2, 0]
    assert list(found.data[CLASS_NAME]) == ["car", "person"]
    assert found.confidence is not None
    assert found.confidence[0] == pytest.approx(0.9) and np.isnan(found.confidence[1])
    assert len(detections_from_predictions([])) == 0


def test_the_preview_draws_as_a_box_and_a_label_visualization_would(frame: np.ndarray) -> None:
    items = [_item(150 + 90 * i, 250 + 10 * i, 60, 120, i % 3, ("person", "bicycle", "car")[i % 3], 0.5 + i / 20)
             for i in range(6)]
    preview = annotate(frame, {"predictions": items})  # 768 -> 480 wide

    small = workflow_image(cv2.resize(frame, (480, 360), interpolation=cv2.INTER_AREA))
    found = detections_from_predictions(items, scale=480 / 768)
    hex_colours = [f"#{r:02x}{g:02x}{b:02x}" for b, g, r in PALETTE]
    colours: dict[str, Any] = {"color_palette": "CUSTOM", "custom_colors": hex_colours}
    boxed = Step("roboflow_core/bounding_box_visualization@v1", **colours)(image=small, predictions=found)
    labelled = Step("roboflow_core/label_visualization@v1", text="Class and Confidence", text_scale=0.4,
                    text_padding=3, **colours)(image=boxed, predictions=found)
    np.testing.assert_array_equal(preview, labelled.image)
