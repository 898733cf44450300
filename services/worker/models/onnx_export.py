"""Darknet -> ONNX conversion (numpy + the ``onnx`` package only).

The graph takes ``images`` float32 [batch, 3, H, W] (RGB / 255, letterboxed) and returns one
tensor [batch, N, 5 + classes] in the YOLOv5 layout: cx, cy, w, h in input pixels, objectness
and class probabilities, all already sigmoid-ed. Each yolo head becomes a reshape plus a few
element-wise ops against constant grids and anchors; there is no NMS in the graph. Names and
initializer order are fixed, so the same inputs always serialise to the same bytes.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from services.worker.models.darknet import (
    Convolutional,
    ConvWeights,
    DarknetNetwork,
    MaxPool,
    Route,
    Shape,
    Upsample,
    Yolo,
)
from services.worker.models.errors import InvalidModelError

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "output"
# Opset 13 / IR 7: old enough for the onnxruntime and TensorRT builds shipped on Jetson boards.
OPSET = 13
IR_VERSION = 7
_LEAKY_ALPHA = 0.1


@dataclass
class _GraphBuilder:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name


def darknet_to_onnx(network: DarknetNetwork, weights: list[ConvWeights]) -> onnx.ModelProto:
    """Build the ONNX model of a parsed Darknet network and its (folded) convolution weights."""
    builder = _GraphBuilder()
    shapes = network.output_shapes()
    outputs: list[str] = []
    heads: list[str] = []
    conv_weights = iter(weights)
    current = INPUT_NAME
    for index, layer in enumerate(network.layers):
        shape = shapes[index]
        match layer:
            case Convolutional():
                current = _conv(builder, index, layer, next(conv_weights), current)
            case MaxPool():
                current = _maxpool(builder, index, layer, current)
            case Route(layers=sources):
                current = _route(builder, index, [outputs[i] for i in sources])
            case Upsample(stride=stride):
                current = _upsample(builder, index, stride, current)
            case Yolo():
                heads.append(_yolo(builder, index, layer, shape, network, current))
        outputs.append(current)
    if not heads:
        raise InvalidModelError("the Darknet network has no [yolo] layer")
    return _model(builder, network, heads, shapes)


def _conv(builder: _GraphBuilder, index: int, layer: Convolutional, weights: ConvWeights, source: str) -> str:
    kernel = builder.constant(f"conv_{index}.weight", weights.kernel)
    bias = builder.constant(f"conv_{index}.bias", weights.bias)
    pad = layer.padding
    out = builder.node(
        "Conv",
        [source, kernel, bias],
        f"conv_{index}",
        kernel_shape=[layer.size, layer.size],
        strides=[layer.stride, layer.stride],
        pads=[pad, pad, pad, pad],
    )
    if layer.activation == "leaky":
        out = builder.node("LeakyRelu", [out], f"leaky_{index}", alpha=_LEAKY_ALPHA)
    return out


def _maxpool(builder: _GraphBuilder, index: int, layer: MaxPool, source: str) -> str:
    # Darknet pads padding // 2 before and the rest after: asymmetric for size 2 / stride 1.
    before = layer.padding // 2
    after = layer.padding - before
    return builder.node(
        "MaxPool",
        [source],
        f"maxpool_{index}",
        kernel_shape=[layer.size, layer.size],
        strides=[layer.stride, layer.stride],
        pads=[before, before, after, after],
    )


def _route(builder: _GraphBuilder, index: int, sources: list[str]) -> str:
    if len(sources) == 1:
        return sources[0]
    return builder.node("Concat", sources, f"route_{index}", axis=1)


def _upsample(builder: _GraphBuilder, index: int, stride: int, source: str) -> str:
    scales = builder.constant(f"upsample_{index}.scales", np.array([1, 1, stride, stride], np.float32))
    return builder.node(
        "Resize",
        [source, "", scales],
        f"upsample_{index}",
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


def _yolo(
    builder: _GraphBuilder, index: int, layer: Yolo, shape: Shape, network: DarknetNetwork, source: str
) -> str:
    """Decode one head into [batch, anchors * H * W, 5 + classes] rows."""
    anchors, attrs = len(layer.anchors), 5 + layer.classes
    if shape.channels != anchors * attrs:
        raise InvalidModelError(f"yolo layer {index}: {shape.channels} channels, expected {anchors * attrs}")
    rows = _head_rows(builder, index, anchors, attrs, shape, source)
    split = builder.constant(f"yolo_{index}.split", np.array([2, 2, attrs - 4], np.int64))
    names = [f"yolo_{index}.xy", f"yolo_{index}.wh", f"yolo_{index}.scores"]
    builder.nodes.append(helper.make_node("Split", [rows, split], names, name=f"yolo_{index}.split", axis=2))
    grid, stride = _grid(layer, shape, network)
    xy = builder.node("Sigmoid", [names[0]], f"yolo_{index}.xy_sigmoid")
    xy = builder.node(
        "Mul", [xy, builder.constant(f"yolo_{index}.stride", stride)], f"yolo_{index}.xy_scaled"
    )
    xy = builder.node("Add", [xy, builder.constant(f"yolo_{index}.grid", grid)], f"yolo_{index}.xy_out")
    wh = builder.node("Exp", [names[1]], f"yolo_{index}.wh_exp")
    anchor_grid = np.repeat(np.array(layer.anchors, np.float32), shape.height * shape.width, axis=0)[None]
    wh = builder.node(
        "Mul", [wh, builder.constant(f"yolo_{index}.anchors", anchor_grid)], f"yolo_{index}.wh_out"
    )
    scores = builder.node("Sigmoid", [names[2]], f"yolo_{index}.scores_out")
    return builder.node("Concat", [xy, wh, scores], f"yolo_{index}", axis=2)


def _head_rows(
    builder: _GraphBuilder, index: int, anchors: int, attrs: int, shape: Shape, source: str
) -> str:
    # [B, A*attrs, H, W] -> [B, A, attrs, H, W] -> [B, A, H, W, attrs] -> [B, A*H*W, attrs]
    split_shape = np.array([0, anchors, attrs, shape.height, shape.width], np.int64)
    out = builder.node(
        "Reshape", [source, builder.constant(f"yolo_{index}.shape5", split_shape)], f"yolo_{index}.r5"
    )
    out = builder.node("Transpose", [out], f"yolo_{index}.t", perm=[0, 1, 3, 4, 2])
    rows_shape = np.array([0, anchors * shape.height * shape.width, attrs], np.int64)
    return builder.node(
        "Reshape", [out, builder.constant(f"yolo_{index}.shape3", rows_shape)], f"yolo_{index}.rows"
    )


def _grid(layer: Yolo, shape: Shape, network: DarknetNetwork) -> tuple[np.ndarray, np.ndarray]:
    """Constants so that ``xy = sigmoid(t) * stride + grid`` gives centres in input pixels."""
    stride = np.array([network.width / shape.width, network.height / shape.height], np.float32)
    ys, xs = np.meshgrid(np.arange(shape.height), np.arange(shape.width), indexing="ij")
    cells = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    cells = np.tile(cells, (len(layer.anchors), 1))
    # scale_x_y lets centres reach cell borders: (sigmoid * s - (s - 1) / 2 + cell) * stride.
    offset = cells - (layer.scale_x_y - 1) / 2
    return (offset * stride)[None].astype(np.float32), (stride * layer.scale_x_y)[None, None].astype(
        np.float32
    )


def _model(
    builder: _GraphBuilder, network: DarknetNetwork, heads: list[str], shapes: list[Shape]
) -> onnx.ModelProto:
    classes = {layer.classes for layer in network.layers if isinstance(layer, Yolo)}
    if len(classes) != 1:
        raise InvalidModelError(f"yolo heads disagree on the number of classes: {sorted(classes)}")
    rows = sum(
        len(layer.anchors) * shape.height * shape.width
        for layer, shape in zip(network.layers, shapes, strict=True)
        if isinstance(layer, Yolo)
    )
    if len(heads) == 1:
        builder.node("Identity", heads, OUTPUT_NAME)
    else:
        builder.node("Concat", heads, OUTPUT_NAME, axis=1)
    graph = helper.make_graph(
        builder.nodes,
        "darknet_yolo",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["batch", network.channels, network.height, network.width]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", rows, 5 + classes.pop()])],
        builder.initializers,
    )
    model = helper.make_model(
        graph, producer_name="services.worker.models", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    log.debug("converted Darknet network: %d nodes, %d rows per image", len(builder.nodes), rows)
    return model
