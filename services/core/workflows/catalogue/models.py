"""Model blocks: object detection (v1, v2, v3 and the legacy names), classification and multi-label classification
(v1, v2, v3); the QR code
and barcode detectors (no model: OpenCV and zxing-cpp decode the codes, so no ``model_id``); OCR: pp_ocr and
ocr_model (the models their stage sizes name: :mod:`services.core.workflows.ocr`), and google_vision_ocr (Google
Cloud Vision's ``images:annotate`` at the worker operator's address; no model here)."""

from collections.abc import Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds, ocr
from services.core.workflows.blocks import BlockSpec, Field, image_field
from services.core.workflows.catalogue.llm import is_proxy_key, proxy_key_refusal

_MODEL_ID = Field("model_id", kinds=(kinds.MODEL_ID, kinds.STRING), literal="str")
_ACTIVE_LEARNING = (
    # Accepted for compatibility; this engine has no active learning (nothing is uploaded).
    Field("disable_active_learning", kinds=(kinds.BOOLEAN,), literal="bool", default=True),
    Field("active_learning_target_dataset", kinds=(kinds.PROJECT,), literal="optional_str", default=None),
)
_NMS = (
    Field("class_filter", kinds=(kinds.LIST_OF_VALUES,), literal="str_list", default=None),
    Field("iou_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.3),
    Field("max_detections", kinds=(kinds.INTEGER,), literal="positive_int", default=300),
    Field("class_agnostic_nms", kinds=(kinds.BOOLEAN,), literal="bool", default=False),
    Field("max_candidates", kinds=(kinds.INTEGER,), literal="positive_int", default=3000),
)
_CONFIDENCE = Field("confidence", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.4)


def _confidence_mode(*modes: str) -> tuple[Field, Field]:
    """The v3 models' threshold fields: ``confidence_mode`` (``modes``, the first the default) and the threshold
    its "custom" mode uses."""
    return (Field("confidence_mode", kinds=(kinds.STRING,), literal="str", default=modes[0], choices=modes),
            Field("custom_confidence", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.4))


_DETECTION_OUTPUTS_V1: dict[str, tuple[str, ...]] = {
    "inference_id": (kinds.INFERENCE_ID,),
    "predictions": (kinds.OBJECT_DETECTION,),
}
_CLASSIFICATION_OUTPUTS_V1: dict[str, tuple[str, ...]] = {
    "inference_id": (kinds.INFERENCE_ID,),
    "predictions": (kinds.CLASSIFICATION,),
}
_OCR_OUTPUTS: dict[str, tuple[str, ...]] = {
    "result": (kinds.STRING,),
    "predictions": (kinds.OBJECT_DETECTION,),
    "parent_id": (kinds.PARENT_ID,),
    "root_parent_id": (kinds.PARENT_ID,),
    "prediction_type": (kinds.PREDICTION_TYPE,),
}


def check_ocr_stages(params: Mapping[str, Any], path: str) -> None:
    """pp_ocr: detection, recognition or both (the manifest's validator)."""
    if params.get("text_detection") == ocr.NONE and params.get("text_recognition") == ocr.NONE:
        raise InvalidPayloadError(
            f"field '{path}.text_detection': PP-OCR requires at least one of text detection or text recognition "
            "to be enabled; both are 'none'"
        )


GOOGLE_VISION_OCR = "roboflow_core/google_vision_ocr@v1"
# ocr_type -> the Vision API feature it asks for (the manifest's two choices).
GOOGLE_VISION_FEATURES = {"text_detection": "TEXT_DETECTION", "ocr_text_detection": "DOCUMENT_TEXT_DETECTION"}
GOOGLE_VISION_PROVIDER = "Google Cloud Vision"


def check_google_vision_key(params: Mapping[str, Any], path: str) -> None:
    """The reference's default key (``rf_key:account``) and ``rf_key:user:<id>`` ask for Roboflow's API proxy, which
    is not here: refused, naming the field (a selector's value is checked by the worker on each frame)."""
    if is_proxy_key(params.get("api_key")):
        raise InvalidPayloadError(f"field '{path}.api_key': {proxy_key_refusal(GOOGLE_VISION_PROVIDER)}")


BLOCKS = (
    BlockSpec(
        names=("roboflow_core/roboflow_object_detection_model@v1", "RoboflowObjectDetectionModel",
               "ObjectDetectionModel"),
        family="models",
        fields=(image_field("images", ("image",)), _MODEL_ID, _CONFIDENCE, *_NMS, *_ACTIVE_LEARNING),
        outputs=_DETECTION_OUTPUTS_V1,
    ),
    BlockSpec(
        names=("roboflow_core/roboflow_object_detection_model@v2",),
        family="models",
        fields=(image_field("images", ("image",)), _MODEL_ID, _CONFIDENCE, *_NMS, *_ACTIVE_LEARNING),
        outputs={**_DETECTION_OUTPUTS_V1, "model_id": (kinds.MODEL_ID,)},
    ),
    BlockSpec(
        names=("roboflow_core/roboflow_object_detection_model@v3",),
        family="models",
        fields=(
            image_field("images", ("image",)), _MODEL_ID,
            # "best": the model's own recommended threshold (ours: the model metadata's, else 0.4).
            *_confidence_mode("best", "default", "custom"), *_NMS, *_ACTIVE_LEARNING,
        ),
        outputs={**_DETECTION_OUTPUTS_V1, "model_id": (kinds.MODEL_ID,)},
    ),
    BlockSpec(
        names=("roboflow_core/roboflow_classification_model@v1", "RoboflowClassificationModel",
               "ClassificationModel"),
        family="models",
        fields=(image_field("images", ("image",)), _MODEL_ID, _CONFIDENCE, *_ACTIVE_LEARNING),
        outputs=_CLASSIFICATION_OUTPUTS_V1,
    ),
    BlockSpec(
        names=("roboflow_core/roboflow_classification_model@v2",),
        family="models",
        fields=(image_field("images", ("image",)), _MODEL_ID, _CONFIDENCE, *_ACTIVE_LEARNING),
        outputs={**_CLASSIFICATION_OUTPUTS_V1, "model_id": (kinds.MODEL_ID,)},
    ),
    BlockSpec(
        names=("roboflow_core/roboflow_classification_model@v3",),
        family="models",
        fields=(
            image_field("images", ("image",)), _MODEL_ID,
            # No "best" here, as in the reference's manifest: the top class decides a single-label result.
            *_confidence_mode("default", "custom"), *_ACTIVE_LEARNING,
        ),
        outputs={**_CLASSIFICATION_OUTPUTS_V1, "model_id": (kinds.MODEL_ID,)},
    ),
    # Multi-label classification (a sigmoid per class; every class scoring above the threshold is predicted).
    BlockSpec(
        names=("roboflow_core/roboflow_multi_label_classification_model@v1", "RoboflowMultiLabelClassificationModel",
               "MultiLabelClassificationModel"),
        family="models",
        fields=(image_field("images", ("image",)), _MODEL_ID, _CONFIDENCE, *_ACTIVE_LEARNING),
        outputs={"predictions": (kinds.CLASSIFICATION,), "inference_id": (kinds.STRING,)},
    ),
    BlockSpec(
        names=("roboflow_core/roboflow_multi_label_classification_model@v2",),
        family="models",
        fields=(image_field("images", ("image",)), _MODEL_ID, _CONFIDENCE, *_ACTIVE_LEARNING),
        outputs={**_CLASSIFICATION_OUTPUTS_V1, "model_id": (kinds.MODEL_ID,)},
    ),
    BlockSpec(
        names=("roboflow_core/roboflow_multi_label_classification_model@v3",),
        family="models",
        fields=(
            image_field("images", ("image",)), _MODEL_ID,
            # "best": the reference's F1-optimal per-model thresholds; ours carry none, so 0.4 as "default".
            *_confidence_mode("best", "default", "custom"), *_ACTIVE_LEARNING,
        ),
        outputs={**_CLASSIFICATION_OUTPUTS_V1, "model_id": (kinds.MODEL_ID,)},
    ),
    BlockSpec(
        names=("roboflow_core/qr_code_detector@v1", "QRCodeDetector", "QRCodeDetection"),
        family="models",
        fields=(image_field("images", ("image",)),),
        outputs={"predictions": (kinds.QR_CODE_DETECTION,)},
    ),
    BlockSpec(
        names=("roboflow_core/barcode_detector@v1", "BarcodeDetector", "BarcodeDetection"),
        family="models",
        fields=(image_field("images", ("image",)),),
        outputs={"predictions": (kinds.BAR_CODE_DETECTION,)},
    ),
    BlockSpec(
        names=(ocr.PP_OCR,),
        family="models",
        fields=(image_field("images", ("image",)), *(
            Field(name, kinds=(), literal="str", default=ocr.DEFAULT_SIZE, choices=ocr.SIZES)
            for name in ("text_detection", "text_recognition"))),
        outputs=_OCR_OUTPUTS,
        check=check_ocr_stages,
    ),
    BlockSpec(  # DocTR in the reference; the same PP-OCR small models as pp_ocr's defaults here
        names=(ocr.OCR_MODEL, "OCRModel"),
        family="models",
        fields=(image_field("images", ("image",)),),
        outputs=_OCR_OUTPUTS,
    ),
    BlockSpec(  # a hosted API (services.worker.workflows.blocks.google_vision): the key must be the step's own
        names=(GOOGLE_VISION_OCR,),
        family="models",
        fields=(
            image_field("image", ("images",)),
            Field("ocr_type", kinds=(), literal="str", choices=tuple(GOOGLE_VISION_FEATURES)),
            Field("api_key", kinds=(kinds.STRING, kinds.SECRET), literal="str", default="rf_key:account"),
            Field("language_hints", kinds=(), literal="str_list", default=None),
        ),
        outputs={"text": (kinds.STRING,), "language": (kinds.STRING,), "predictions": (kinds.OBJECT_DETECTION,)},
        check=check_google_vision_key,
    ),
)
