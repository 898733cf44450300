"""Real-looking workflow values for the query-language and formatter/flow block tests.

``scene`` is three detections on a 768x576 frame, with every data key a model block sets:

    A  person  conf 0.90  box (10, 20)-(50, 100)    centre (30, 60)    size 3200
    B  car     conf 0.75  box (200, 40)-(260, 160)  centre (230, 100)  size 7200
    C  person  conf 0.35  box (300, 50)-(330, 120)  centre (315, 85)   size 2100
"""

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import VideoMetadata, WorkflowImage, detections_on

DEFINITIONS = Path(__file__).resolve().parents[2] / "core" / "workflows" / "definitions"
COCO = ("person", "bicycle", "car")
SCENE_BOXES = np.array([[10, 20, 50, 100], [200, 40, 260, 160], [300, 50, 330, 120]], dtype=np.float32)
SCENE_CONFIDENCE = np.array([0.9, 0.75, 0.35], dtype=np.float32)
SCENE_CLASSES = np.array([0, 2, 0])
START = datetime(2026, 12, 3, 8, 0, 0, tzinfo=UTC)


def frame(pixels: np.ndarray | None = None, number: int = 1, fps: float | None = 10.0,
          video: str = "vtest") -> WorkflowImage:
    """A video frame (a black 768x576 one unless ``pixels`` are given) with its video metadata."""
    image = np.zeros((576, 768, 3), dtype=np.uint8) if pixels is None else pixels
    timestamp = START + timedelta(seconds=(number - 1) / (fps or 10.0))
    return WorkflowImage.frame(image, "image.[0]", VideoMetadata(video, number, timestamp, fps))


def scene(image: WorkflowImage | None = None) -> sv.Detections:
    return detections_on(image or frame(), SCENE_BOXES, SCENE_CONFIDENCE, SCENE_CLASSES, COCO, "inference-1")


def boxes(rows: Sequence[tuple[float, float, float, float, float, str]], image: WorkflowImage | None = None
          ) -> sv.Detections:
    """Detections from ``(x1, y1, x2, y2, confidence, class name)`` rows (COCO class ids)."""
    if not rows:
        return detections_on(image or frame(), np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int), COCO, "i")
    xyxy = np.array([row[:4] for row in rows], dtype=np.float32)
    confidence = np.array([row[4] for row in rows], dtype=np.float32)
    class_id = np.array([COCO.index(row[5]) for row in rows])
    return detections_on(image or frame(), xyxy, confidence, class_id, COCO, "inference-2")


def published(name: str) -> dict[str, Any]:
    """A definition from the reference's integration tests (tests/core/workflows/definitions/<name>.json)."""
    return json.loads((DEFINITIONS / f"{name}.json").read_text())  # type: ignore[no-any-return]


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_780_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class NoModels:
    def detect(self, model_id: str, image: Any, params: Mapping[str, Any]) -> Any:
        raise AssertionError("these blocks use no model")

    def classify(self, model_id: str, image: Any, confidence: float) -> Any:
        raise AssertionError("these blocks use no model")


class AtOnce:
    def submit(self, work: Callable[[], None]) -> bool:
        work()
        return True


def environment(clock: Callable[[], float] | None = None) -> BlockEnvironment:
    return BlockEnvironment(source_id=0, models=NoModels(), background=AtOnce(), clock=clock or FakeClock())


def resolved(step: PlanStep, values: Mapping[str, Any]) -> dict[str, Any]:
    """The step's params with each selector replaced by ``values[selector]`` (nested ones too)."""

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            return values[value]
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        return value

    return {name: (value if name in _LITERAL_TREES else resolve(value)) for name, value in step.params.items()}


# Literal fields holding query-language trees: never searched for selectors.
_LITERAL_TREES = {"operations", "data_operations", "columns_operations", "switch", "condition_statement",
                  "aggregation_mode", "next_steps"}
