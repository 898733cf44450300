"""The detector: one onnxruntime session for one registered model, plus pre- and post-processing.

``detect`` = ``preprocess`` (letterbox) -> ``infer`` (session.run on a batch) -> ``postprocess``
(decode, NMS, undo the letterbox). The three steps are public so a pipeline can batch frames of
several sources into one ``infer`` call.
"""

import ctypes
import logging
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

from services.worker.detection.detections import Detections
from services.worker.detection.layouts import OutputLayout, decode, detect_layout
from services.worker.detection.letterbox import LetterboxTransform, letterbox
from services.worker.detection.nms import suppress
from services.worker.models.errors import InferenceDeviceError, InvalidModelError
from services.worker.models.repository import TASK_DETECTION, ModelSpec

__all__ = ["DEVICES", "DetectionParams", "Detections", "Detector", "open_session", "select_providers"]

log = logging.getLogger(__name__)

_ACCELERATED = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_CPU = "CPUExecutionProvider"
_NVINFER = "libnvinfer.so.10"  # the TensorRT major version onnxruntime-gpu 1.2x/1.3x links against
DEVICES = ("cpu", "gpu", "jetson")


@dataclass(frozen=True, slots=True)
class DetectionParams:
    """Thresholds applied after inference (the reference's defaults)."""

    confidence: float = 0.5
    iou_threshold: float = 0.5
    class_agnostic_nms: bool = False
    max_candidates: int = 3000
    max_detections: int = 300


def tensorrt_loadable() -> bool:
    """Whether TensorRT's runtime library can be loaded here.

    onnxruntime-gpu lists ``TensorrtExecutionProvider`` as available whether or not TensorRT is
    installed; asking for it without ``libnvinfer`` prints an error block and retries session
    creation without it (seen on an H200 host with CUDA 13 and no TensorRT, docs/benchmarks.md).
    So it is only asked for when its library loads.
    """
    try:
        ctypes.CDLL(_NVINFER)
    except OSError:
        return False
    return True


def select_providers(device: str, available: list[str], tensorrt: bool | None = None) -> list[str]:
    """onnxruntime providers for ``device``, best first; InferenceDeviceError if it cannot run there.

    ``tensorrt``: whether TensorRT may be used (None: when :func:`tensorrt_loadable`).
    """
    if device == "cpu":
        return [_CPU]
    if device not in DEVICES:
        raise InferenceDeviceError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    if tensorrt is None:
        tensorrt = "TensorrtExecutionProvider" in available and tensorrt_loadable()
    accelerated = [p for p in _ACCELERATED if p in available and (tensorrt or p != "TensorrtExecutionProvider")]
    if not accelerated:
        raise InferenceDeviceError(
            f"device {device!r} needs onnxruntime with CUDA or TensorRT; available providers: {available}"
        )
    return [*accelerated, _CPU]


class Detector:
    """Runs one model; not thread-safe for concurrent ``infer`` calls with different threads settings."""

    def __init__(
        self,
        model: ModelSpec,
        *,
        device: str = "cpu",
        intra_op_threads: int = 0,
        allow_spinning: bool = False,
    ) -> None:
        if model.task_type != TASK_DETECTION or model.layout is None:
            raise InvalidModelError(f"model {model.model_id!r} is not an object detector (its task: {model.task_type})")
        self.model = model
        self._layout: OutputLayout = model.layout
        # Pre-processing runs beside inference on the pipeline's own threads: OpenCV's thread pool
        # would only compete with onnxruntime for the same cores (letterbox measured 2x the CPU
        # time for the same wall time with 2 OpenCV threads on 2 cores).
        cv2.setNumThreads(1)
        self._session = open_session(model, device, intra_op_threads, allow_spinning)
        self._check_graph()
        log.info("loaded model %s on %s with %s", model.model_id, device, self._session.get_providers())

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.class_names

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, LetterboxTransform]:
        """Letterbox a BGR uint8 frame into a [1, 3, H, W] input tensor."""
        return letterbox(image, self.model.input_width, self.model.input_height)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a [B, 3, H, W] float32 batch; the raw output has B first."""
        (raw,) = self._session.run(None, {self.model.input_name: batch})
        return np.asarray(raw)

    def postprocess(
        self, raw: np.ndarray, transform: LetterboxTransform, params: DetectionParams
    ) -> Detections:
        """Decode one image's raw output (batch dimension removed), apply NMS, map to source pixels."""
        candidates = decode(raw, self._layout)
        keep = suppress(
            candidates.xyxy(),
            candidates.score,
            candidates.class_id,
            confidence=params.confidence,
            iou_threshold=params.iou_threshold,
            class_agnostic=params.class_agnostic_nms,
            max_candidates=params.max_candidates,
            max_detections=params.max_detections,
        )
        if not len(keep):
            return Detections.empty()
        xyxy = transform.to_source(candidates.xyxy()[keep])
        return Detections(xyxy, candidates.score[keep], candidates.class_id[keep])

    def detect(self, image: np.ndarray, params: DetectionParams) -> Detections:
        """Detections on one BGR frame, in its pixels."""
        tensor, transform = self.preprocess(image)
        return self.postprocess(self.infer(tensor)[0], transform, params)

    def _check_graph(self) -> None:
        (model_input,) = self._session.get_inputs()
        outputs = self._session.get_outputs()
        expected = (self.model.input_height, self.model.input_width)
        fixed = all(
            dim == want
            for dim, want in zip(model_input.shape[2:], expected, strict=True)
            if isinstance(dim, int)
        )
        if model_input.name != self.model.input_name or not fixed:
            raise InvalidModelError(f"{self.model.model_id}: the ONNX input does not match its metadata")
        if len(outputs) != 1 or detect_layout(outputs[0].shape, self.model.num_classes) != self._layout:
            raise InvalidModelError(f"{self.model.model_id}: the ONNX output does not match its metadata")


def open_session(model: ModelSpec, device: str, intra_op_threads: int, allow_spinning: bool) -> ort.InferenceSession:
    """An onnxruntime session of ``model`` on ``device``; InferenceDeviceError if it fell back to the CPU."""
    providers = select_providers(device, ort.get_available_providers())
    try:
        session = ort.InferenceSession(
            str(model.onnx_path), _session_options(intra_op_threads, allow_spinning), providers=providers
        )
    except Exception as exc:  # onnxruntime raises untyped errors for unreadable graphs
        raise InvalidModelError(f"onnxruntime cannot load {model.model_id}: {exc}") from exc
    if device != "cpu" and not set(session.get_providers()) & set(_ACCELERATED):
        # onnxruntime falls back to the CPU when the CUDA libraries fail to load: say so instead.
        raise InferenceDeviceError(
            f"device {device!r}: onnxruntime could not start {providers[0]} (CUDA/cuDNN libraries missing "
            f"or not on LD_LIBRARY_PATH?); the session fell back to {session.get_providers()}"
        )
    return session


def _session_options(intra_op_threads: int, allow_spinning: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    if intra_op_threads > 0:
        options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads burn CPU between frames; with many pipelines per host that costs more than it saves.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options
