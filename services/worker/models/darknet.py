"""Darknet model files: the ``.cfg`` network description and the ``.weights`` blob.

Parses only the layer types YOLOv3-tiny-style networks use (convolutional, maxpool, route,
upsample, yolo) into small typed layers, infers their output shapes the way Darknet does, and
splits the weights file into per-convolution arrays with batch norm already folded in.
"""

import logging
import re
from dataclasses import dataclass

import numpy as np

from services.worker.models.errors import InvalidModelError

log = logging.getLogger(__name__)

_SECTION = re.compile(r"^\[(\w+)\]$")
# Darknet's batch norm divides by sqrt(variance) + this, not sqrt(variance + eps).
_BN_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Convolutional:
    filters: int
    size: int
    stride: int
    padding: int
    batch_normalize: bool
    activation: str  # "leaky" or "linear"


@dataclass(frozen=True, slots=True)
class MaxPool:
    size: int
    stride: int
    padding: int  # total padding; Darknet puts padding // 2 before and the rest after


@dataclass(frozen=True, slots=True)
class Route:
    layers: tuple[int, ...]  # absolute layer indices


@dataclass(frozen=True, slots=True)
class Upsample:
    stride: int


@dataclass(frozen=True, slots=True)
class Yolo:
    anchors: tuple[tuple[float, float], ...]  # (w, h) in input pixels, already selected by ``mask``
    classes: int
    scale_x_y: float


Layer = Convolutional | MaxPool | Route | Upsample | Yolo


@dataclass(frozen=True, slots=True)
class Shape:
    channels: int
    height: int
    width: int


@dataclass(frozen=True, slots=True)
class DarknetNetwork:
    width: int
    height: int
    channels: int
    layers: tuple[Layer, ...]

    def with_input_size(self, width: int, height: int) -> "DarknetNetwork":
        """The same network at another input size (what editing width/height in the cfg does)."""
        return DarknetNetwork(width, height, self.channels, self.layers)

    def output_shapes(self) -> list[Shape]:
        """Each layer's output shape, computed as Darknet computes it."""
        shapes: list[Shape] = []
        current = Shape(self.channels, self.height, self.width)
        for index, layer in enumerate(self.layers):
            current = _layer_shape(layer, current, shapes, index)
            shapes.append(current)
        return shapes


@dataclass(frozen=True, slots=True)
class ConvWeights:
    """One convolution's weights with batch norm folded in: ``kernel`` is [out, in, k, k]."""

    kernel: np.ndarray
    bias: np.ndarray


def parse_cfg(text: str) -> DarknetNetwork:
    """Parse a Darknet ``.cfg`` text; raise InvalidModelError on anything unsupported."""
    sections = _sections(text)
    if not sections or sections[0][0] not in ("net", "network"):
        raise InvalidModelError("Darknet cfg must start with a [net] section")
    net = sections[0][1]
    layers: list[Layer] = []
    for index, (kind, options) in enumerate(sections[1:]):
        layers.append(_parse_layer(kind, options, index))
    return DarknetNetwork(
        width=int(net.get("width", "416")),
        height=int(net.get("height", "416")),
        channels=int(net.get("channels", "3")),
        layers=tuple(layers),
    )


def read_weights(data: bytes, network: DarknetNetwork) -> list[ConvWeights]:
    """Split a ``.weights`` file into one ConvWeights per convolutional layer, in order.

    The whole file must be consumed: a size mismatch means the cfg does not match the weights.
    """
    header = np.frombuffer(data, dtype="<i4", count=3)
    major, minor = int(header[0]), int(header[1])
    offset = 12 + (8 if major * 10 + minor >= 2 else 4)  # "seen" is int64 from version 0.2 on
    log.debug("darknet weights version %d.%d.%d", major, minor, int(header[2]))
    shapes = network.output_shapes()
    result: list[ConvWeights] = []
    for index, layer in enumerate(network.layers):
        if isinstance(layer, Convolutional):
            in_channels = shapes[index - 1].channels if index else network.channels
            weights, offset = _read_conv(data, offset, layer, in_channels)
            result.append(weights)
    if offset != len(data):
        raise InvalidModelError(
            f"Darknet weights size mismatch: the cfg uses {offset} bytes, the file has {len(data)}"
        )
    return result


