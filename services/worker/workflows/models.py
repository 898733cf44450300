"""The models of a workflow: each loaded once per process, shared by every step that names it.

Model steps on the video frame itself are run ahead of the graph, on the pipeline's inference
threads (batched across the round's sources, overlapping decode and the previous round's blocks):
the workflow processor hands their raw outputs to :meth:`ModelService.seed` before running a
frame's graph, and the model block's :meth:`ModelService.detect` finds them there. Model steps on
crops and slices run inline, when the graph reaches them.

With an :class:`~services.worker.inference.client.InferenceClient` the models' ``session.run`` goes
to the worker's inference service (loaded once per worker, batched across its pipelines); without
one each process opens its own sessions. OCR's models (:mod:`services.worker.ocr`) always open their own,
on the pipeline's device and threads: their inputs take each image's size.
"""

import threading
import uuid
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import supervision as sv

from services.worker.detection.detector import DetectionParams, Detector
from services.worker.detection.letterbox import LetterboxTransform
from services.worker.inference.client import InferenceClient, RemoteRunner
from services.worker.models.errors import ModelNotFoundError
from services.worker.models.repository import (
    CLASSIFIER_TASKS,
    OCR_TASKS,
    TASK_CLASSIFICATION,
    TASK_MULTI_LABEL_CLASSIFICATION,
    ModelRepository,
)
from services.worker.ocr.engine import OCR_MODELS, OcrEngine, OcrModel, ocr_engine
from services.worker.workflows.values import Classification, WorkflowImage, detections_on

# (model_id, device, threads, service) -> Detector / Classifier / OcrModel
_LOADED: dict[tuple[str, str, int, str], Any] = {}
_LOADING = threading.Lock()


class ModelService:
    """Detection and classification for the blocks of one pipeline (models cached per process)."""

    def __init__(self, repository: ModelRepository, device: str = "cpu", intra_op_threads: int = 0,
                 client: InferenceClient | None = None) -> None:
        self._repository = repository
        self._device = device
        self._threads = intra_op_threads
        self._client = client
        # Raw outputs computed ahead for this frame: (model_id, id of the frame's pixels) -> (raw, transform)
        self._seeds: dict[tuple[str, int], tuple[np.ndarray, LetterboxTransform]] = {}

    def detector(self, model_id: str) -> Detector:
        return self._load(model_id, "object-detection")  # type: ignore[no-any-return]

    def classifier(self, model_id: str, task: str = TASK_CLASSIFICATION) -> Any:
        """A classifier of ``task``: multi-class (the default) or multi-label."""
        return self._load(model_id, task)

    def ocr(self, text_detection: str, text_recognition: str) -> OcrEngine:
        """The OCR engine of a pp_ocr step's stage sizes (its models loaded once per process)."""
        return ocr_engine(text_detection, text_recognition, self._load)

    def preload(self, model_ids: Mapping[str, str]) -> None:
        """Load every model now (model_id -> task): a missing or wrong model fails the INIT, not a frame."""
        for model_id, task in model_ids.items():
            self._load(model_id, task)

    def seed(self, model_id: str, image: np.ndarray, raw: np.ndarray, transform: LetterboxTransform) -> None:
        self._seeds[(model_id, id(image))] = (raw, transform)

    def clear_seeds(self) -> None:
        self._seeds.clear()

    def detect(self, model_id: str, image: WorkflowImage, params: Mapping[str, Any]) -> sv.Detections:
        detector = self.detector(model_id)
        thresholds = DetectionParams(
            confidence=float(params.get("confidence", 0.4)),
            iou_threshold=float(params.get("iou_threshold", 0.3)),
            class_agnostic_nms=bool(params.get("class_agnostic_nms", False)),
            max_candidates=int(params.get("max_candidates", 3000)),
            max_detections=int(params.get("max_detections", 300)),
        )
        seeded = self._seeds.get((model_id, id(image.image)))
        if seeded is None:
            canvas, transform = detector.preprocess(image.image)
            raw = detector.infer(canvas)[0]
        else:
            raw, transform = seeded
        found = detector.postprocess(raw, transform, thresholds)
        detections = detections_on(image, found.xyxy, found.confidence, found.class_id, detector.class_names,
                                   str(uuid.uuid4()))
        class_filter = params.get("class_filter")
        if class_filter:
            detections = cast(sv.Detections, detections[np.isin(detections.data["class_name"], list(class_filter))])
        return detections

    def classify(self, model_id: str, image: WorkflowImage, confidence: float) -> Classification:
        classifier = self.classifier(model_id)
        probabilities = classifier.classify(image.image)
        return Classification(image, tuple(classifier.class_names), np.asarray(probabilities, dtype=np.float32),
                              str(uuid.uuid4()), confidence)

    def classify_multi_label(self, model_id: str, image: WorkflowImage, confidence: float) -> Classification:
        """Every class of a multi-label model whose score is above ``confidence`` (strictly, as the reference's)."""
        classifier = self.classifier(model_id, TASK_MULTI_LABEL_CLASSIFICATION)
        scores = np.asarray(classifier.classify(image.image), dtype=np.float32)
        names = tuple(classifier.class_names)
        predicted = tuple(name for name, score in zip(names, scores.tolist(), strict=True) if score > confidence)
        return Classification(image, names, scores, str(uuid.uuid4()), confidence, multi_label=True,
                              predicted=predicted)

    def _load(self, model_id: str, task: str) -> Any:
        key = (model_id, self._device, self._threads, str(self._client.path) if self._client else "")
        with _LOADING:
            model = _LOADED.get(key)
            if model is None:
                model = self._build(model_id, task)
                _LOADED[key] = model
        if _task_of(model) != task:
            from services.worker.models.errors import InvalidModelError

            raise InvalidModelError(f"model {model_id} is a {_task_of(model)} model; this step needs {task}")
        return model

    def _build(self, model_id: str, task: str) -> Any:
        if task in OCR_TASKS:
            try:
                spec = self._repository.resolve(model_id, task)
            except ModelNotFoundError as exc:
                raise ModelNotFoundError(
                    f"{exc}: this worker has only the small PP-OCR models (make setup registers them). Register a "
                    f"PP-OCR {task} model as {model_id!r} with `python -m services.worker.models register-ocr "
                    f"{model_id} <model.onnx>` (on the worker's model repository), or choose the size 'small'"
                ) from None
            return OCR_MODELS[task](spec, self._device, self._threads)
        spec = self._repository.resolve(model_id)
        runner = None
        if self._client is not None:
            runner = RemoteRunner(self._client, model_id, self._client.load(model_id))
        if getattr(spec, "task_type", "object-detection") in CLASSIFIER_TASKS:
            from services.worker.detection.classifier import Classifier

            return Classifier(spec, device=self._device, intra_op_threads=self._threads, runner=runner)
        return Detector(spec, device=self._device, intra_op_threads=self._threads, runner=runner)


def _task_of(model: Any) -> str:
    if isinstance(model, OcrModel):
        return model.task
    if isinstance(model, Detector):
        return "object-detection"
    return str(getattr(getattr(model, "model", None), "task_type", TASK_CLASSIFICATION))  # a classifier's task
