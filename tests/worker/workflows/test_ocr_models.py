"""OCR on the real PP-OCR models (make setup registers them from PyPI): known text drawn on plates pasted on real
frames of vtest.avi, read by the engine, by the pp_ocr and ocr_model blocks and in whole workflows (drawn, templated,
on crops); the registration of the models and the refusal of a size whose model is not registered."""

import base64
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from services.core.workflows import compile_workflow
from services.worker.models.errors import InvalidModelError, ModelNotFoundError
from services.worker.models.ocr_build import SMALL_MODELS, build_ocr_models, register_ocr_model
from services.worker.models.repository import ModelRepository
from services.worker.ocr.engine import OcrEngine
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.ocr import ocr_outputs
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.models import ModelService
from services.worker.workflows.processor import model_tasks
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import CLASS_NAME, PARENT_ID, WorkflowImage, detections_on
from tests.support.ocr import iou, paste, plate
from tests.worker.conftest import DOWNLOADS, MODELS
from tests.worker.workflows.visualization_support import InlineBackground, workflow_image

IMAGE = {"type": "WorkflowImage", "name": "image"}


@pytest.fixture(scope="module")
def models() -> ModelService:
    build_ocr_models(MODELS, DOWNLOADS)
    return ModelService(ModelRepository(MODELS))


@pytest.fixture(scope="module")
def engine(models: ModelService) -> OcrEngine:
    return models.ocr("small", "small")


@pytest.fixture
def frame(video_frame: Callable[[str, int], np.ndarray]) -> np.ndarray:
    return video_frame("vtest.avi", 10)


def ocr_step(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/pp_ocr@v1", "name": "ocr", "images": "$inputs.image", **fields}


def run_workflow(models: Any, steps: list[dict[str, Any]], outputs: Mapping[str, str],
                 pixels: np.ndarray) -> dict[str, Any]:
    definition = {"version": "1.0", "inputs": [IMAGE], "steps": steps,
                  "outputs": [{"type": "JsonField", "name": name, "selector": selector}
                              for name, selector in outputs.items()]}
    executor = WorkflowExecutor(compile_workflow(definition), REGISTRY,
                                BlockEnvironment(0, models, background=InlineBackground()))
    result, errors = executor.run(workflow_image(pixels))
    assert errors == []
    return result


def test_a_licence_plate_is_read_exactly_with_its_box(engine: OcrEngine, frame: np.ndarray) -> None:
    ink = paste(frame, plate("KX 4821"), 100, 300)

    result = engine.read(frame)

    assert result.text == "KX 4821"
    [region] = result.regions
    assert region.text == "KX 4821" and region.text_confidence > 0.95 and region.box.score > 0.7
    assert iou(region.box.xyxy, ink) > 0.6


def test_several_lines_are_read_in_reading_order(engine: OcrEngine, frame: np.ndarray) -> None:
    for x, y, text in ((60, 60, "ROBOFLOW"), (420, 200, "EXIT 12"), (60, 200, "KX 4821"), (60, 400, "STOP")):
        paste(frame, plate(text), x, y)

    result = engine.read(frame)

    assert result.text == "ROBOFLOW\nKX 4821 EXIT 12\nSTOP"  # one line's fragments joined with a space
    assert [region.text for region in result.regions] == ["ROBOFLOW", "KX 4821", "EXIT 12", "STOP"]


def test_letters_beside_digits_are_read_as_this_model_reads_them(engine: OcrEngine, frame: np.ndarray) -> None:
    paste(frame, plate("ROBOFLOW 2026"), 100, 300)

    # PP-OCRv4 small reads this font's round O as the digit 0 beside digits, and drops the narrow space.
    assert engine.read(frame).text == "ROB0FL0W2026"


def test_an_upside_down_line_is_turned_by_the_orientation_classifier(engine: OcrEngine, frame: np.ndarray) -> None:
    paste(frame, np.rot90(plate("KX 4821"), 2), 100, 300)

    assert engine.read(frame).text == "KX 4821"
    without = OcrEngine(engine.detector, engine.recognizer, orientation=None)
    assert without.read(frame).text != "KX 4821"  # what the recogniser alone makes of it


def test_detection_only_gives_boxes_around_the_text(models: ModelService, frame: np.ndarray) -> None:
    inks = [paste(frame, plate("KX 4821"), 100, 300), paste(frame, plate("STOP", scale=2.0, thickness=4), 450, 80)]

    outputs = run_workflow(models, [ocr_step(text_recognition="none")], {"result": "$steps.ocr.result",
                                                                         "predictions": "$steps.ocr.predictions"},
                           frame)

    assert outputs["result"] == ""
    found = outputs["predictions"]["predictions"]
    assert [p["class"] for p in found] == ["", ""] and all(p["class_id"] == 0 for p in found)
    boxes = [(p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2, p["y"] + p["height"] / 2)
             for p in found]
    assert iou(boxes[0], inks[1]) > 0.6 and iou(boxes[1], inks[0]) > 0.6  # STOP is higher: read first


def test_recognition_only_reads_the_whole_image_as_one_line(models: ModelService) -> None:
    outputs = run_workflow(models, [ocr_step(text_detection="none")], {
        "result": "$steps.ocr.result", "predictions": "$steps.ocr.predictions"}, plate("KX 4821"))

    assert outputs["result"] == "KX 4821" and outputs["predictions"]["predictions"] == []


def test_the_block_s_outputs_as_the_reference_gives_them(models: ModelService, frame: np.ndarray) -> None:
    paste(frame, plate("KX 4821"), 100, 300)
    names = ("result", "predictions", "parent_id", "root_parent_id", "prediction_type")

    outputs = run_workflow(models, [ocr_step(), {"type": "OCRModel", "name": "doctr", "images": "$inputs.image"}],
                           {**{name: f"$steps.ocr.{name}" for name in names},
                            "doctr": "$steps.doctr.result"}, frame)

    assert (outputs["result"], outputs["doctr"]) == ("KX 4821", "KX 4821")  # ocr_model: the same small models
    assert (outputs["parent_id"], outputs["root_parent_id"], outputs["prediction_type"]) == (
        "image.[0]", "image.[0]", "ocr")
    [found] = outputs["predictions"]["predictions"]
    assert found["class"] == "KX 4821" and found["class_id"] == 0 and 0.5 < found["confidence"] <= 1.0
    assert found["parent_id"] == "image.[0]" and found["detection_id"]
    assert outputs["predictions"]["image"] == {"width": 768, "height": 576}


def test_the_text_feeds_a_template_and_the_boxes_are_drawn_with_their_text(models: ModelService,
                                                                            frame: np.ndarray) -> None:
    x1, y1, x2, _ = (round(v) for v in paste(frame, plate("KX 4821"), 100, 300))
    steps = [
        ocr_step(),
        {"type": "roboflow_core/string_template@v1", "name": "message", "template": "Plate {plate}",
         "data": {"plate": "$steps.ocr.result"}},
        {"type": "roboflow_core/property_definition@v1", "name": "count", "data": "$steps.ocr.predictions",
         "operations": [{"type": "SequenceLength"}]},
        {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
         "predictions": "$steps.ocr.predictions"},
        {"type": "roboflow_core/label_visualization@v1", "name": "labels", "image": "$steps.boxes.image",
         "predictions": "$steps.ocr.predictions", "text": "Class"},
    ]
    outputs = run_workflow(models, steps, {"message": "$steps.message.output", "count": "$steps.count.output",
                                           "drawn": "$steps.labels.image"}, frame.copy())

    assert (outputs["message"], outputs["count"]) == ("Plate KX 4821", 1)
    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(outputs["drawn"]["value"]), np.uint8), cv2.IMREAD_COLOR)
    changed = np.abs(drawn.astype(int) - frame.astype(int)).max(axis=2) > 40  # beyond JPEG noise
    assert changed[y1 - 30:y1, x1 - 20:x2].any(), "the label with the text above the box"