def _sections(text: str) -> list[tuple[str, dict[str, str]]]:
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _SECTION.match(line)
        if match:
            sections.append((match.group(1), {}))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][1][key.strip()] = value.strip()
        else:
            raise InvalidModelError(f"unparseable Darknet cfg line: {raw!r}")
    return sections


def _ints(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part.strip()]


def _parse_layer(kind: str, options: dict[str, str], index: int) -> Layer:
    match kind:
        case "convolutional":
            return _parse_conv(options)
        case "maxpool":
            size = int(options.get("size", "1"))
            stride = int(options.get("stride", "1"))
            return MaxPool(size, stride, int(options.get("padding", str(size - 1))))
        case "route":
            return Route(tuple(i if i >= 0 else index + i for i in _ints(options["layers"])))
        case "upsample":
            return Upsample(int(options.get("stride", "2")))
        case "yolo":
            return _parse_yolo(options)
    raise InvalidModelError(f"unsupported Darknet layer [{kind}] (layer {index})")


def _parse_conv(options: dict[str, str]) -> Convolutional:
    size = int(options.get("size", "1"))
    activation = options.get("activation", "logistic")
    if activation not in ("leaky", "linear"):
        raise InvalidModelError(f"unsupported Darknet activation {activation!r}")
    if int(options.get("groups", "1")) != 1:
        raise InvalidModelError("grouped Darknet convolutions are not supported")
    pad = size // 2 if int(options.get("pad", "0")) else int(options.get("padding", "0"))
    return Convolutional(
        filters=int(options.get("filters", "1")),
        size=size,
        stride=int(options.get("stride", "1")),
        padding=pad,
        batch_normalize=bool(int(options.get("batch_normalize", "0"))),
        activation=activation,
    )


def _parse_yolo(options: dict[str, str]) -> Yolo:
    numbers = [float(part) for part in options["anchors"].split(",") if part.strip()]
    pairs = list(zip(numbers[0::2], numbers[1::2], strict=True))
    mask = _ints(options["mask"]) if "mask" in options else list(range(len(pairs)))
    return Yolo(
        anchors=tuple(pairs[i] for i in mask),
        classes=int(options.get("classes", "80")),
        scale_x_y=float(options.get("scale_x_y", "1")),
    )


def _layer_shape(layer: Layer, previous: Shape, shapes: list[Shape], index: int) -> Shape:
    match layer:
        case Convolutional(filters=filters, size=size, stride=stride, padding=pad):
            return Shape(
                filters,
                (previous.height + 2 * pad - size) // stride + 1,
                (previous.width + 2 * pad - size) // stride + 1,
            )
        case MaxPool(size=size, stride=stride, padding=pad):
            return Shape(
                previous.channels,
                (previous.height + pad - size) // stride + 1,
                (previous.width + pad - size) // stride + 1,
            )
        case Route(layers=sources):
            return _route_shape(sources, shapes, index)
        case Upsample(stride=stride):
            return Shape(previous.channels, previous.height * stride, previous.width * stride)
        case Yolo():
            return previous
    raise AssertionError(layer)


def _route_shape(sources: tuple[int, ...], shapes: list[Shape], index: int) -> Shape:
    if not sources or any(not 0 <= i < index for i in sources):
        raise InvalidModelError(f"route layer {index} refers to layers {sources}")
    picked = [shapes[i] for i in sources]
    if len({(s.height, s.width) for s in picked}) != 1:
        raise InvalidModelError(f"route layer {index} joins layers of different sizes")
    return Shape(sum(s.channels for s in picked), picked[0].height, picked[0].width)


def _read_conv(data: bytes, offset: int, layer: Convolutional, in_channels: int) -> tuple[ConvWeights, int]:
    def take(count: int) -> np.ndarray:
        nonlocal offset
        if offset + 4 * count > len(data):
            raise InvalidModelError("Darknet weights file ends early: the cfg does not match it")
        values = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
        offset += 4 * count
        return values

    n = layer.filters
    bias = take(n)
    if layer.batch_normalize:
        scales, mean, variance = take(n), take(n), take(n)
    kernel = take(n * in_channels * layer.size * layer.size).reshape(n, in_channels, layer.size, layer.size)
    if layer.batch_normalize:
        factor = scales / (np.sqrt(variance) + np.float32(_BN_EPSILON))
        kernel = kernel * factor[:, None, None, None]
        bias = bias - mean * factor
    return ConvWeights(
        np.ascontiguousarray(kernel, np.float32), np.ascontiguousarray(bias, np.float32)
    ), offset
