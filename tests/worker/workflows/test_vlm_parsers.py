"""vlm_as_classifier@v1/v2 and vlm_as_detector@v1/v2 on literal VLM answers (the formats the reference's parsers
read, per model type and task type), through the compiler and the blocks; then through the executor into the
blocks that take a classifier's or a detector's predictions."""

import hashlib
from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows import values
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import Classification, WorkflowImage
from tests.worker.workflows.query_values import environment, frame

IMAGE = {"type": "WorkflowImage", "name": "image"}
FRAME = frame()  # black, 768 x 576
W, H = 768, 576


def block(step_type: str, **fields: Any) -> Any:
    definition = {"version": "1.0", "inputs": [IMAGE], "outputs": [],
                  "steps": [{"type": step_type, "name": "vlm", "image": "$inputs.image", "vlm_output": "{}",
                             **fields}]}
    step = compile_workflow(definition).step("vlm")
    return REGISTRY[step.type](step, environment()), {k: v for k, v in step.params.items() if k != "image"}


def classify(answer: str, classes: list[str], version: int = 2, image: WorkflowImage = FRAME) -> dict[str, Any]:
    step, params = block(f"roboflow_core/vlm_as_classifier@v{version}", classes=classes)
    return step.run(image=image, **{**params, "vlm_output": answer})  # type: ignore[no-any-return]


def detect(answer: str, model_type: str, task_type: str = "object-detection", classes: list[str] | None = None,
           version: int = 2, image: WorkflowImage = FRAME) -> dict[str, Any]:
    fields: dict[str, Any] = {"model_type": model_type, "task_type": task_type}
    if classes is not None:
        fields["classes"] = classes
    step, params = block(f"roboflow_core/vlm_as_detector@v{version}", **fields)
    return step.run(image=image, **{**params, "vlm_output": answer})  # type: ignore[no-any-return]


def boxes(result: dict[str, Any]) -> list[tuple[list[float], str, int, float]]:
    detections = result["predictions"]
    assert isinstance(detections, sv.Detections) and result["error_status"] is False
    return [(xyxy, str(name), int(class_id), round(float(confidence), 4)) for xyxy, name, class_id, confidence in zip(
        detections.xyxy.tolist(), detections.data[values.CLASS_NAME], detections.class_id, detections.confidence,
        strict=True)]


# ---------------------------------------------------------------------------- vlm_as_classifier


@pytest.mark.parametrize("version", [1, 2])
def test_a_single_label_answer_in_a_markdown_block(version: int) -> None:
    result = classify('Sure!\n```json\n{"class_name": "cat", "confidence": 0.92}\n```\n```json {"class_name": "dog",'
                      ' "confidence": 1}```', ["dog", "cat", "bird"], version)
    assert result["error_status"] is False
    prediction = result["predictions"]
    assert isinstance(prediction, Classification) and result["inference_id"] == prediction.inference_id
    serialised = serialise(prediction)
    assert serialised["top"] == "cat" and serialised["confidence"] == pytest.approx(0.92)
    assert sorted((p["class"], p["class_id"], round(p["confidence"], 4)) for p in serialised["predictions"]) == [
        ("bird", 2, 0.0), ("cat", 1, 0.92), ("dog", 0, 0.0)]
    assert serialised["parent_id"] == "image.[0]" and serialised["image"] == {"width": W, "height": H}


def test_a_class_outside_the_list_gets_id_minus_one_and_confidences_are_clipped() -> None:
    prediction = classify('{"class_name": "fox", "confidence": 1.7}', ["dog", "cat"])["predictions"]
    assert [(p["class"], p["class_id"], p["confidence"]) for p in serialise(prediction)["predictions"]] == [
        ("fox", -1, 1.0), ("dog", 0, 0.0), ("cat", 1, 0.0)]
    zero = classify('{"class_name": "cat", "confidence": -3}', ["dog", "cat"])["predictions"]
    assert zero.top == "cat" and zero.top_confidence == 0.0  # the answer's class, not the first of a tie


def test_a_multi_label_answer_keeps_each_classes_highest_confidence() -> None:
    answer = ('{"predicted_classes": [{"class": "cat", "confidence": 0.4}, {"class": "fox", "confidence": 0.7},'
              ' {"class": "cat", "confidence": 0.8}]}')
    prediction = classify(answer, ["dog", "cat"])["predictions"]
    serialised = serialise(prediction)
    assert serialised["predicted_classes"] == ["cat", "fox"]
    assert serialised["predictions"] == {"dog": {"confidence": 0.0, "class_id": 0},
                                         "cat": {"confidence": pytest.approx(0.8), "class_id": 1},
                                         "fox": {"confidence": pytest.approx(0.7), "class_id": -1}}
    assert "top" not in serialised and prediction.top == "cat"


