"""The QR code and barcode detectors' catalogue entries, through the compiler: names, fields, no model, and
their predictions accepted where object detections are (drawing, filtering, cropping), refused elsewhere."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow
from services.core.workflows.plan import WorkflowPlan

QR = "roboflow_core/qr_code_detector@v1"
BARCODE = "roboflow_core/barcode_detector@v1"


# detections_filter's operation: the detections of 100 px² or more.
LARGE_ONLY = {"type": "DetectionsFilter", "filter_operation": {"type": "StatementGroup", "statements": [{
    "type": "BinaryStatement",
    "left_operand": {"type": "DynamicOperand", "operations": [{"type": "ExtractDetectionProperty",
                                                               "property_name": "size"}]},
    "comparator": {"type": "(Number) >="},
    "right_operand": {"type": "StaticOperand", "value": 100}}]}}


def definition(*steps: dict[str, Any]) -> dict[str, Any]:
    """A published-format definition: the image, a QR code and a barcode detector, then ``steps``."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": QR, "name": "qr", "images": "$inputs.image"},
                  {"type": BARCODE, "name": "barcodes", "images": "$inputs.image"},
                  *steps],
        "outputs": [{"type": "JsonField", "name": "qr", "selector": "$steps.qr.predictions"},
                    {"type": "JsonField", "name": "barcodes", "selector": "$steps.barcodes.predictions"}],
    }


def compiled(*steps: dict[str, Any]) -> WorkflowPlan:
    return compile_workflow(definition(*steps))


def refusal(*steps: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compiled(*steps)
    return str(caught.value)


@pytest.mark.parametrize(("name", "canonical"), [
    ("QRCodeDetector", QR), ("QRCodeDetection", QR), ("BarcodeDetector", BARCODE), ("BarcodeDetection", BARCODE)])
def test_legacy_names_and_the_image_alias_compile_to_the_canonical_block(name: str, canonical: str) -> None:
    plan = compile_workflow({"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
                             "steps": [{"type": name, "name": "codes", "image": "$inputs.image"}], "outputs": []})
    [step] = plan.steps
    assert (step.type, step.params) == (canonical, {"images": "$inputs.image"})


def test_the_detectors_name_no_model_so_the_worker_loads_none() -> None:
    plan = compiled()
    assert plan.model_ids() == []
    assert [spec.family for spec in (CATALOGUE[QR], CATALOGUE[BARCODE])] == ["models", "models"]
    assert CATALOGUE[QR].outputs == {"predictions": (kinds.QR_CODE_DETECTION,)}
    assert CATALOGUE[BARCODE].outputs == {"predictions": (kinds.BAR_CODE_DETECTION,)}


def test_the_image_is_required() -> None:
    message = refusal({"type": BARCODE, "name": "no_image"})
    assert "'workflow.steps[2].images'" in message


def test_their_predictions_are_drawn_filtered_and_cropped_like_object_detections() -> None:
    plan = compiled(
        {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
         "predictions": "$steps.qr.predictions"},
        {"type": "roboflow_core/label_visualization@v1", "name": "labels", "image": "$steps.boxes.image",
         "predictions": "$steps.barcodes.predictions", "text": "Class"},
        {"type": "roboflow_core/detections_filter@v1", "name": "large", "predictions": "$steps.barcodes.predictions",
         "operations": [LARGE_ONLY]},
        {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
         "predictions": "$steps.qr.predictions"},
        {"type": "roboflow_core/barcode_detector@v1", "name": "in_crops", "images": "$steps.crops.crops"},
    )
    assert [step.name for step in plan.steps][-1] == "in_crops" and plan.step("in_crops").dimensionality == 1


def test_their_predictions_are_not_images_nor_classifications() -> None:
    message = refusal({"type": QR, "name": "again", "images": "$steps.qr.predictions"})
    assert "'workflow.steps[2].images'" in message and "qr_code_detection" in message
    message = refusal({"type": "roboflow_core/detections_classes_replacement@v1", "name": "replace",
                       "object_detection_predictions": "$steps.qr.predictions",
                       "classification_predictions": "$steps.barcodes.predictions"})
    assert "'workflow.steps[2].classification_predictions'" in message and "bar_code_detection" in message


def test_codes_widen_to_object_detections_only() -> None:
    for code in (kinds.QR_CODE_DETECTION, kinds.BAR_CODE_DETECTION):
        assert kinds.compatible((code,), kinds.DETECTIONS)
        assert kinds.compatible((code,), (code,))
        assert not kinds.compatible((code,), (kinds.INSTANCE_SEGMENTATION, kinds.CLASSIFICATION, kinds.IMAGE))
    assert not kinds.compatible((kinds.OBJECT_DETECTION,), (kinds.QR_CODE_DETECTION,))