class PlateDetector:
    """Models for a crops workflow: a "plate detector" that finds the plates where the test pasted them; OCR real."""

    def __init__(self, models: ModelService, plates: list[tuple[float, float, float, float]]) -> None:
        self._models = models
        self._plates = np.array(plates, dtype=np.float32)

    def detect(self, model_id: str, image: WorkflowImage, params: Mapping[str, Any]) -> sv.Detections:
        count = len(self._plates)
        return detections_on(image, self._plates, np.linspace(0.9, 0.8, count), np.zeros(count, dtype=np.int64),
                             ["plate"], "plates")

    def classify(self, model_id: str, image: Any, confidence: float) -> Any:
        raise AssertionError("no classification here")

    def ocr(self, text_detection: str, text_recognition: str) -> OcrEngine:
        return self._models.ocr(text_detection, text_recognition)


def test_each_crop_of_a_detection_is_read(models: ModelService, frame: np.ndarray) -> None:
    first, second = plate("KX 4821"), plate("STOP")
    paste(frame, first, 100, 300)
    paste(frame, second, 500, 100)
    plates = [(100, 300, 100 + first.shape[1], 300 + first.shape[0]),
              (500, 100, 500 + second.shape[1], 100 + second.shape[0])]
    steps = [
        {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "plates", "images": "$inputs.image",
         "model_id": "plates/1"},
        {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
         "predictions": "$steps.plates.predictions"},
        {"type": "roboflow_core/pp_ocr@v1", "name": "ocr", "images": "$steps.crops.crops"},
    ]

    outputs = run_workflow(PlateDetector(models, plates), steps, {
        "text": "$steps.ocr.result", "predictions": "$steps.ocr.predictions", "parents": "$steps.ocr.parent_id",
        "roots": "$steps.ocr.root_parent_id"}, frame)

    assert outputs["text"] == ["KX 4821", "STOP"]
    assert len(set(outputs["parents"])) == 2 and outputs["roots"] == ["image.[0]", "image.[0]"]
    for text, predictions, (x1, y1, x2, y2) in zip(outputs["text"], outputs["predictions"], plates, strict=True):
        # A crop is scaled up to 736 px high for the detector: "KX" and "4821" may be two boxes, one line.
        found = predictions["predictions"]
        assert " ".join(p["class"].strip() for p in found) == text
        for prediction in found:  # output in the frame's coordinates (the outputs' default), inside their crop
            assert prediction["parent_id"] == "image.[0]"
            assert x1 <= prediction["x"] - prediction["width"] / 2 < prediction["x"] + prediction["width"] / 2 <= x2
            assert y1 <= prediction["y"] - prediction["height"] / 2 < prediction["y"] + prediction["height"] / 2 <= y2


