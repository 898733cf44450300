"""OCR with PP-OCR's models on onnxruntime: text boxes found by the detector, each cut out upright, turned when the
orientation classifier reads it upside down, and read by the recogniser; the text assembled in reading order.

Each model is one onnxruntime session in this process (not the worker's inference service: the detector's input
takes the size of each image and the recogniser's the width of each batch of lines, where the service batches
inputs of one fixed size), opened on the pipeline's device with its threads. ``run`` may be called from several
threads at once.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import cv2
import numpy as np

from services.core.workflows.ocr import ocr_model_ids
from services.worker.detection.detector import select_providers
from services.worker.models.errors import InferenceDeviceError, InvalidModelError
from services.worker.models.repository import (
    TASK_OCR_DETECTION,
    TASK_OCR_ORIENTATION,
    TASK_OCR_RECOGNITION,
    ModelSpec,
)
from services.worker.ocr.detection import (
    DbParams,
    TextBox,
    boxes_from_probability_map,
    reading_order,
    resize_for_detection,
)
from services.worker.ocr.recognition import Normaliser, batch_width, crop_text_line, ctc_decode, line_batch

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)

LINE_HEIGHT = 48  # PP-OCR's recogniser and orientation classifier read lines 48 px high
MIN_LINE_WIDTH = 320  # a batch of lines is at least this wide (PaddleOCR's rec_image_shape)
MAX_LINE_WIDTH = 3200
LINE_BATCH = 6  # lines per recogniser run (PaddleOCR's rec_batch_num), batched by aspect ratio
ORIENTATION_WIDTH = 192
ORIENTATION_THRESHOLD = 0.9  # a line classified "180" with at least this probability is turned
UPSIDE_DOWN = "180"
DB_DEFAULTS = DbParams()


@dataclass(frozen=True, slots=True)
class TextRegion:
    """A text box the detector found (reading order) and what the recogniser read there ("" without recognition)."""

    box: TextBox
    text: str
    text_confidence: float


@dataclass(frozen=True, slots=True)
class OcrResult:
    """An image's text: fragments of one line joined with spaces, lines with newlines (the reference's); without
    detection the recogniser's reading of the whole image. ``regions``: the text boxes (none without detection)."""

    text: str
    regions: tuple[TextRegion, ...]
    text_confidence: float = 0.0  # without detection: the recogniser's confidence in ``text``


class OcrModel:
    """One of OCR's models: its checked session and the normalisation of its input."""

    task = ""

    def __init__(self, spec: ModelSpec, device: str = "cpu", intra_op_threads: int = 0) -> None:
        if spec.task_type != self.task:
            raise InvalidModelError(f"model {spec.model_id!r} is a {spec.task_type} model; this needs {self.task}")
        self.spec = spec
        self.normalise = Normaliser(spec.color, spec.scale, spec.mean, spec.std)
        self._session = open_ocr_session(spec, device, intra_op_threads)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != spec.input_name or len(outputs) != 1:
            raise InvalidModelError(f"{spec.model_id}: the ONNX graph does not match its metadata")
        self._input = spec.input_name

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, batch: np.ndarray) -> np.ndarray:
        (raw,) = self._session.run(None, {self._input: batch})
        return np.asarray(raw)


class TextDetector(OcrModel):
    """DB text detection: a probability map of text, its regions as boxes."""

    task = TASK_OCR_DETECTION

    def probability_map(self, image: np.ndarray, params: DbParams) -> np.ndarray:
        """The [H, W] probability of text at the detector's resolution of a BGR uint8 image."""
        resized = resize_for_detection(image, params)
        return np.asarray(self.run(self.normalise(resized)[None])[0, 0], dtype=np.float32)

    def detect(self, image: np.ndarray, params: DbParams = DB_DEFAULTS) -> list[TextBox]:
        """The text boxes of a BGR uint8 image, in its pixels (in no particular order)."""
        probability = self.probability_map(image, params)
        return boxes_from_probability_map(probability, image.shape[0], image.shape[1], params)


class TextRecognizer(OcrModel):
    """CRNN/SVTR text line recognition with CTC decoding."""

    task = TASK_OCR_RECOGNITION

    def recognize(self, lines: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """(text, confidence) of each BGR text line image, in their order."""
        order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1] / max(1, lines[i].shape[0]))
        read: list[tuple[str, float]] = [("", 0.0)] * len(lines)
        height = self.spec.input_height or LINE_HEIGHT
        for start in range(0, len(order), LINE_BATCH):
            chunk = order[start:start + LINE_BATCH]
            crops = [lines[i] for i in chunk]
            batch = line_batch(crops, height, batch_width(crops, height, MIN_LINE_WIDTH, MAX_LINE_WIDTH),
                               self.normalise)
            for index, decoded in zip(chunk, ctc_decode(self.run(batch), self.spec.class_names), strict=True):
                read[index] = decoded
        return read


