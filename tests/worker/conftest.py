"""Worker test fixtures: the default model (built once, then cached on disk) and real video frames."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from services.worker.models.build import build_default_model
from services.worker.models.repository import ModelSpec

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "data" / "models"
DOWNLOADS = ROOT / "data" / "downloads"
MEDIA = ROOT / "data" / "media"


@pytest.fixture(scope="session")
def default_model() -> ModelSpec:
    """YOLOv3-tiny COCO 416, built into data/models on first use (about two seconds)."""
    return build_default_model(MODELS, DOWNLOADS)


@pytest.fixture(scope="session")
def video_frame() -> Callable[[str, int], np.ndarray]:
    """Factory: frame ``index`` (BGR) of a sample video in data/media, decoded with OpenCV."""
    import cv2

    def read(name: str, index: int) -> np.ndarray:
        path = MEDIA / name
        if not path.is_file():
            pytest.fail(f"{path} is missing: run `python -m tools.fetch_media`")
        capture = cv2.VideoCapture(str(path))
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = capture.read()
        finally:
            capture.release()
        assert ok, f"cannot read frame {index} of {path}"
        return np.asarray(image)

    return read