@pytest.mark.parametrize("answer", [
    "I think it is a cat.", '{"label": "cat"}', '{"class_name": "cat"}', '["class_name", "confidence"]',
    '{"class_name": "cat", "confidence": "high"}', '{"predicted_classes": [{"class": "cat"}]}',
    '{"predicted_classes": "cat"}', '{"class_name": ["cat"], "confidence": 0.5}',
])
def test_an_unreadable_classification_answer_sets_error_status(answer: str) -> None:
    result = classify(answer, ["cat"])
    assert result["error_status"] is True and result["predictions"] is None
    assert isinstance(result["inference_id"], str) and len(result["inference_id"]) == 36


def test_vlm_output_must_be_text() -> None:
    with pytest.raises(ValueError, match="vlm_output must be a VLM's text answer"):
        classify({"class_name": "cat"}, ["cat"])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- vlm_as_detector

DETECTIONS = ('```json\n{"detections": [{"x_min": 0.1, "y_min": 0.25, "x_max": 0.5, "y_max": 0.75, '
              '"class_name": "dog", "confidence": 0.9}, {"x_min": 0.5, "y_min": 0.5, "x_max": 0.6, "y_max": 0.6, '
              '"class_name": "cat", "confidence": 0.95}, {"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1, '
              '"class_name": "horse"}]}\n```')


@pytest.mark.parametrize(("model_type", "version"), [("google-gemini", 1), ("anthropic-claude", 1),
                                                     ("google-gemini", 2), ("anthropic-claude", 2), ("openai", 2)])
def test_normalised_corners_scale_to_the_image(model_type: str, version: int) -> None:
    result = detect(DETECTIONS, model_type, classes=["cat", "dog"], version=version)
    assert boxes(result) == [  # in the answer's order; rounded to pixels; confidence 1 when not given
        ([77.0, 144.0, 384.0, 432.0], "dog", 1, 0.9),
        ([384.0, 288.0, 461.0, 346.0], "cat", 0, 0.95),
        ([0.0, 0.0, 768.0, 576.0], "horse", -1, 1.0),
    ]
    detections = result["predictions"]
    assert set(detections.data[values.INFERENCE_ID]) == {result["inference_id"]}
    assert set(detections.data[values.PARENT_ID]) == {"image.[0]"}
    assert serialise(detections)["image"] == {"width": W, "height": H}


def test_gemini_box_2d_is_y_first_on_a_thousand() -> None:
    answer = '[{"box_2d": [250, 100, 750, 500], "label": "dog", "confidence": 0.5}]'
    assert boxes(detect(answer, "google-gemini", classes=["dog"])) == [([77.0, 144.0, 384.0, 432.0], "dog", 0, 0.5)]
    # Claude v2 reads only the normalised corners under "detections": this is its error.
    assert detect(answer, "anthropic-claude", classes=["dog"])["error_status"] is True
    assert detect(answer, "anthropic-claude", classes=["dog"], version=1)["error_status"] is False


def test_openai_box_2d_is_in_pixels_of_the_image_as_sent() -> None:
    small = detect('[{"box_2d": [10, 20, 900, 30], "class": "cup"}]', "openai", classes=["cup"])
    assert boxes(small) == [([10.0, 20.0, 768.0, 30.0], "cup", 0, 1.0)]  # clipped to the image
    big = frame(np.zeros((1000, 4096, 3), np.uint8))  # sent as 2048 x 500
    wrapped = '{"detections": [{"box_2d": [1024, 250, 2048, 500], "class_name": "cup"}]}'
    assert boxes(detect(wrapped, "openai", classes=["cup"], image=big)) == [
        ([2048.0, 500.0, 4096.0, 1000.0], "cup", 0, 1.0)]


