"""The OCR blocks' catalogue entries (pp_ocr@v1, ocr_model@v1), through the compiler: names, defaults, the stage sizes'
choices and the rule that one stage must run, checked at INIT with their JSON path; the outputs and where they go;
the models each size names (the worker refuses a size whose model is not registered: tests/worker/workflows/
test_ocr_models.py and tests/e2e/test_workflows.py)."""

from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow
from services.core.workflows.ocr import OCR_MODEL, PP_OCR, ocr_model_ids, ocr_stages
from services.core.workflows.plan import WorkflowPlan

WHERE = "processing_configuration.workflow_specification"


def definition(*steps: dict[str, Any], inputs: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, *inputs],
        "steps": list(steps),
        "outputs": [{"type": "JsonField", "name": "text", "selector": f"$steps.{steps[0]['name']}.result"}],
    }


def ocr(**fields: Any) -> dict[str, Any]:
    return {"type": PP_OCR, "name": "ocr", "images": "$inputs.image", **fields}


def refusal(*steps: dict[str, Any], inputs: tuple[dict[str, Any], ...] = ()) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition(*steps, inputs=inputs), WHERE)
    return str(caught.value)


def test_the_stage_sizes_default_to_small() -> None:
    [step] = compile_workflow(definition(ocr())).steps
    assert (step.type, step.params) == (PP_OCR, {"images": "$inputs.image", "text_detection": "small",
                                                 "text_recognition": "small"})
    assert ocr_stages(step.type, step.params) == ("small", "small")
    assert [field.default for field in CATALOGUE[PP_OCR].fields[1:]] == ["small", "small"]


def test_ocr_model_is_also_named_ocrmodel_and_has_only_images() -> None:
    [step] = compile_workflow(definition({"type": "OCRModel", "name": "doctr", "image": "$inputs.image"})).steps
    assert (step.type, step.params) == (OCR_MODEL, {"images": "$inputs.image"})
    assert ocr_stages(step.type, step.params) == ("small", "small")
    assert f"'{WHERE}.steps[0].images'" in refusal({"type": OCR_MODEL, "name": "doctr"})


@pytest.mark.parametrize("stage", ["text_detection", "text_recognition"])
def test_a_size_outside_the_choices_is_refused_with_its_path(stage: str) -> None:
    message = refusal(ocr(**{stage: "large"}))
    assert message == (f"field '{WHERE}.steps[0].{stage}': 'large' is not one of 'none', 'tiny', 'small', 'medium'")
    assert f"'{WHERE}.steps[0].{stage}'" in refusal(ocr(**{stage: 1}))


def test_detection_and_recognition_cannot_both_be_none() -> None:
    message = refusal(ocr(text_detection="none", text_recognition="none"))
    assert message.startswith(f"field '{WHERE}.steps[0].text_detection': PP-OCR requires at least one of text "
                              "detection or text recognition")


def test_a_workflow_parameter_sets_a_size_and_is_checked_as_a_literal() -> None:
    size = ({"type": "WorkflowParameter", "name": "size", "default_value": "none"},)
    [step] = compile_workflow(definition(ocr(text_detection="$inputs.size"), inputs=size)).steps
    assert step.params["text_detection"] == "none"
    assert "requires at least one of" in refusal(ocr(text_detection="$inputs.size", text_recognition="none"),
                                                 inputs=size)


@pytest.mark.parametrize(("detection", "recognition", "models"), [
    ("small", "small", {"detection": "pp-ocr/det-small", "recognition": "pp-ocr/rec-small",
                        "orientation": "pp-ocr/cls-small"}),
    ("none", "tiny", {"recognition": "pp-ocr/rec-tiny", "orientation": "pp-ocr/cls-small"}),
    ("medium", "none", {"detection": "pp-ocr/det-medium"}),
])
def test_each_size_names_its_own_model(detection: str, recognition: str, models: dict[str, str]) -> None:
    # tiny and medium compile (the manifest's choices); the worker refuses them at INIT unless their models are
    # registered, naming the missing model id: it never runs another size instead.
    [step] = compile_workflow(definition(ocr(text_detection=detection, text_recognition=recognition))).steps
    assert ocr_model_ids(*ocr_stages(step.type, step.params)) == models


def test_the_outputs_and_where_they_go() -> None:
    assert CATALOGUE[PP_OCR].outputs == CATALOGUE[OCR_MODEL].outputs == {
        "result": (kinds.STRING,), "predictions": (kinds.OBJECT_DETECTION,), "parent_id": (kinds.PARENT_ID,),
        "root_parent_id": (kinds.PARENT_ID,), "prediction_type": (kinds.PREDICTION_TYPE,)}
    plan: WorkflowPlan = compile_workflow(definition(
        ocr(),
        {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
         "predictions": "$steps.ocr.predictions"},
        {"type": "roboflow_core/label_visualization@v1", "name": "labels", "image": "$steps.boxes.image",
         "predictions": "$steps.ocr.predictions", "text": "Class"},
        {"type": "roboflow_core/string_template@v1", "name": "message", "template": "Plate {plate}",
         "data": {"plate": "$steps.ocr.result"}},
        {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
         "predictions": "$steps.ocr.predictions"},
        {"type": PP_OCR, "name": "again", "images": "$steps.crops.crops", "text_detection": "none"},
    ))
    assert plan.step("again").dimensionality == 1
    message = refusal(ocr(), {"type": PP_OCR, "name": "again", "images": "$steps.ocr.result"})
    assert f"'{WHERE}.steps[1].images'" in message and "string" in message
