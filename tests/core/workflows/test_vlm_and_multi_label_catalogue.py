"""vlm_as_classifier / vlm_as_detector (v1, v2) and roboflow_multi_label_classification_model (v1, v2, v3) through the
compiler: the reference manifests' names, defaults, choices and outputs, and what INIT refuses, by JSON path."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow

IMAGE = {"type": "WorkflowImage", "name": "image"}
ANSWER = {"type": "WorkflowParameter", "name": "answer"}


def workflow(*steps: dict[str, Any], outputs: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    return {"version": "1.0", "inputs": [IMAGE, ANSWER], "steps": list(steps),
            "outputs": [{"type": "JsonField", "name": name, "selector": selector} for name, selector in outputs]}


def refusal(definition: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition, parameters={"answer": "{}"})
    return str(caught.value)


def detector(version: int = 2, **fields: Any) -> dict[str, Any]:
    return {"type": f"roboflow_core/vlm_as_detector@v{version}", "name": "parsed", "image": "$inputs.image",
            "vlm_output": "$inputs.answer", "classes": ["dog"], "model_type": "google-gemini",
            "task_type": "object-detection", **fields}


def classifier(version: int = 2, **fields: Any) -> dict[str, Any]:
    return {"type": f"roboflow_core/vlm_as_classifier@v{version}", "name": "verdict", "image": "$inputs.image",
            "vlm_output": "$inputs.answer", "classes": ["ok", "alarm"], **fields}


def tagger(version: int = 2, **fields: Any) -> dict[str, Any]:
    return {"type": f"roboflow_core/roboflow_multi_label_classification_model@v{version}", "name": "tags",
            "images": "$inputs.image", "model_id": "demo-colours-present/1", **fields}


def test_outputs_and_their_kinds_per_version() -> None:
    def outputs(name: str) -> dict[str, tuple[str, ...]]:
        return CATALOGUE[name].outputs
    assert outputs("roboflow_core/vlm_as_classifier@v1") == {
        "error_status": ("boolean",), "predictions": ("classification_prediction",), "inference_id": ("string",)}
    assert outputs("roboflow_core/vlm_as_classifier@v2")["inference_id"] == ("inference_id",)
    assert outputs("roboflow_core/vlm_as_detector@v1") == {
        "error_status": ("boolean",), "predictions": ("object_detection_prediction",), "inference_id": ("string",)}
    assert outputs("roboflow_core/vlm_as_detector@v2")["inference_id"] == ("inference_id",)
    assert outputs("RoboflowMultiLabelClassificationModel") == {
        "predictions": ("classification_prediction",), "inference_id": ("string",)}
    legacy = CATALOGUE["MultiLabelClassificationModel"]
    assert legacy.name == "roboflow_core/roboflow_multi_label_classification_model@v1"
    for version in (2, 3):
        assert outputs(f"roboflow_core/roboflow_multi_label_classification_model@v{version}") == {
            "predictions": ("classification_prediction",), "inference_id": ("inference_id",),
            "model_id": ("roboflow_model_id",)}


def test_defaults() -> None:
    plan = compile_workflow(workflow(tagger(1), tagger(3, name="tags3"),
                                     detector(1, name="florence", model_type="florence-2", classes=None)),
                            parameters={"answer": "{}"})
    assert plan.step("tags").params == {"images": "$inputs.image", "model_id": "demo-colours-present/1",
                                        "confidence": 0.4, "disable_active_learning": True,
                                        "active_learning_target_dataset": None}
    assert plan.step("tags3").params["confidence_mode"] == "best"
    assert plan.step("tags3").params["custom_confidence"] == 0.4
    assert plan.step("florence").params["classes"] is None
    assert plan.step("florence").params["vlm_output"] == "{}"  # the parameter's value


@pytest.mark.parametrize(("version", "model_type", "task_type"), [
    (1, "google-gemini", "object-detection"), (1, "anthropic-claude", "object-detection"),
    (1, "florence-2", "ocr-with-text-detection"), (2, "openai", "object-detection"), (2, "qwen", "object-detection"),
    (2, "muse", "object-detection"), (2, "spacexai", "object-detection"), (2, "florence-2", "region-proposal"),
])
def test_the_pairs_each_version_parses(version: int, model_type: str, task_type: str) -> None:
    compile_workflow(workflow(detector(version, model_type=model_type, task_type=task_type)),
                     parameters={"answer": "{}"})


@pytest.mark.parametrize(("step", "reason"), [
    (detector(1, model_type="openai"),
     "field 'workflow.steps[0].model_type': 'openai' is not one of 'google-gemini', 'anthropic-claude', 'florence-2'"),
    (detector(task_type="region-proposal"),
     "field 'workflow.steps[0].task_type': could not parse result of task 'region-proposal' for model "
     "'google-gemini'"),
    (detector(task_type="segmentation"), "field 'workflow.steps[0].task_type': 'segmentation' is not one of"),
    (detector(classes=None),
     "field 'workflow.steps[0].classes': must pass the list of classes for every model type except florence-2"),
    (detector(classes=["dog", 1]), "field 'workflow.steps[0].classes': expected a list of strings or null"),
    (detector(model_type="$inputs.answer"), "field 'workflow.steps[0].model_type': '{}' is not one of 'openai'"),
    (classifier(classes="dog"), "field 'workflow.steps[0].classes': expected a list of class names (strings)"),
    (classifier(classes=None), "field 'workflow.steps[0].classes' is required by roboflow_core/vlm_as_classifier"),
    (classifier(vlm_output=["not", "text"]), "field 'workflow.steps[0].vlm_output': expected a string"),
    ({**classifier(), "classes": None, "vlm_output": "$inputs.image"}, "field 'workflow.steps[0].vlm_output'"),
    (tagger(3, confidence_mode="F1"), "field 'workflow.steps[0].confidence_mode': 'F1' is not one of 'best', "
                                      "'default', 'custom'"),
    (tagger(1, confidence=1.5), "field 'workflow.steps[0].confidence': expected a number between 0 and 1"),
])
def test_init_refuses(step: dict[str, Any], reason: str) -> None:
    assert reason in refusal(workflow(step))


def test_a_parsed_classification_feeds_what_a_classifier_feeds_and_detections_what_a_detector_feeds() -> None:
    plan = compile_workflow(workflow(
        classifier(), detector(),
        {"type": "roboflow_core/classification_label_visualization@v1", "name": "label", "image": "$inputs.image",
         "predictions": "$steps.verdict.predictions"},
        {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.image",
         "detections": "$steps.parsed.predictions"},
        tagger(), {"type": "roboflow_core/detections_classes_replacement@v1", "name": "relabelled",
                   "object_detection_predictions": "$steps.parsed.predictions",
                   "classification_predictions": "$steps.tags.predictions"},
    ), parameters={"answer": "{}"})
    assert [step.name for step in plan.steps][-1] in ("relabelled", "tracker", "label")
    assert "gives classification_prediction" in refusal(workflow(
        classifier(), {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.image",
                       "detections": "$steps.verdict.predictions"}))