def test_the_blocks_models_are_loaded_once_per_process(models: ModelService) -> None:
    other = ModelService(ModelRepository(MODELS))
    engine, again = models.ocr("small", "small"), other.ocr("small", "none")
    assert engine.detector is again.detector and again.recognizer is None and again.orientation is None
    assert models.ocr("none", "small").recognizer is engine.recognizer


@pytest.mark.parametrize(("stage", "missing"), [("text_detection", "pp-ocr/det-medium"),
                                                ("text_recognition", "pp-ocr/rec-tiny")])
def test_a_size_whose_model_is_not_registered_fails_the_init_naming_it(models: ModelService, stage: str,
                                                                       missing: str) -> None:
    size = missing.rsplit("-", 1)[1]
    plan = compile_workflow({"version": "1.0", "inputs": [IMAGE], "steps": [ocr_step(**{stage: size})],
                             "outputs": [{"type": "JsonField", "name": "text", "selector": "$steps.ocr.result"}]})
    assert missing in model_tasks(plan)

    with pytest.raises(ModelNotFoundError) as refused:
        models.preload(model_tasks(plan))

    message = str(refused.value)
    assert f"model {missing!r} is not in the repository" in message
    assert f"python -m services.worker.models register-ocr {missing} <model.onnx>" in message


def test_the_small_models_are_registered_from_the_wheel_with_their_characters(tmp_path: Path) -> None:
    specs = build_ocr_models(tmp_path, DOWNLOADS)  # the wheel downloaded by the models fixture: no network

    assert [spec.model_id for spec in specs] == list(SMALL_MODELS)
    assert [spec.source_sha256 for spec in specs] == [sha256 for _, sha256 in SMALL_MODELS.values()]
    detector, recognizer, orientation = specs
    assert (detector.input_width, detector.input_height, detector.mean) == (0, 0, (0.485, 0.456, 0.406))
    assert len(recognizer.class_names) == 6624 and recognizer.class_names[-1] == " " and "K" in recognizer.class_names
    assert (orientation.class_names, orientation.input_width, orientation.input_height) == (("0", "180"), 192, 48)
    created = [spec.created for spec in specs]
    assert [spec.created for spec in build_ocr_models(tmp_path, DOWNLOADS)] == created  # cached: left alone


def test_a_model_of_the_wrong_kind_is_refused_at_registration(tmp_path: Path) -> None:
    orientation = (MODELS / "pp-ocr" / "cls-small" / "model.onnx").read_bytes()
    repo = ModelRepository(tmp_path)

    with pytest.raises(InvalidModelError, match=r"expected one output \[B, 1, H, W\]"):
        register_ocr_model(repo, "pp-ocr/det-medium", orientation, source="test")
    with pytest.raises(InvalidModelError, match="an OCR model id is pp-ocr/det-<size>"):
        register_ocr_model(repo, "ocr/medium", orientation, source="test")
    with pytest.raises(ModelNotFoundError):
        repo.resolve("pp-ocr/det-medium")


def test_the_predictions_stay_in_reading_order_whatever_their_confidence(engine: OcrEngine, frame: np.ndarray) -> None:
    for x, y, text in ((60, 60, "ROBOFLOW"), (420, 200, "EXIT 12"), (60, 200, "KX 4821"), (60, 400, "STOP")):
        paste(frame, plate(text), x, y)
    reading = ["ROBOFLOW", "KX 4821", "EXIT 12", "STOP"]

    outputs = ocr_outputs(workflow_image(frame), engine.read(frame))

    predictions = outputs["predictions"]
    assert list(predictions.confidence) != sorted(predictions.confidence, reverse=True)  # not by confidence
    assert list(predictions.data[CLASS_NAME]) == reading and set(predictions.data[PARENT_ID]) == {"image.[0]"}
    assert [p["class"] for p in serialise(predictions)["predictions"]] == reading
