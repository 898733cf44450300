"""The detector: one onnxruntime session for one registered model, plus pre- and post-processing.

``detect`` = ``preprocess`` (letterbox) -> ``infer`` (session.run on a batch) -> ``postprocess``
(decode, NMS, undo the letterbox). The three steps are public so a pipeline can batch frames of
several sources into one ``infer`` call.

``infer`` goes through a :class:`ModelRunner`: a :class:`SessionRunner` owns an onnxruntime session
in this process; the worker's pipelines use the per-device inference service's runner instead
(``services.worker.inference``), so pre- and post-processing stay in the pipeline's process and only
``session.run`` is shared.
"""

import ctypes
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from services.worker.detection.detections import Detections
from services.worker.detection.layouts import OutputLayout, decode, detect_layout
from services.worker.detection.letterbox import LetterboxTransform, as_tensor, letterbox_image
from services.worker.detection.nms import suppress
from services.worker.models.errors import InferenceDeviceError, InvalidModelError
from services.worker.models.repository import CLASSIFIER_TASKS, TASK_DETECTION, ModelSpec

if TYPE_CHECKING:  # onnxruntime is imported where a session is opened: pipelines fed by the service never load it
    import onnxruntime as ort

__all__ = ["DEVICES", "DetectionParams", "Detections", "Detector", "ModelRunner", "SessionRunner", "load_runner",
           "open_session", "select_providers"]

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


class ModelRunner(Protocol):
    """Runs a model's graph on a batch, its one raw output (B first) back. The batch is the model's input
    tensor (``[B, ...]`` float32) or, for a detector, its letterboxed canvases (``[B, H, W, 3]`` uint8,
    ``letterbox.to_tensor`` makes the tensor where the model runs)."""

    @property
    def providers(self) -> list[str]: ...

    def run(self, batch: np.ndarray) -> np.ndarray: ...


class SessionRunner:
    """A checked onnxruntime session in this process; ``run`` may be called from several threads at once."""

    def __init__(self, session: "ort.InferenceSession", input_name: str) -> None:
        self._session = session
        self._input_name = input_name

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, batch: np.ndarray) -> np.ndarray:
        (raw,) = self._session.run(None, {self._input_name: as_tensor(batch)})
        return np.asarray(raw)


def load_runner(model: ModelSpec, device: str = "cpu", intra_op_threads: int = 0, allow_spinning: bool = False,
                tensorrt_cache: Path | None = None) -> SessionRunner:
    """Open ``model``'s session on ``device`` and check its graph against the metadata (InvalidModelError)."""
    session = open_session(model, device, intra_op_threads, allow_spinning, tensorrt_cache)
    check_graph(session, model)
    log.info("loaded model %s on %s with %s", model.model_id, device, session.get_providers())
    return SessionRunner(session, model.input_name)


class ModelHost:
    """What every model user has: its spec, checked for the task it serves, and a runner (a local
    onnxruntime session by default, or the inference service's shared one)."""

    task_name = "model"

    def __init__(
        self,
        model: ModelSpec,
        *,
        device: str = "cpu",
        intra_op_threads: int = 0,
        allow_spinning: bool = False,
        runner: ModelRunner | None = None,
    ) -> None:
        if not self.accepts(model):
            raise InvalidModelError(f"model {model.model_id!r} is not {self.task_name} (its task: {model.task_type})")
        self.model = model
        self._runner = runner or load_runner(model, device, intra_op_threads, allow_spinning)

    @staticmethod
    def accepts(model: ModelSpec) -> bool:
        raise NotImplementedError

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.class_names

    @property
    def providers(self) -> list[str]:
        return self._runner.providers