def test_spacexai_qwen_and_muse_scales() -> None:
    assert boxes(detect('[{"box_2d": [10, 50, 50, 150], "label": "dog", "confidence": 0.3}]', "spacexai",
                        classes=["dog"])) == [([77.0, 288.0, 384.0, 576.0], "dog", 0, 0.3)]
    qwen = ('{"detections": [{"bbox_2d": [100, 250, 500, 750], "description": "dog"}, {"box_2d": [1, 2]}, 7,'
            ' {"box_2d": [0, 0, 1000, 1000], "confidence": 0.2}]}')
    assert boxes(detect(qwen, "qwen", classes=["dog"])) == [([77.0, 144.0, 384.0, 432.0], "dog", 0, 1.0),
                                                             ([0.0, 0.0, 768.0, 576.0], "unknown", -1, 1.0)]
    loose = ('Found: {"x_min": 100, "y_min": 250, "x_max": 500, "y_max": 750, "label": "dog"}, '
             '{"x_min": 0, "y_min": 0, "x_max": 2000, "y_max": true, "label": "cat"}, {"note": 1}')
    assert boxes(detect(loose, "muse", classes=["dog"])) == [([77.0, 144.0, 384.0, 432.0], "dog", 0, 1.0)]


def test_florence_2_tasks() -> None:
    od = '{"bboxes": [[10.5, 20, 30, 40], [1, 2, 3, 4]], "labels": ["car", "person"]}'
    md5 = int(hashlib.md5(b"car").hexdigest()[:9], 16) % 10000
    assert boxes(detect(od, "florence-2"))[0] == ([10.5, 20.0, 30.0, 40.0], "car", md5, 1.0)  # not rounded
    vocabulary = '{"bboxes": [[1, 2, 3, 4]], "bboxes_labels": ["car"]}'
    assert boxes(detect(vocabulary, "florence-2", "open-vocabulary-object-detection", ["bus", "car"])) == [
        ([1.0, 2.0, 3.0, 4.0], "car", 1, 1.0)]
    assert detect(vocabulary, "florence-2", "open-vocabulary-object-detection")["error_status"] is True  # no classes
    assert boxes(detect('{"bboxes": [[1, 2, 3, 4]], "labels": [""]}', "florence-2", "region-proposal")) == [
        ([1.0, 2.0, 3.0, 4.0], "roi", 0, 1.0)]
    ocr = '{"quad_boxes": [[10, 20, 50, 18, 52, 40, 12, 42]], "labels": ["</s>EXIT"]}'
    assert boxes(detect(ocr, "florence-2", "ocr-with-text-detection")) == [
        ([10.0, 18.0, 52.0, 42.0], "</s>EXIT", 0, 1.0)]
    assert boxes(detect('{"bboxes": [[1, 2, 3, 4]], "labels": ["a red car"]}', "florence-2",
                        "object-detection-and-caption", version=1)) == [([1.0, 2.0, 3.0, 4.0], "a red car", 0, 1.0)]


def test_an_empty_answer_is_no_detections_with_the_image_size() -> None:
    result = detect('{"detections": []}', "anthropic-claude", classes=["dog"])
    assert result["error_status"] is False and len(result["predictions"]) == 0
    assert serialise(result["predictions"]) == {"image": {"width": W, "height": H}, "predictions": []}


@pytest.mark.parametrize(("answer", "model_type"), [
    ("no boxes here", "google-gemini"), ("42", "google-gemini"), ('{"boxes": []}', "google-gemini"),
    ('[{"x_min": 0.1}]', "google-gemini"), ('{"detections": [{"box_2d": [1, 2, 3, 4]}]}', "anthropic-claude"),
    ('{"bboxes": [[1, 2, 3, 4]], "labels": []}', "florence-2"), ('{"detections": {}}', "qwen"),
    ('[{"box_2d": [1, 2, 3]}]', "spacexai"), ('{"detections": [{"x_min": "a", "y_min": 0, "x_max": 1, '
                                                '"y_max": 1, "class_name": "x"}]}', "openai"),
])
def test_an_unreadable_detection_answer_sets_error_status(answer: str, model_type: str) -> None:
    result = detect(answer, model_type, classes=None if model_type == "florence-2" else ["x"])
    assert result["error_status"] is True and result["predictions"] is None


def test_crops_keep_their_lineage() -> None:
    crop = FRAME.crop(100, 50, 300, 250, crop_id="detection-7")
    detections = detect('{"detections": [{"x_min": 0, "y_min": 0, "x_max": 0.5, "y_max": 0.5, "class_name": "x"}]}',
                        "anthropic-claude", classes=["x"], image=crop)["predictions"]
    assert detections.xyxy.tolist() == [[0.0, 0.0, 100.0, 100.0]]
    assert detections.data[values.PARENT_ID].tolist() == ["detection-7"]
    assert values.to_root_coordinates(detections).xyxy.tolist() == [[100.0, 50.0, 200.0, 150.0]]


