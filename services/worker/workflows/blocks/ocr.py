"""OCR blocks: ``roboflow_core/pp_ocr@v1`` and ``roboflow_core/ocr_model@v1`` (``OCRModel``): the text in an image.

As the reference (``models/foundation/pp_ocr/v1.py``, ``post_process_ocr_result``): ``result`` is the image's text
(the fragments of a visual line joined with spaces, the lines with newlines); ``predictions`` one object detection
per text box in reading order (top to bottom, each line left to right), of class id 0 whose class is the text read
there (``""`` with ``text_recognition: none``) and whose confidence is the detector's; ``parent_id`` and
``root_parent_id`` the image's lineage and ``prediction_type`` ``"ocr"``. With ``text_detection: none`` the whole
image is read as one line of text and there are no predictions.

The models are PP-OCR's (:mod:`services.worker.ocr`): PP-OCRv4 mobile for the size "small", the only one registered
by ``make setup``; another size needs its model registered (``pp-ocr/det-<size>``, ``pp-ocr/rec-<size>``), else the
INIT fails with ``not_found`` naming it. Unlike the reference's PP-OCR pipeline, a recognised line goes through
PP-OCR's text line orientation classifier first, so a line upside down (at least 90% sure) is turned and read.

``ocr_model@v1`` is DocTR in the reference (no stage sizes); here it runs the same PP-OCR small models as pp_ocr's
defaults, so its text is PP-OCR's reading, not DocTR's. Both run where the graph runs (the post thread), per image:
on ``dynamic_crop``'s crops, once per crop.
"""

import uuid
from typing import Any, cast

import numpy as np
import supervision as sv

from services.core.workflows.ocr import DEFAULT_SIZE
from services.core.workflows.plan import PlanStep
from services.worker.ocr.engine import OcrResult
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import CLASS_NAME, WorkflowImage, detections_on

PREDICTION_TYPE = "ocr"


class PPOCRV1:
    """``roboflow_core/pp_ocr@v1``: text detection and / or recognition of the stage sizes asked for."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step
        self._models = env.models

    def run(self, images: WorkflowImage, text_detection: str = DEFAULT_SIZE,
            text_recognition: str = DEFAULT_SIZE) -> dict[str, Any]:
        return ocr_outputs(images, self._models.ocr(text_detection, text_recognition).read(images.image))


class OCRModelV1:
    """``roboflow_core/ocr_model@v1``: pp_ocr with its default (small) models; the reference's DocTR is not here."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step
        self._models = env.models

    def run(self, images: WorkflowImage) -> dict[str, Any]:
        return ocr_outputs(images, self._models.ocr(DEFAULT_SIZE, DEFAULT_SIZE).read(images.image))


def ocr_outputs(image: WorkflowImage, result: OcrResult) -> dict[str, Any]:
    """The block's outputs for ``result`` read on ``image``."""
    regions = result.regions
    xyxy = np.array([region.box.xyxy for region in regions], dtype=np.float32).reshape(-1, 4)
    confidence = np.array([region.box.score for region in regions], dtype=np.float32)
    detections = detections_on(image, xyxy, confidence, np.zeros(len(regions), dtype=np.int64), [""],
                               str(uuid.uuid4()), PREDICTION_TYPE)
    # detections_on sorts by confidence: put them back in reading order, each with its text as its class.
    detections = cast(sv.Detections, detections[np.argsort(np.argsort(-confidence, kind="stable"), kind="stable")])
    detections.data[CLASS_NAME] = np.array([region.text for region in regions], dtype=object)
    return {
        "result": result.text,
        "predictions": detections,
        "parent_id": image.parent_id,
        "root_parent_id": image.root_origin.parent_id,
        "prediction_type": PREDICTION_TYPE,
    }
