"""The on-disk model repository: ``<root>/<project>/<version>/model.onnx`` plus ``model.json``.

``model.json`` is written last (temp file + rename), so a model is visible only once complete;
an interrupted registration leaves at most an orphan ``.tmp`` file, never a half model.
A model is an object detector (its output layout known), a multi-class or multi-label classifier (its
normalisation and whether it outputs logits or probabilities) or one of OCR's three models (text
detection, recognition, line orientation); ``task_type`` says which, and metadata written before
classifiers existed reads as an object detector.
"""

import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from services.worker.detection.layouts import OutputLayout, detect_layout
from services.worker.models.errors import InvalidModelError, ModelNotFoundError

if TYPE_CHECKING:  # imported where a graph is inspected: resolving a model's metadata needs no onnxruntime
    import onnxruntime as ort

log = logging.getLogger(__name__)

TASK_DETECTION = "object-detection"
TASK_CLASSIFICATION = "classification"
# A multi-label classifier: one independent score per class (a sigmoid's), every class above the threshold predicted.
TASK_MULTI_LABEL_CLASSIFICATION = "multi-label-classification"
CLASSIFIER_TASKS = (TASK_CLASSIFICATION, TASK_MULTI_LABEL_CLASSIFICATION)
# The three models of OCR (PP-OCR's): a text detector (an [B, 1, H, W] probability map of text), a text line
# recogniser ([B, T, 1 + len(class_names)] per-step probabilities, class 0 the CTC blank) and a text line orientation
# classifier ([B, len(class_names)]: upright or upside down). Their inputs may have any size (0 in the metadata).
TASK_OCR_DETECTION = "ocr-detection"
TASK_OCR_RECOGNITION = "ocr-recognition"
TASK_OCR_ORIENTATION = "ocr-orientation"
OCR_TASKS = (TASK_OCR_DETECTION, TASK_OCR_RECOGNITION, TASK_OCR_ORIENTATION)
TASKS = (TASK_DETECTION, *CLASSIFIER_TASKS, *OCR_TASKS)
MODEL_FILE = "model.onnx"
METADATA_FILE = "model.json"
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything needed to run a registered model; ``onnx_path`` is absolute.

    Input = pixels in ``color`` order * ``scale``, then ``(x - mean) / std`` per channel (the
    classifier's normalisation; an object detector's is the identity). ``layout``: a detector's raw
    output (None for a classifier); ``logits``: a classifier's output needs a softmax.
    """

    model_id: str
    onnx_path: Path
    class_names: tuple[str, ...]
    input_name: str
    input_width: int
    input_height: int
    layout: OutputLayout | None
    color: str
    scale: float
    source: str
    source_sha256: str
    created: str
    task_type: str = TASK_DETECTION
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    logits: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def validate_model_id(model_id: str) -> tuple[str, str]:
    """Split ``<project>/<version>``; raise InvalidModelError unless both parts are path-safe."""
    parts = model_id.split("/")
    if len(parts) != 2 or not all(_SEGMENT.fullmatch(p) and ".." not in p and p != "." for p in parts):
        raise InvalidModelError(f"invalid model id {model_id!r}: expected '<project>/<version>'")
    return parts[0], parts[1]


class ModelRepository:
    """Models stored under one root directory, addressed by ``<project>/<version>`` ids."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def resolve(self, model_id: str, task: str | None = None) -> ModelSpec:
        """The registered model ``model_id``; ModelNotFoundError if there is none, InvalidModelError
        if ``task`` is given and the model is of another task."""
        directory = self._directory(model_id)
        metadata = directory / METADATA_FILE
        if not metadata.is_file() or not (directory / MODEL_FILE).is_file():
            raise ModelNotFoundError(f"model {model_id!r} is not in the repository at {self.root}")
        spec = _read_spec(metadata, directory / MODEL_FILE)
        if spec.model_id != model_id:
            raise InvalidModelError(f"metadata {metadata} names model {spec.model_id!r}, not {model_id!r}")
        if task is not None and spec.task_type != task:
            raise InvalidModelError(
                f"model {model_id!r} is {_an(spec.task_type)} model; this step needs {_an(task)} model"
            )
        return spec

    def list(self) -> list[ModelSpec]:
        """Every registered model, sorted by id; entries with broken metadata are skipped."""
        specs: list[ModelSpec] = []
        for metadata in sorted(self.root.glob(f"*/*/{METADATA_FILE}")):
            model_id = f"{metadata.parent.parent.name}/{metadata.parent.name}"
            try:
                specs.append(self.resolve(model_id))
            except (InvalidModelError, ModelNotFoundError) as exc:
                log.warning("skipping model %s: %s", model_id, exc)
        return specs

    def register(
        self,
        model_id: str,
        onnx_bytes: bytes,
        *,
        class_names: Sequence[str],
        source: str,
        source_sha256: str,
    ) -> ModelSpec:
        """Store an ONNX object detector under ``model_id`` (replacing any previous one) and return its spec.

        The graph is inspected with onnxruntime: one image input [B, 3, H, W] and an output
        whose layout is known, else InvalidModelError.
        """
        directory = self._directory(model_id)
        input_name, width, height, layout = inspect_onnx(onnx_bytes, len(class_names))
        return self._store(ModelSpec(
            model_id, directory / MODEL_FILE, tuple(class_names), input_name, width, height, layout,
            "RGB", 1 / 255, source, source_sha256, _now(),
        ), onnx_bytes)

    def register_classifier(
        self,
        model_id: str,
        onnx_bytes: bytes,
        *,
        class_names: Sequence[str],
        source: str,
        source_sha256: str,
        color: str = "RGB",
        scale: float = 1 / 255,
        mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
        std: tuple[float, float, float] = (1.0, 1.0, 1.0),
        logits: bool = False,
        task: str = TASK_CLASSIFICATION,
    ) -> ModelSpec:
        """Store an ONNX classifier: one image input [B, 3, H, W] of a fixed size and one output [B, C]
        (C = number of classes) of ``logits`` or probabilities. ``task``: a multi-class classifier (softmax over
        the classes) or a multi-label one (:data:`TASK_MULTI_LABEL_CLASSIFICATION`: a sigmoid per class)."""
        if task not in CLASSIFIER_TASKS:
            raise InvalidModelError(f"task {task!r} is not one of {', '.join(CLASSIFIER_TASKS)}")
        directory = self._directory(model_id)
        session = _inspection_session(onnx_bytes)
        input_name, width, height = _image_input(session)
        outputs = session.get_outputs()
        shape = outputs[0].shape if len(outputs) == 1 else []
        if len(outputs) != 1 or len(shape) != 2 or shape[1] != len(class_names):
            raise InvalidModelError(
                f"expected one output [B, {len(class_names)}] (one score per class), got {[o.shape for o in outputs]}"
            )
        spec = ModelSpec(
            model_id, directory / MODEL_FILE, tuple(class_names), input_name, width, height, None,
            color, scale, source, source_sha256, _now(), task, mean, std, logits,
        )
        _check_normalisation(spec)
        return self._store(spec, onnx_bytes)

    def register_ocr(
        self,
        model_id: str,
        onnx_bytes: bytes,
        *,
        task: str,
        class_names: Sequence[str],
        source: str,
        source_sha256: str,
        input_width: int = 0,
        input_height: int = 0,
        color: str = "BGR",
        scale: float = 1 / 255,
        mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] = (0.5, 0.5, 0.5),
    ) -> ModelSpec:
        """Store one of OCR's ONNX models (``task`` one of :data:`OCR_TASKS`): one image input [B, 3, H, W] and one
        output as the task says (see :data:`TASK_OCR_DETECTION`). ``input_width`` / ``input_height``: the size the
        engine resizes to (0: any); a fixed size in the graph must match it. ``class_names``: a recogniser's
        characters (class i > 0 is ``class_names[i - 1]``), an orientation classifier's angles ("0", "180")."""
        if task not in OCR_TASKS:
            raise InvalidModelError(f"task {task!r} is not one of {', '.join(OCR_TASKS)}")
        directory = self._directory(model_id)
        session = _inspection_session(onnx_bytes)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] != 3:
            raise InvalidModelError(f"expected one [B, 3, H, W] image input, got {[i.shape for i in inputs]}")
        for fixed, wanted, name in ((inputs[0].shape[2], input_height, "height"),
                                    (inputs[0].shape[3], input_width, "width")):
            if isinstance(fixed, int) and fixed != wanted:
                raise InvalidModelError(f"the graph's input {name} is {fixed}, not {wanted}")
        shape = outputs[0].shape if len(outputs) == 1 else []
        expected = {TASK_OCR_DETECTION: (4, 1, "[B, 1, H, W] (a probability map)"),
                    TASK_OCR_RECOGNITION: (3, len(class_names) + 1, f"[B, T, {len(class_names) + 1}] (CTC)"),
                    TASK_OCR_ORIENTATION: (2, len(class_names), f"[B, {len(class_names)}] (one score per angle)")}
        rank, classes, described = expected[task]
        class_axis = 1 if task == TASK_OCR_DETECTION else rank - 1
        if len(outputs) != 1 or len(shape) != rank or shape[class_axis] != classes:
            raise InvalidModelError(f"expected one output {described}, got {[o.shape for o in outputs]}")
        spec = ModelSpec(
            model_id, directory / MODEL_FILE, tuple(class_names), inputs[0].name, input_width, input_height, None,
            color, scale, source, source_sha256, _now(), task, mean, std,
        )
        _check_normalisation(spec)
        return self._store(spec, onnx_bytes)

    def _store(self, spec: ModelSpec, onnx_bytes: bytes) -> ModelSpec:
        directory = spec.onnx_path.parent
        directory.mkdir(parents=True, exist_ok=True)
        (directory / METADATA_FILE).unlink(missing_ok=True)  # hide the old model while replacing
        _write_atomic(directory / MODEL_FILE, onnx_bytes)
        metadata = {**asdict(spec), "onnx_path": MODEL_FILE, "class_names": list(spec.class_names),
                    "mean": list(spec.mean), "std": list(spec.std)}
        _write_atomic(directory / METADATA_FILE, json.dumps(metadata, indent=2).encode())
        log.info("registered %s model %s in %s", spec.task_type, spec.model_id, directory)
        return spec

    def _directory(self, model_id: str) -> Path:
        project, version = validate_model_id(model_id)
        return self.root / project / version


