"""Model blocks: object detection (v1, v2, v3), classification and multi-label classification (v1, v2, v3) on the
worker's models; the QR code
and barcode detectors, which decode codes with no model (:mod:`services.worker.workflows.blocks.codes`); OCR
(:mod:`services.worker.workflows.blocks.ocr`) and Google Cloud Vision's
(:mod:`services.worker.workflows.blocks.google_vision`)."""

import uuid
from typing import Any

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory
from services.worker.workflows.blocks.codes import BarcodeDetectorV1, QRCodeDetectorV1
from services.worker.workflows.blocks.google_vision import GoogleVisionOcrV1
from services.worker.workflows.blocks.ocr import PPOCRV1, OCRModelV1
from services.worker.workflows.values import WorkflowImage

DEFAULT_CONFIDENCE = 0.4  # the reference's default, and ours for confidence_mode "best"/"default"
MULTI_LABEL_DEFAULT_CONFIDENCE = 0.5  # the reference's multi-label threshold when a request gives none


class ObjectDetection:
    """``predictions`` of ``model_id`` on the image; v2+ also echo ``model_id``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment, echo_model_id: bool = True) -> None:
        self._models = env.models
        self._echo = echo_model_id

    def run(self, images: WorkflowImage, model_id: str, **params: Any) -> dict[str, Any]:
        if "confidence_mode" in params:  # v3
            params["confidence"] = _v3_confidence(params.pop("confidence_mode"), params.pop("custom_confidence"))
        predictions = self._models.detect(model_id, images, params)
        inference_id = str(predictions.data["inference_id"][0]) if len(predictions) else _new_id()
        outputs: dict[str, Any] = {"inference_id": inference_id, "predictions": predictions}
        if self._echo:
            outputs["model_id"] = model_id
        return outputs


class ObjectDetectionV1(ObjectDetection):
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        super().__init__(step, env, echo_model_id=False)


class Classification:
    def __init__(self, step: PlanStep, env: BlockEnvironment, echo_model_id: bool = True) -> None:
        self._models = env.models
        self._echo = echo_model_id

    def run(self, images: WorkflowImage, model_id: str, confidence: float = DEFAULT_CONFIDENCE,
            **params: Any) -> dict[str, Any]:
        if "confidence_mode" in params:  # v3
            confidence = _v3_confidence(params["confidence_mode"], params["custom_confidence"])
        result = self._models.classify(model_id, images, confidence)
        outputs: dict[str, Any] = {"inference_id": result.inference_id, "predictions": result}
        if self._echo:
            outputs["model_id"] = model_id
        return outputs


class ClassificationV1(Classification):
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        super().__init__(step, env, echo_model_id=False)


class MultiLabelClassification:
    """``predictions``: every class of ``model_id`` (a multi-label model) scoring above the threshold; v2+ also
    echo ``model_id``. v3's "best" and "default" mean 0.5: the reference's threshold when none is given (our models
    carry no tuned per-class thresholds)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment, echo_model_id: bool = True) -> None:
        self._models = env.models
        self._echo = echo_model_id

    def run(self, images: WorkflowImage, model_id: str, confidence: float = DEFAULT_CONFIDENCE,
            **params: Any) -> dict[str, Any]:
        if "confidence_mode" in params:  # v3
            mode = params["confidence_mode"]
            confidence = float(params["custom_confidence"]) if mode == "custom" else MULTI_LABEL_DEFAULT_CONFIDENCE
        result = self._models.classify_multi_label(model_id, images, confidence)
        outputs: dict[str, Any] = {"inference_id": result.inference_id, "predictions": result}
        if self._echo:
            outputs["model_id"] = model_id
        return outputs


class MultiLabelClassificationV1(MultiLabelClassification):
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        super().__init__(step, env, echo_model_id=False)


def _v3_confidence(mode: str, custom: float) -> float:
    """Our models carry no tuned threshold, so "best" (detection only) and "default" both mean the reference's 0.4."""
    return float(custom) if mode == "custom" else DEFAULT_CONFIDENCE


def _new_id() -> str:
    return str(uuid.uuid4())


BLOCKS: dict[str, BlockFactory] = {
    "roboflow_core/roboflow_object_detection_model@v1": ObjectDetectionV1,
    "roboflow_core/roboflow_object_detection_model@v2": ObjectDetection,
    "roboflow_core/roboflow_object_detection_model@v3": ObjectDetection,
    "roboflow_core/roboflow_classification_model@v1": ClassificationV1,
    "roboflow_core/roboflow_classification_model@v2": Classification,
    "roboflow_core/roboflow_classification_model@v3": Classification,
    "roboflow_core/roboflow_multi_label_classification_model@v1": MultiLabelClassificationV1,
    "roboflow_core/roboflow_multi_label_classification_model@v2": MultiLabelClassification,
    "roboflow_core/roboflow_multi_label_classification_model@v3": MultiLabelClassification,
    "roboflow_core/qr_code_detector@v1": QRCodeDetectorV1,
    "roboflow_core/barcode_detector@v1": BarcodeDetectorV1,
    "roboflow_core/pp_ocr@v1": PPOCRV1,
    "roboflow_core/ocr_model@v1": OCRModelV1,
    "roboflow_core/google_vision_ocr@v1": GoogleVisionOcrV1,
}
