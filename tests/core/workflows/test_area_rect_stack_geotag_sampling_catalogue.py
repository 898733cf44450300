"""mask_area_measurement, bounding_rect, image_stack, geotag_detection, identify_changes and identify_outliers
through the compiler: the manifests' fields, defaults, bounds and kinds, and the reference's integration definitions
that use them, compiled as written (verbatim in definitions/mask_area_measurement/, from
roboflow/inference/tests/workflows/integration_tests/execution/control_flow_with_side_effects/workflow_definitions;
and below, from the reference's test modules)."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.compiler import compile_workflow

DETECT = {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect", "images": "$inputs.image",
          "model_id": "yolov3-tiny/coco-416"}
FILTER = {"type": "roboflow_core/detections_filter@v1", "name": "kept", "predictions": "$steps.detect.predictions",
          "operations": []}
COLOUR = {"type": "roboflow_core/dominant_color@v1", "name": "colour", "image": "$inputs.image"}
# Any output may feed an embedding through property_definition (a wildcard): no embedding model here yet.
AS_EMBEDDING = {"type": "roboflow_core/property_definition@v1", "name": "vector", "data": "$steps.colour.rgb_color",
                "operations": []}
MASK_AREA_DEFINITIONS = sorted((Path(__file__).parent / "definitions" / "mask_area_measurement").glob("*.json"))
SMTP = {"email_provider": "Custom SMTP", "sender_email": "alerts@example.com", "smtp_server": "smtp.example.com",
        "sender_email_password": "pw"}

# roboflow/inference/tests/workflows/integration_tests/execution/test_workflow_with_image_stack.py, as written.
IMAGE_STACK_WORKFLOW = {
    "version": "1.0",
    "inputs": [
        {"type": "InferenceImage", "name": "image"},
        {"type": "InferenceParameter", "name": "stack_size", "default_value": 3},
        {"type": "InferenceParameter", "name": "clear", "default_value": False},
    ],
    "steps": [
        {
            "type": "roboflow_core/image_stack@v1",
            "name": "image_stack",
            "image": "$inputs.image",
            "stack_size": "$inputs.stack_size",
            "clear": "$inputs.clear",
        }
    ],
    "outputs": [
        {"type": "JsonField", "name": "frames", "selector": "$steps.image_stack.frames"},
        {"type": "JsonField", "name": "frames_count", "selector": "$steps.image_stack.frames_count"},
    ],
}

# roboflow/inference/tests/workflows/integration_tests/execution/test_workflow_with_bounding_rectangle.py, as
# written: its instance segmentation model is not one this manager runs.
BOUNDING_RECTANGLE_WORKFLOW = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "image"}],
    "steps": [
        {"type": "InstanceSegmentationModel", "name": "detection", "image": "$inputs.image",
         "model_id": "yolov8n-seg-640"},
        {"type": "roboflow_core/bounding_rect@v1", "name": "bounding_rect",
         "predictions": "$steps.detection.predictions"},
    ],
    "outputs": [{"type": "JsonField", "name": "result", "selector": "$steps.bounding_rect.detections_with_rect"}],
}


def workflow(*steps: dict[str, Any], outputs: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"},
                       {"type": "WorkflowParameter", "name": "latitude", "default_value": 47.4}],
            "steps": list(steps),
            "outputs": [{"type": "JsonField", "name": selector.replace(".", "_"), "selector": f"$steps.{selector}"}
                        for selector in outputs]}


def params(step: dict[str, Any], *before: dict[str, Any], outputs: tuple[str, ...] = ()) -> dict[str, Any]:
    plan = compile_workflow(workflow(*before, step, outputs=outputs))
    compiled = plan.step(step["name"])
    return {"type": compiled.type, **compiled.params}


def refusal(step: dict[str, Any], *before: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(workflow(*before, step))
    return str(caught.value)


# ---------------------------------------------------------------------------------------- mask_area_measurement

AREA = {"type": "roboflow_core/mask_area_measurement@v1", "name": "area", "predictions": "$steps.detect.predictions"}


def test_mask_area_measurement_defaults_kinds_and_checks() -> None:
    spec = CATALOGUE["roboflow_core/mask_area_measurement@v1"]
    assert spec.family == "classical_cv"
    assert spec.outputs == {"predictions": (kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION)}
    assert params(AREA, DETECT, outputs=("area.predictions",)) == {
        "type": "roboflow_core/mask_area_measurement@v1", "predictions": "$steps.detect.predictions",
        "pixels_per_unit": 1.0}
    assert params({**AREA, "pixels_per_unit": 130}, DETECT)["pixels_per_unit"] == 130
    assert "expected a number, got 'cm'" in refusal({**AREA, "pixels_per_unit": "cm"}, DETECT)
    assert "gives image, but the field takes" in refusal({**AREA, "predictions": "$inputs.image"})
    # Its output goes wherever detections do: drawn, filtered, measured again.
    assert params({"type": "roboflow_core/bounding_box_visualization@v1", "name": "draw", "image": "$inputs.image",
                   "predictions": "$steps.area.predictions"}, DETECT, AREA)["predictions"] == "$steps.area.predictions"


@pytest.mark.parametrize("path", MASK_AREA_DEFINITIONS, ids=lambda path: path.stem)
def test_the_reference_s_area_size_definitions_compile_but_for_their_managed_email_provider(path: Path) -> None:
    written = json.loads(path.read_text())
    [index] = [i for i, step in enumerate(written["steps"]) if step["type"] == "roboflow_core/email_notification@v2"]
    with pytest.raises(InvalidPayloadError, match=rf"^field 'workflow\.steps\[{index}\]\.email_provider': "):
        compile_workflow(written)

    custom = copy.deepcopy(written)
    custom["steps"][index].update(SMTP)
    plan = compile_workflow(custom)
    [area] = [step for step in written["steps"] if step["type"] == "roboflow_core/mask_area_measurement@v1"]
    assert dict(plan.step("areas").params) == {"predictions": "$steps.detection.predictions", "pixels_per_unit": 1.0}
    assert plan.step("areas").type == area["type"]
    assert plan.step("email_notification").params["message_parameters"]["area_converted"] == "$steps.areas.predictions"


def test_two_area_size_definitions_are_copied() -> None:
    assert [path.stem for path in MASK_AREA_DEFINITIONS] == [
        "sliced_image_with_email_message_params_and_area_size_step",
        "sliced_image_without_email_message_params_and_area_size_step"]


# ---------------------------------------------------------------------------------------------- bounding_rect

RECT = {"type": "roboflow_core/bounding_rect@v1", "name": "rect", "predictions": "$steps.kept.predictions"}


def test_bounding_rect_takes_segmentations_only() -> None:
    spec = CATALOGUE["roboflow_core/bounding_rect@v1"]
    assert (spec.family, spec.outputs) == ("transformations",
                                           {"detections_with_rect": (kinds.INSTANCE_SEGMENTATION,)})
    # A filter's output may be a segmentation (the block checks for masks on each frame); a detector's is not.
    assert params(RECT, DETECT, FILTER, outputs=("rect.detections_with_rect",)) == {
        "type": "roboflow_core/bounding_rect@v1", "predictions": "$steps.kept.predictions"}
    assert "gives object_detection_prediction, but the field takes instance_segmentation_prediction" in refusal(
        {**RECT, "predictions": "$steps.detect.predictions"}, DETECT)


def test_the_reference_s_bounding_rectangle_definition_is_refused_only_for_its_segmentation_model() -> None:
    with pytest.raises(InvalidPayloadError, match=r"unsupported workflow block type 'InstanceSegmentationModel' "
                                                  r"at 'workflow\.steps\[0\]\.type'"):
        compile_workflow(BOUNDING_RECTANGLE_WORKFLOW)


# ------------------------------------------------------------------------------------------------ image_stack

STACK = {"type": "roboflow_core/image_stack@v1", "name": "stack", "image": "$inputs.image"}


def test_the_reference_s_image_stack_definition_compiles_as_written() -> None:
    plan = compile_workflow(IMAGE_STACK_WORKFLOW)  # its parameters' defaults, checked as literals
    assert dict(plan.step("image_stack").params) == {
        "image": "$inputs.image", "stack_size": 3, "resolution_width": 1920, "resolution_height": 1080,
        "clear": False}
    assert [output.name for output in plan.outputs] == ["frames", "frames_count"]
    given = compile_workflow(IMAGE_STACK_WORKFLOW, parameters={"stack_size": 5, "clear": True})
    assert (given.step("image_stack").params["stack_size"], given.step("image_stack").params["clear"]) == (5, True)
    with pytest.raises(InvalidPayloadError, match=r"stack_size': expected an integer between 1 and 64, got 65"):
        compile_workflow(IMAGE_STACK_WORKFLOW, parameters={"stack_size": 65})


def test_image_stack_defaults_and_bounds() -> None:
    spec = CATALOGUE["roboflow_core/image_stack@v1"]
    assert spec.outputs == {"frames": (kinds.LIST_OF_VALUES,), "frames_count": (kinds.INTEGER,)}
    assert params(STACK) == {"type": "roboflow_core/image_stack@v1", "image": "$inputs.image", "stack_size": 10,
                             "resolution_width": 1920, "resolution_height": 1080, "clear": False}
    assert params({**STACK, "stack_size": 64, "resolution_width": 64, "resolution_height": 64})["stack_size"] == 64
    assert "expected an integer between 1 and 64, got 0" in refusal({**STACK, "stack_size": 0})
    assert "expected an integer between 1 and 64, got 65" in refusal({**STACK, "stack_size": 65})
    assert "expected an integer between 64 and 1920, got 1921" in refusal({**STACK, "resolution_width": 1921})
    assert "expected an integer between 64 and 1080, got 63" in refusal({**STACK, "resolution_height": 63})
    assert "expected true or false" in refusal({**STACK, "clear": "yes"})


# ------------------------------------------------------------------------------------------- geotag_detection

GEOTAG = {"type": "roboflow_core/geotag_detection@v1", "name": "geo", "image": "$inputs.image",
          "predictions": "$steps.detect.predictions", "latitude": "$inputs.latitude", "longitude": -105.279125,
          "altitude": 69.0}


def test_geotag_detection_defaults_and_required_camera() -> None:
    spec = CATALOGUE["roboflow_core/geotag_detection@v1"]
    assert (spec.family, spec.outputs) == ("transformations", {"geo_detections": (kinds.LIST_OF_VALUES,),
                                                               "geojson": (kinds.DICTIONARY,)})
    assert params(GEOTAG, DETECT, outputs=("geo.geo_detections", "geo.geojson")) == {
        "type": "roboflow_core/geotag_detection@v1", "image": "$inputs.image",
        "predictions": "$steps.detect.predictions", "latitude": 47.4, "longitude": -105.279125,
        "altitude": 69.0, "horizontal_fov": 73.7, "heading": 0.0}
    assert params({**GEOTAG, "heading": "$steps.heading.output"}, DETECT,
                  {"type": "roboflow_core/property_definition@v1", "name": "heading", "data": "$inputs.image",
                   "operations": []})["heading"] == "$steps.heading.output"
    for name in ("latitude", "longitude", "altitude"):
        step = {key: value for key, value in GEOTAG.items() if key != name}
        assert refusal(step, DETECT) == f"field 'workflow.steps[1].{name}' is required by {GEOTAG['type']}"
    assert "expected a number, got 'north'" in refusal({**GEOTAG, "heading": "north"}, DETECT)


# ------------------------------------------------------------------------------ identify_changes / _outliers

CHANGES = {"type": "roboflow_core/identify_changes@v1", "name": "changes", "embedding": "$steps.vector.output"}
OUTLIERS = {"type": "roboflow_core/identify_outliers@v1", "name": "outliers", "embedding": "$steps.vector.output"}


def test_identify_changes_defaults_choices_and_bounds() -> None:
    spec = CATALOGUE["roboflow_core/identify_changes@v1"]
    assert spec.family == "sampling"
    assert spec.outputs == {"is_outlier": (kinds.BOOLEAN,), "percentile": (kinds.FLOAT_ZERO_TO_ONE,),
                            "z_score": (kinds.FLOAT,), "average": (kinds.EMBEDDING,), "std": (kinds.EMBEDDING,),
                            "warming_up": (kinds.BOOLEAN,)}
    assert params(CHANGES, COLOUR, AS_EMBEDDING, outputs=("changes.is_outlier", "changes.average")) == {
        "type": "roboflow_core/identify_changes@v1", "strategy": "Exponential Moving Average (EMA)",
        "embedding": "$steps.vector.output", "threshold_percentile": 0.2, "warmup": 3, "smoothing_factor": 0.1,
        "window_size": 10}
    for strategy in ("Simple Moving Average (SMA)", "Sliding Window"):
        assert params({**CHANGES, "strategy": strategy}, COLOUR, AS_EMBEDDING)["strategy"] == strategy
    assert "'Median'" in refusal({**CHANGES, "strategy": "Median"}, COLOUR, AS_EMBEDDING)
    assert "expected a number between 0 and 1, got 1.5" in refusal({**CHANGES, "threshold_percentile": 1.5},
                                                                    COLOUR, AS_EMBEDDING)
    assert "a number between 0 and 1, or null, got 2" in refusal({**CHANGES, "smoothing_factor": 2},
                                                                 COLOUR, AS_EMBEDDING)
    assert "a positive integer, or null (no bound), got 0" in refusal({**CHANGES, "window_size": 0},
                                                                      COLOUR, AS_EMBEDDING)
    # null from a workflow parameter: no bound on the window (a literal null is the default, as for every field).
    unbounded = workflow(COLOUR, AS_EMBEDDING, {**CHANGES, "window_size": "$inputs.latitude",
                                                "smoothing_factor": "$inputs.latitude"})
    assert {name: value for name, value in compile_workflow(unbounded, parameters={"latitude": None}).step(
        "changes").params.items() if name in ("window_size", "smoothing_factor")} == {
        "window_size": None, "smoothing_factor": None}


def test_identify_outliers_defaults() -> None:
    spec = CATALOGUE["roboflow_core/identify_outliers@v1"]
    assert spec.outputs == {"is_outlier": (kinds.BOOLEAN,), "percentile": (kinds.FLOAT_ZERO_TO_ONE,),
                            "warming_up": (kinds.BOOLEAN,)}
    assert params(OUTLIERS, COLOUR, AS_EMBEDDING, outputs=("outliers.percentile",)) == {
        "type": "roboflow_core/identify_outliers@v1", "embedding": "$steps.vector.output",
        "threshold_percentile": 0.05, "warmup": 3, "window_size": 32}
    assert "expected an integer, got 2.5" in refusal({**OUTLIERS, "warmup": 2.5}, COLOUR, AS_EMBEDDING)


def test_embeddings_come_from_embedding_outputs_or_wildcards_only() -> None:
    # identify_changes' running average is an embedding: it may feed identify_outliers.
    chained = {**OUTLIERS, "embedding": "$steps.changes.average"}
    assert params(chained, COLOUR, AS_EMBEDDING, CHANGES)["embedding"] == "$steps.changes.average"
    assert "gives rgb_color, but the field takes embedding" in refusal(
        {**OUTLIERS, "embedding": "$steps.colour.rgb_color"}, COLOUR)
    assert "takes a selector" in refusal({**OUTLIERS, "embedding": [0.1, 0.2]})