def inspect_onnx(onnx_bytes: bytes, num_classes: int) -> tuple[str, int, int, OutputLayout]:
    """Input name, width, height and output layout of an ONNX detector; InvalidModelError if unusable."""
    session = _inspection_session(onnx_bytes)
    input_name, width, height = _image_input(session)
    outputs = session.get_outputs()
    if len(outputs) != 1:
        raise InvalidModelError(f"expected one output, got {len(outputs)}")
    return input_name, width, height, detect_layout(outputs[0].shape, num_classes)


def _inspection_session(onnx_bytes: bytes) -> "ort.InferenceSession":
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable graphs
        raise InvalidModelError(f"onnxruntime cannot load the model: {exc}") from exc


def _image_input(session: "ort.InferenceSession") -> tuple[str, int, int]:
    """Name, width and height of the session's one [B, 3, H, W] input of a fixed size."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] != 3:
        raise InvalidModelError(f"expected one [B, 3, H, W] image input, got {[i.shape for i in inputs]}")
    height, width = inputs[0].shape[2], inputs[0].shape[3]
    if not (isinstance(width, int) and isinstance(height, int)):
        raise InvalidModelError(f"the model input size must be fixed, got {inputs[0].shape}")
    return inputs[0].name, width, height


def _check_normalisation(spec: ModelSpec) -> None:
    if spec.color not in ("RGB", "BGR"):
        raise InvalidModelError(f"model {spec.model_id!r}: color must be RGB or BGR, got {spec.color!r}")
    if len(spec.mean) != 3 or len(spec.std) != 3 or not all(value > 0 for value in spec.std):
        raise InvalidModelError(f"model {spec.model_id!r}: mean and std need 3 values each, std > 0")


def _an(task: str) -> str:
    return f"an {task}" if task[:1] in "aeiou" else f"a {task}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_spec(metadata: Path, onnx_path: Path) -> ModelSpec:
    try:
        data = json.loads(metadata.read_text())
        task_type = str(data.get("task_type", TASK_DETECTION))
        if task_type not in TASKS:
            raise ValueError(f"task_type {task_type!r} is not one of {', '.join(TASKS)}")
        layout = data.get("layout")
        if task_type == TASK_DETECTION and layout is None:
            raise ValueError("an object-detection model needs an output layout")
        spec = ModelSpec(
            model_id=str(data["model_id"]),
            onnx_path=onnx_path,
            class_names=tuple(str(name) for name in data["class_names"]),
            input_name=str(data["input_name"]),
            input_width=int(data["input_width"]),
            input_height=int(data["input_height"]),
            layout=None if layout is None else OutputLayout(layout),
            color=str(data["color"]),
            scale=float(data["scale"]),
            source=str(data["source"]),
            source_sha256=str(data["source_sha256"]),
            created=str(data["created"]),
            task_type=task_type,
            mean=_triple(data.get("mean", (0.0, 0.0, 0.0))),
            std=_triple(data.get("std", (1.0, 1.0, 1.0))),
            logits=bool(data.get("logits", False)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidModelError(f"unreadable model metadata {metadata}: {exc}") from exc
    _check_normalisation(spec)
    return spec


def _triple(values: list[float] | tuple[float, ...]) -> tuple[float, float, float]:
    first, second, third = (float(value) for value in values)
    return first, second, third


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; models are read by other users/containers
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
