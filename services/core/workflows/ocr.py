"""Which models an OCR step needs: its stage sizes (the pp_ocr manifest's ``text_detection`` / ``text_recognition``)
as model ids of the worker's model repository.

A stage of size ``s`` runs the model ``pp-ocr/det-<s>`` or ``pp-ocr/rec-<s>``; a step that recognises text also runs
the text line orientation classifier ``pp-ocr/cls-small`` (lines read upside down are turned first). ``make setup``
registers the "small" ones (PP-OCRv4 mobile, :mod:`services.worker.models.ocr_build`); a size whose model is not
registered fails the INIT with ``not_found`` naming the model, never another size instead.
"""

PP_OCR = "roboflow_core/pp_ocr@v1"
OCR_MODEL = "roboflow_core/ocr_model@v1"  # DocTR in the reference; here the same PP-OCR small models
OCR_BLOCKS = (PP_OCR, OCR_MODEL)
NONE = "none"
SIZES = (NONE, "tiny", "small", "medium")
DEFAULT_SIZE = "small"
ORIENTATION_MODEL_ID = "pp-ocr/cls-small"


def detection_model_id(size: str) -> str:
    return f"pp-ocr/det-{size}"


def recognition_model_id(size: str) -> str:
    return f"pp-ocr/rec-{size}"


def ocr_stages(block_type: str, params: dict[str, object]) -> tuple[str, str]:
    """(text_detection, text_recognition) of a compiled OCR step (ocr_model@v1: both small)."""
    if block_type == OCR_MODEL:
        return DEFAULT_SIZE, DEFAULT_SIZE
    return str(params.get("text_detection", DEFAULT_SIZE)), str(params.get("text_recognition", DEFAULT_SIZE))


def ocr_model_ids(text_detection: str, text_recognition: str) -> dict[str, str]:
    """The model ids the stages need, by role: "detection", "recognition", "orientation" (absent when not run)."""
    models: dict[str, str] = {}
    if text_detection != NONE:
        models["detection"] = detection_model_id(text_detection)
    if text_recognition != NONE:
        models["recognition"] = recognition_model_id(text_recognition)
        models["orientation"] = ORIENTATION_MODEL_ID
    return models
