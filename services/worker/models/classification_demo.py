"""A small but real classification model, built with ``onnx.helper``: which of red, green and blue
dominates an image.

Graph: input [B, 3, 64, 64] (RGB / 255) -> GlobalAveragePool -> Flatten -> MatMul by ``GAIN`` x the
identity -> logits [B, 3] -> Softmax (or the logits alone, with ``logits=True`` in its metadata). So
the probability of each class is the softmax of ``GAIN`` x the image's mean channel values: a solid
colour is classified with certainty, a grey image is a three-way tie. Used by tests and demos of
classification workflows; registered under :data:`DEMO_CLASSIFIER_ID`.

Its multi-label sibling (:data:`DEMO_MULTI_LABEL_ID`): which of red, green and blue are present, each on its
own. Graph: the same pooled means -> Sub ``PRESENCE`` -> Mul ``GAIN`` -> logits [B, 3] -> Sigmoid (or the
logits alone). So a class's score is ``sigmoid(GAIN * (mean - PRESENCE))`` of its channel: above 0.5 exactly
when the image's mean value of that channel is above half; white has all three, black none.
"""

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from services.worker.models.repository import TASK_MULTI_LABEL_CLASSIFICATION, ModelRepository, ModelSpec

DEMO_CLASSIFIER_ID = "demo-colours/1"
DEMO_MULTI_LABEL_ID = "demo-colours-present/1"
CLASS_NAMES = ("red", "green", "blue")
SIZE = 64
GAIN = 10.0
OPSET = 13
PRESENCE = 0.5  # a channel's mean value (0..1) at which its class scores 0.5


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


def demo_multi_label_onnx(sigmoid: bool = True) -> bytes:
    """The multi-label graph; ``sigmoid=False`` leaves the logits as the output."""
    constants = [numpy_helper.from_array(np.array(PRESENCE, dtype=np.float32), name="presence"),
                 numpy_helper.from_array(np.array(GAIN, dtype=np.float32), name="gain")]
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["means"], axis=1),
        helper.make_node("Sub", ["means", "presence"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["logits" if sigmoid else "scores"]),
    ]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["scores"]))
    graph = helper.make_graph(
        nodes,
        "demo_colour_presence",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", len(CLASS_NAMES)])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def build_demo_multi_label(repository: Path, model_id: str = DEMO_MULTI_LABEL_ID, sigmoid: bool = True) -> ModelSpec:
    """Build the multi-label demo classifier and register it in ``repository`` under ``model_id``."""
    onnx_bytes = demo_multi_label_onnx(sigmoid)
    return ModelRepository(repository).register_classifier(
        model_id,
        onnx_bytes,
        class_names=CLASS_NAMES,
        source="built by services.worker.models.classification_demo (onnx.helper)",
        source_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        color="RGB",
        scale=1 / 255,
        logits=not sigmoid,
        task=TASK_MULTI_LABEL_CLASSIFICATION,
    )
