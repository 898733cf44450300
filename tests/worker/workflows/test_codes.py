"""qr_code_detector@v1 and barcode_detector@v1 on frames holding real codes (OpenCV's QR encoder, zxing-cpp's
barcode writer) pasted at known places, through the compiled workflow and the executor, so the JSON checked is
the pipeline's: each code decoded into ``data``, boxed where it was pasted, with the lineage of its image."""

from typing import Any

import cv2
import numpy as np
import pytest
import zxingcpp

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import WorkflowImage
from tests.support.codes import box_of, linear_code, paste, qr_code
from tests.worker.workflows.video_steps import NoModels, RunAtOnce, video

HEIGHT, WIDTH = 480, 640
# Serialised keys of a code, in the reference serialiser's order: the decoded text last, after the lineage.
CODE_KEYS = ["width", "height", "x", "y", "confidence", "class_id", "class", "detection_id", "parent_id", "data"]


def blank() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), 255, np.uint8)


def output(name: str, selector: str, **extra: Any) -> dict[str, Any]:
    return {"type": "JsonField", "name": name, "selector": selector, **extra}


def run(pixels: np.ndarray, *steps: dict[str, Any], outputs: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """The serialised outputs of both detectors (then ``steps`` and their ``outputs``) on one frame; fails on any
    step error."""
    plan = compile_workflow({
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/qr_code_detector@v1", "name": "qr", "images": "$inputs.image"},
                  {"type": "BarcodeDetector", "name": "barcodes", "image": "$inputs.image"},  # the legacy name
                  *steps],
        "outputs": [output("qr", "$steps.qr.predictions"), output("barcodes", "$steps.barcodes.predictions"),
                    *outputs],
    })
    executor = WorkflowExecutor(plan, REGISTRY, BlockEnvironment(0, models=NoModels(), background=RunAtOnce()))
    found, errors = executor.run(WorkflowImage.frame(pixels, "image", video(1)))
    assert errors == []
    return found


def by_text(predictions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {prediction["data"]: prediction for prediction in predictions}
    assert len(found) == len(predictions), "one detection per code"
    return found


def test_qr_codes_are_decoded_and_boxed_where_they_were_pasted() -> None:
    pixels = blank()
    pasted = {"https://example.com/line/7": paste(pixels, qr_code("https://example.com/line/7", 5), 40, 40),
              "LOT-42": paste(pixels, qr_code("LOT-42", 4), 330, 250)}
    paste(pixels, linear_code(zxingcpp.BarcodeFormat.EAN13, "4006381333931"), 300, 60)  # not a QR code

    outputs = run(pixels)

    assert outputs["qr"]["image"] == {"width": WIDTH, "height": HEIGHT}
    found = by_text(outputs["qr"]["predictions"])
    assert set(found) == set(pasted)
    for text, prediction in found.items():
        assert list(prediction) == CODE_KEYS
        assert (prediction["class"], prediction["class_id"], prediction["confidence"]) == ("qr_code", 0, 1.0)
        assert prediction["parent_id"] == "image"
        assert box_of(prediction) == pytest.approx(pasted[text], abs=2)
    assert len({prediction["detection_id"] for prediction in found.values()}) == 2


def test_barcodes_of_every_format_are_decoded_qr_codes_too_as_the_reference_s() -> None:
    pixels = blank()
    pasted = {"4006381333931": paste(pixels, linear_code(zxingcpp.BarcodeFormat.EAN13, "4006381333931"), 300, 60),
              "SHELF-0815": paste(pixels, linear_code(zxingcpp.BarcodeFormat.Code128, "SHELF-0815"), 300, 300),
              "LOT-42": paste(pixels, qr_code("LOT-42", 4), 40, 250)}

    found = by_text(run(pixels)["barcodes"]["predictions"])

    assert set(found) == set(pasted)
    for text, prediction in found.items():
        assert list(prediction) == CODE_KEYS
        assert (prediction["class"], prediction["class_id"], prediction["confidence"]) == ("barcode", 0, 1.0)
        x1, y1, x2, y2 = box_of(prediction)
        left, top, right, bottom = pasted[text]
        assert (x1, y1, x2) == pytest.approx((left, top, right), abs=2)
        # A linear code is boxed over the rows it was read on: most of its bars' height, not always all of it.
        assert top + 0.8 * (bottom - top) <= y2 <= bottom + 2


def test_a_rotated_code_is_boxed_whole() -> None:
    code = cv2.copyMakeBorder(qr_code("ROTATED-30", 5), 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
    height, width = code.shape
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), 30, 1.0)
    rotated = cv2.warpAffine(code, turn, (width, height), flags=cv2.INTER_NEAREST, borderValue=255)
    pixels = blank()
    pasted = paste(pixels, rotated, 100, 100)

    [prediction] = run(pixels)["qr"]["predictions"]

    assert prediction["data"] == "ROTATED-30"
    assert box_of(prediction) == pytest.approx(pasted, abs=2)  # all four corners inside, not two of them


@pytest.mark.parametrize("pixels", [blank(), np.random.default_rng(3).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)],
                         ids=["blank", "noise"])
def test_a_frame_without_codes_has_no_detections(pixels: np.ndarray) -> None:
    outputs = run(pixels)
    assert outputs == {name: {"image": {"width": WIDTH, "height": HEIGHT}, "predictions": []}
                       for name in ("qr", "barcodes")}


def test_codes_read_in_crops_carry_the_crops_lineage_and_come_back_to_the_frame() -> None:
    pixels = blank()
    pasted = {"CRATE-1": paste(pixels, qr_code("CRATE-1", 4), 60, 80),
              "CRATE-2": paste(pixels, qr_code("CRATE-2", 4), 400, 260)}
    steps = (  # each QR code, padded, cropped and read again in its crop
        {"type": "roboflow_core/detection_offset@v1", "name": "padded", "predictions": "$steps.qr.predictions",
         "offset_width": 40, "offset_height": 40},
        {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
         "predictions": "$steps.padded.predictions"},
        {"type": "roboflow_core/qr_code_detector@v1", "name": "in_crops", "images": "$steps.crops.crops"},
    )
    outputs = run(pixels, *steps, outputs=(
        output("padded", "$steps.padded.predictions"),
        output("own", "$steps.in_crops.predictions", coordinates_system="own"),
        output("parent", "$steps.in_crops.predictions")))  # the default: moved into the frame

    padded = by_text(outputs["padded"]["predictions"])
    for crop, in_frame in zip(outputs["own"], outputs["parent"], strict=True):
        [own], [moved] = crop["predictions"], in_frame["predictions"]
        text = own["data"]
        crop_id, (left, top, _, _) = padded[text]["detection_id"], box_of(padded[text])
        assert own["parent_id"] == crop_id and own["root_parent_id"] == "image"
        assert own["parent_origin"] == own["root_parent_origin"] == {
            "offset_x": round(left), "offset_y": round(top), "width": WIDTH, "height": HEIGHT}
        assert box_of(moved) == pytest.approx(pasted[text], abs=2) and moved["parent_id"] == "image"
        assert box_of(own) == pytest.approx(np.subtract(pasted[text], (left, top, left, top)), abs=2)
    assert {crop["predictions"][0]["data"] for crop in outputs["own"]} == set(pasted)