class Detector(ModelHost):
    """Pre- and post-processing of one detection model around its runner (local session by default)."""

    task_name = "an object detector"

    def __init__(self, model: ModelSpec, **options: Any) -> None:
        # Pre-processing runs beside inference on the pipeline's own threads: OpenCV's thread pool
        # would only compete with onnxruntime for the same cores (letterbox measured 2x the CPU
        # time for the same wall time with 2 OpenCV threads on 2 cores).
        cv2.setNumThreads(1)
        super().__init__(model, **options)
        assert model.layout is not None  # accepts() checked it
        self._layout: OutputLayout = model.layout

    @staticmethod
    def accepts(model: ModelSpec) -> bool:
        return model.task_type == TASK_DETECTION and model.layout is not None

    def take_turn(self) -> object | None:
        """The runner's turn for the next request, where it takes turns (the inference service); else None."""
        take = getattr(self._runner, "take_turn", None)
        return take() if take is not None else None

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, LetterboxTransform]:
        """Letterbox a BGR uint8 frame into its [1, H, W, 3] uint8 canvas (batches stack on the first axis)."""
        return letterbox_image(image, self.model.input_width, self.model.input_height)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a batch of canvases (or a [B, 3, H, W] float32 tensor); the raw output has B first."""
        return self._runner.run(batch)

    def postprocess(
        self, raw: np.ndarray, transform: LetterboxTransform, params: DetectionParams
    ) -> Detections:
        """Decode one image's raw output (batch dimension removed), apply NMS, map to source pixels."""
        candidates = decode(raw, self._layout, min_score=params.confidence)
        xyxy_all = candidates.xyxy()
        keep = suppress(
            xyxy_all,
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
        xyxy = transform.to_source(xyxy_all[keep])
        return Detections(xyxy, candidates.score[keep], candidates.class_id[keep])

    def detect(self, image: np.ndarray, params: DetectionParams) -> Detections:
        """Detections on one BGR frame, in its pixels."""
        canvas, transform = self.preprocess(image)
        return self.postprocess(self.infer(canvas)[0], transform, params)



def check_graph(session: "ort.InferenceSession", model: ModelSpec) -> None:
    """InvalidModelError unless the ONNX graph's one input and one output match the model's metadata."""
    (model_input,) = session.get_inputs()
    outputs = session.get_outputs()
    expected = (model.input_height, model.input_width)
    fixed = all(dim == want for dim, want in zip(model_input.shape[2:], expected, strict=True) if isinstance(dim, int))
    if model_input.name != model.input_name or not fixed:
        raise InvalidModelError(f"{model.model_id}: the ONNX input does not match its metadata")
    if model.task_type in CLASSIFIER_TASKS:
        matches = len(outputs) == 1 and outputs[0].shape[-1] == model.num_classes
    else:
        matches = (len(outputs) == 1 and model.layout is not None
                   and detect_layout(outputs[0].shape, model.num_classes) == model.layout)
    if not matches:
        raise InvalidModelError(f"{model.model_id}: the ONNX output does not match its metadata")


def open_session(model: ModelSpec, device: str, intra_op_threads: int, allow_spinning: bool,
                 tensorrt_cache: Path | None = None) -> "ort.InferenceSession":
    """An onnxruntime session of ``model`` on ``device``; InferenceDeviceError if it fell back to the CPU.

    ``tensorrt_cache``: where TensorRT keeps the engines it builds (a volume, so a restart does not
    rebuild them: minutes per model on a Jetson).
    """
    import onnxruntime as ort

    providers = select_providers(device, ort.get_available_providers())
    try:
        session = ort.InferenceSession(
            str(model.onnx_path), _session_options(intra_op_threads, allow_spinning),
            providers=[(name, provider_options(name, tensorrt_cache)) for name in providers],
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


def provider_options(provider: str, tensorrt_cache: Path | None) -> Mapping[str, Any]:
    """onnxruntime options of one execution provider: TensorRT's engine and timing caches when a cache
    directory is set, nothing for the others (precision stays FP32, as on the CPU and CUDA)."""
    if provider != "TensorrtExecutionProvider" or tensorrt_cache is None:
        return {}
    tensorrt_cache.mkdir(parents=True, exist_ok=True)
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(tensorrt_cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(tensorrt_cache),
    }


def _session_options(intra_op_threads: int, allow_spinning: bool) -> "ort.SessionOptions":
    import onnxruntime as ort

    options = ort.SessionOptions()
    if intra_op_threads > 0:
        options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads burn CPU between frames; with many pipelines per host that costs more than it saves.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options
