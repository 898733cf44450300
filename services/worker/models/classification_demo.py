"""A small but real classification model, built with ``onnx.helper``: which of red, green and blue
dominates an image.

Graph: input [B, 3, 64, 64] (RGB / 255) -> GlobalAveragePool -> Flatten -> MatMul by ``GAIN`` x the
identity -> logits [B, 3] -> Softmax (or the logits alone, with ``logits=True`` in its metadata). So
the probability of each class is the softmax of ``GAIN`` x the image's mean channel values: a solid
colour is classified with certainty, a grey image is a three-way tie. Used by tests and demos of
classification workflows; registered under :data:`DEMO_CLASSIFIER_ID`.
"""

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from services.worker.models.repository import ModelRepository, ModelSpec

DEMO_CLASSIFIER_ID = "demo-colours/1"
CLASS_NAMES = ("red", "green", "blue")
SIZE = 64
GAIN = 10.0
OPSET = 13


def demo_classifier_onnx(softmax: bool = True) -> bytes:
    """The serialised graph; ``softmax=False`` leaves the logits as the output."""
    weights = numpy_helper.from_array((GAIN * np.eye(3)).astype(np.float32), name="weights")
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["means"], axis=1),
        helper.make_node("MatMul", ["means", "weights"], ["logits" if softmax else "scores"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
    graph = helper.make_graph(
        nodes,
        "demo_colour_classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", len(CLASS_NAMES)])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 7  # readable by every onnxruntime this project supports
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def build_demo_classifier(repository: Path, model_id: str = DEMO_CLASSIFIER_ID, softmax: bool = True) -> ModelSpec:
    """Build the demo classifier and register it in ``repository`` under ``model_id``."""
    onnx_bytes = demo_classifier_onnx(softmax)
    return ModelRepository(repository).register_classifier(
        model_id,
        onnx_bytes,
        class_names=CLASS_NAMES,
        source="built by services.worker.models.classification_demo (onnx.helper)",
        source_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        color="RGB",
        scale=1 / 255,
        logits=not softmax,
    )
