"""Output layouts: recognition from shapes, and decoding a real YOLOv8 export (nudenet 320n)."""

import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from services.worker.detection.detector import DetectionParams, Detector
from services.worker.detection.layouts import OutputLayout, decode, detect_layout
from services.worker.detection.letterbox import letterbox
from services.worker.models.errors import InvalidModelError
from services.worker.models.repository import ModelRepository, ModelSpec
from tests.worker.conftest import DOWNLOADS

NUDENET_WHEEL = "nudenet-3.4.2-py3-none-any.whl"


@pytest.fixture(scope="module")
def yolov8_onnx() -> bytes:
    """nudenet's 320n.onnx (a standard YOLOv8n export, 18 classes), read from its PyPI wheel."""
    wheel = DOWNLOADS / NUDENET_WHEEL
    if not wheel.is_file():
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "nudenet==3.4.2",
            "-d",
            str(DOWNLOADS),
        ]
        subprocess.run(command, check=True, capture_output=True)
    with zipfile.ZipFile(wheel) as archive:
        return archive.read("nudenet/320n.onnx")


@pytest.mark.parametrize(
    ("shape", "classes", "layout"),
    [
        (["batch", 2535, 85], 80, OutputLayout.YOLOV5),
        ([1, 2100, 23], 18, OutputLayout.YOLOV5),
        ([1, 22, 2100], 18, OutputLayout.YOLOV8),
        (["batch", 84, 8400], 80, OutputLayout.YOLOV8),
    ],
)
def test_detect_layout(shape: list[int | str], classes: int, layout: OutputLayout) -> None:
    assert detect_layout(shape, classes) is layout


@pytest.mark.parametrize("shape", [[1, 7], [1, 2535, 84], [1, 85, 2535, 1], [1, 22, 23]])
def test_unknown_layout_names_the_shape(shape: list[int]) -> None:
    with pytest.raises(InvalidModelError, match=rf"shape \[{', '.join(map(str, shape))}\]"):
        detect_layout(shape, 18)


def test_decode_yolov5_scores_are_objectness_times_class() -> None:
    raw = np.array([[10, 20, 4, 6, 0.5, 0.2, 0.8], [0, 0, 2, 2, 1.0, 0.9, 0.1]], np.float32)
    candidates = decode(raw, OutputLayout.YOLOV5)
    assert candidates.class_id.tolist() == [1, 0]
    assert candidates.score == pytest.approx([0.4, 0.9])
    assert candidates.xyxy().tolist() == [[8, 17, 12, 23], [-1, -1, 1, 1]]


@pytest.mark.parametrize("seed", range(6))
def test_decode_with_min_score_keeps_every_row_that_reaches_it(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0, 1, (500, 5 + 7)).astype(np.float32)
    if seed % 2:  # raw logits: negative objectness and class scores, where a product can be positive
        raw[:, 4:] = rng.normal(0, 2, (500, 8)).astype(np.float32)
    full = decode(raw, OutputLayout.YOLOV5)
    for min_score in (0.05, 0.3, 0.7):
        kept = decode(raw, OutputLayout.YOLOV5, min_score=min_score)
        reaching = full.score >= min_score
        assert reaching.any()
        # Every row that reaches the threshold is there, with its score, class and box, in order.
        passed = kept.score >= min_score
        np.testing.assert_array_equal(kept.score[passed], full.score[reaching])
        np.testing.assert_array_equal(kept.class_id[passed], full.class_id[reaching])
        np.testing.assert_array_equal(kept.cxcywh[passed], full.cxcywh[reaching])
        if seed % 2 == 0:
            assert len(kept) < len(full)  # and the rest was mostly left out before the class search


def test_decode_with_min_score_on_an_empty_output() -> None:
    assert len(decode(np.zeros((0, 12), np.float32), OutputLayout.YOLOV5, min_score=0.5)) == 0


def test_decode_yolov8_transposed_without_objectness() -> None:
    raw = np.array([[10, 0], [20, 0], [4, 2], [6, 2], [0.2, 0.9], [0.8, 0.1]], np.float32)
    candidates = decode(raw, OutputLayout.YOLOV8)
    assert candidates.class_id.tolist() == [1, 0]
    assert candidates.score == pytest.approx([0.8, 0.9])
    assert candidates.cxcywh.tolist() == [[10, 20, 4, 6], [0, 0, 2, 2]]


def test_real_yolov8_export(
    yolov8_onnx: bytes, video_frame: Callable[[str, int], np.ndarray], tmp_path: Path
) -> None:
    session = ort.InferenceSession(yolov8_onnx, providers=["CPUExecutionProvider"])
    assert detect_layout(session.get_outputs()[0].shape, 18) is OutputLayout.YOLOV8  # N is symbolic here
    tensor, transform = letterbox(video_frame("vtest.avi", 100), 320, 320)
    (raw,) = session.run(None, {session.get_inputs()[0].name: tensor})
    assert raw.shape == (1, 22, 2100)
    assert detect_layout(raw.shape, 18) is OutputLayout.YOLOV8
    candidates = decode(raw[0], OutputLayout.YOLOV8)
    assert len(candidates) == 2100 and candidates.class_id.max() < 18
    assert candidates.score.min() >= 0 and candidates.score.max() <= 1
    assert (candidates.cxcywh[:, :2] >= 0).all() and (candidates.cxcywh[:, :2] <= 320).all()
    # The same file through the Detector (its input size is dynamic, so no repository registration).
    (tmp_path / "320n.onnx").write_bytes(yolov8_onnx)
    spec = ModelSpec(
        "nudenet/320n",
        tmp_path / "320n.onnx",
        tuple(f"c{i}" for i in range(18)),
        session.get_inputs()[0].name,
        320,
        320,
        OutputLayout.YOLOV8,
        "RGB",
        1 / 255,
        "nudenet==3.4.2 wheel",
        "-",
        "-",
    )
    detections = Detector(spec, intra_op_threads=1).postprocess(
        raw[0], transform, DetectionParams(confidence=0.0, max_detections=5)
    )
    assert len(detections) == 5 and (detections.xyxy[:, 2:] <= [768, 576]).all()


def test_dynamic_input_size_refused_by_repository(yolov8_onnx: bytes, tmp_path: Path) -> None:
    with pytest.raises(InvalidModelError, match="input size must be fixed"):
        ModelRepository(tmp_path).register(
            "nudenet/320n", yolov8_onnx, class_names=["x"] * 18, source="", source_sha256=""
        )