# ---------------------------------------------------------------------------- into other blocks


def test_parsed_answers_feed_filters_drawing_properties_and_class_replacement() -> None:
    answer = ('{"detections": [{"x_min": 0.1, "y_min": 0.1, "x_max": 0.3, "y_max": 0.5, "class_name": "dog", '
              '"confidence": 0.9}, {"x_min": 0.5, "y_min": 0.5, "x_max": 0.9, "y_max": 0.9, "class_name": "cat", '
              '"confidence": 0.3}]}')
    definition = {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "answer"},
                   {"type": "WorkflowParameter", "name": "verdict"}],
        "steps": [
            {"type": "roboflow_core/vlm_as_detector@v2", "name": "parsed", "image": "$inputs.image",
             "vlm_output": "$inputs.answer", "classes": ["dog", "cat"], "model_type": "google-gemini",
             "task_type": "object-detection"},
            {"type": "roboflow_core/detections_filter@v1", "name": "sure", "predictions": "$steps.parsed.predictions",
             "operations": [{"type": "DetectionsFilter", "filter_operation": {
                 "type": "StatementGroup", "statements": [{"type": "BinaryStatement",
                  "left_operand": {"type": "DynamicOperand", "operations": [
                      {"type": "ExtractDetectionProperty", "property_name": "confidence"}]},
                  "comparator": {"type": "(Number) >="},
                  "right_operand": {"type": "StaticOperand", "value": 0.5}}]}}]},
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.sure.predictions", "color_palette": "CUSTOM", "custom_colors": ["#FFFFFF"]},
            {"type": "roboflow_core/vlm_as_classifier@v2", "name": "verdict", "image": "$inputs.image",
             "vlm_output": "$inputs.verdict", "classes": ["ok", "alarm"]},
            {"type": "roboflow_core/property_definition@v1", "name": "top", "data": "$steps.verdict.predictions",
             "operations": [{"type": "ClassificationPropertyExtract", "property_name": "top_class"}]},
            {"type": "roboflow_core/detections_classes_replacement@v1", "name": "relabelled",
             "object_detection_predictions": "$steps.sure.predictions",
             "classification_predictions": "$steps.verdict.predictions"},
        ],
        "outputs": [{"type": "JsonField", "name": name, "selector": selector} for name, selector in (
            ("sure", "$steps.sure.predictions"), ("annotated", "$steps.boxes.image"), ("top", "$steps.top.output"),
            ("error", "$steps.verdict.error_status"), ("relabelled", "$steps.relabelled.predictions"))],
    }
    plan = compile_workflow(definition, parameters={"answer": answer,
                                                    "verdict": '{"class_name": "alarm", "confidence": 0.8}'})
    outputs, errors = WorkflowExecutor(plan, REGISTRY, environment()).run(frame())
    assert errors == []
    [dog] = outputs["sure"]["predictions"]
    assert (dog["class"], dog["class_id"], dog["x"], dog["y"], dog["width"], dog["height"]) == (
        "dog", 0, 153.5, 173.0, 153.0, 230.0)  # (77, 58)-(230, 288): 0.1 x 768 = 76.8 rounds to 77
    assert outputs["top"] == "alarm" and outputs["error"] is False
    assert outputs["relabelled"]["predictions"] == []  # the whole-image verdict names no detection
    drawn = outputs["annotated"].pixels
    assert drawn[58:60, 77:230].min() > 200 and drawn[500, 700].max() == 0  # the dog's top edge, not the cat


def test_an_unreadable_answer_skips_the_steps_it_feeds() -> None:
    definition = {
        "version": "1.0", "inputs": [IMAGE],
        "steps": [{"type": "roboflow_core/vlm_as_detector@v1", "name": "parsed", "image": "$inputs.image",
                   "vlm_output": "sorry, I cannot see anything", "classes": ["dog"], "model_type": "anthropic-claude",
                   "task_type": "object-detection"},
                  {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
                   "predictions": "$steps.parsed.predictions"}],
        "outputs": [{"type": "JsonField", "name": "error", "selector": "$steps.parsed.error_status"},
                    {"type": "JsonField", "name": "annotated", "selector": "$steps.boxes.image"}],
    }
    outputs, errors = WorkflowExecutor(compile_workflow(definition), REGISTRY, environment()).run(frame())
    assert errors == [] and outputs == {"error": True, "annotated": None}