class OrientationClassifier(OcrModel):
    """Text line orientation: upright ("0") or upside down ("180")."""

    task = TASK_OCR_ORIENTATION

    def upright(self, lines: Sequence[np.ndarray], threshold: float = ORIENTATION_THRESHOLD) -> list[np.ndarray]:
        """The lines, those classified upside down with at least ``threshold`` turned half a turn."""
        if not lines:
            return []
        height = self.spec.input_height or LINE_HEIGHT
        width = self.spec.input_width or ORIENTATION_WIDTH
        scores = self.run(line_batch(lines, height, width, self.normalise))
        turned = UPSIDE_DOWN in self.spec.class_names and len(self.spec.class_names) == scores.shape[1]
        flip = self.spec.class_names.index(UPSIDE_DOWN) if turned else -1
        return [cv2.rotate(line, cv2.ROTATE_180) if flip >= 0 and int(np.argmax(row)) == flip
                and float(row[flip]) >= threshold else line for line, row in zip(lines, scores, strict=True)]


class OcrEngine:
    """An image's text with the given models: a detector and/or a recogniser (an orientation classifier optional)."""

    def __init__(self, detector: TextDetector | None, recognizer: TextRecognizer | None,
                 orientation: OrientationClassifier | None = None, params: DbParams = DB_DEFAULTS) -> None:
        if detector is None and recognizer is None:
            raise ValueError("OCR needs text detection or text recognition, or both")
        self.detector = detector
        self.recognizer = recognizer
        self.orientation = orientation
        self.params = params

    def read(self, image: np.ndarray) -> OcrResult:
        """The text of a BGR uint8 HxWx3 image (see :class:`OcrResult`)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"expected a non-empty HxWx3 BGR image, got shape {image.shape}")
        if self.detector is None:
            [(text, confidence)] = self.read_lines([image])
            return OcrResult(text, (), confidence)
        boxes = self.detector.detect(image, self.params)
        lines = reading_order([box.xyxy for box in boxes])
        ordered = [boxes[index] for line in lines for index in line]
        if self.recognizer is None:
            return OcrResult("", tuple(TextRegion(box, "", 0.0) for box in ordered))
        read = self.read_lines([crop_text_line(image, box.quad) for box in ordered])
        regions = tuple(TextRegion(box, text, score) for box, (text, score) in zip(ordered, read, strict=True))
        return OcrResult(assemble_text([text for text, _ in read], [len(line) for line in lines]), regions)

    def read_lines(self, lines: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """(text, confidence) of text line images (turned upright first when there is an orientation classifier)."""
        assert self.recognizer is not None
        if self.orientation is not None:
            lines = self.orientation.upright(lines)
        return self.recognizer.recognize(lines)


OCR_MODELS: dict[str, type[OcrModel]] = {model.task: model for model in (TextDetector, TextRecognizer,
                                                                         OrientationClassifier)}
_ROLES = {"detection": TASK_OCR_DETECTION, "recognition": TASK_OCR_RECOGNITION, "orientation": TASK_OCR_ORIENTATION}


_Model = TypeVar("_Model", bound=OcrModel)


def ocr_tasks(text_detection: str, text_recognition: str) -> dict[str, str]:
    """model id -> task of the models a pp_ocr step of these stage sizes runs."""
    return {model_id: _ROLES[role] for role, model_id in ocr_model_ids(text_detection, text_recognition).items()}


def ocr_engine(text_detection: str, text_recognition: str, load: Callable[[str, str], Any]) -> OcrEngine:
    """The engine of a pp_ocr step's stage sizes, its models got with ``load(model_id, task)``."""
    model_ids = ocr_model_ids(text_detection, text_recognition)

    def model(role: str, kind: type[_Model]) -> _Model | None:
        if role not in model_ids:
            return None
        loaded = load(model_ids[role], _ROLES[role])
        if not isinstance(loaded, kind):
            raise InvalidModelError(f"model {model_ids[role]!r} is not an OCR {role} model")
        return loaded

    return OcrEngine(model("detection", TextDetector), model("recognition", TextRecognizer),
                     model("orientation", OrientationClassifier))


def assemble_text(fragments: Sequence[str], line_lengths: Sequence[int]) -> str:
    """Fragments in reading order as text: each visual line's (``line_lengths`` of them) stripped and joined with
    spaces (empty ones left out), the lines joined with newlines."""
    rows, start = [], 0
    for length in line_lengths:
        rows.append(" ".join(text for text in (f.strip() for f in fragments[start:start + length]) if text))
        start += length
    return "\n".join(rows)


def open_ocr_session(spec: ModelSpec, device: str, intra_op_threads: int) -> "ort.InferenceSession":
    """An onnxruntime session of ``spec`` on ``device`` (CUDA on a GPU, never TensorRT: every new input size would
    build a new engine); InferenceDeviceError if it fell back to the CPU."""
    import onnxruntime as ort

    providers = select_providers(device, ort.get_available_providers(), tensorrt=False)
    options = ort.SessionOptions()
    if intra_op_threads > 0:
        options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(spec.onnx_path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises untyped errors for unreadable graphs
        raise InvalidModelError(f"onnxruntime cannot load {spec.model_id}: {exc}") from exc
    if device != "cpu" and session.get_providers()[0] == "CPUExecutionProvider":
        raise InferenceDeviceError(f"device {device!r}: onnxruntime could not start {providers[0]} for "
                                   f"{spec.model_id}; the session fell back to {session.get_providers()}")
    log.info("loaded OCR model %s on %s with %s", spec.model_id, device, session.get_providers())
    return session
