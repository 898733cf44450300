"""Compiling both init generations into one PipelineSpec."""

import json
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError, NotFoundError
from services.core.plan import PipelineSpec, compile_init, load_task_spec
from services.core.states import BufferConsumptionStrategy, BufferFillingStrategy

API_KEY = "rf-Sup3rSecretKey"


def seed_init_command() -> dict[str, Any]:
    """The init command of seed 000 ("Communication protocol - requests"), as the reference sends it."""
    return {
        "type": "init",
        "model_id": "some/1",
        "video_reference": "rtsp://192.168.0.73:8554/live0.stream",
        "sink_configuration": {"type": "udp_sink", "host": "192.168.0.3", "port": 9999},
        "api_key": API_KEY,
        "max_fps": 16,
        "model_configuration": {
            "type": "object-detection",
            "class_agnostic_nms": True,
            "confidence": 0.5,
            "iou_threshold": 0.4,
            "max_candidates": 300,
            "max_detections": 3000,
        },
        "video_source_properties": {"frame_width": 1920, "frame_height": 1080, "fps": 30},
    }


def seed_client_payload() -> dict[str, Any]:
    """What seed 000's example ``initialise_pipeline()`` posts: no model_configuration at all."""
    return {
        "type": "init",
        "sink_configuration": {"type": "udp_sink", "host": "localhost", "port": 9999},
        "video_reference": "rtsp://admin:hunter2@cam.local/live",
        "model_id": "coco/3",
        "api_key": API_KEY,
        "max_fps": None,
    }


def detection_workflow(**step: Any) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [
            {"type": "WorkflowImage", "name": "image"},
            {"type": "WorkflowParameter", "name": "confidence", "default_value": 0.3},
            {"type": "WorkflowParameter", "name": "model"},
        ],
        "steps": [
            {
                "type": "roboflow_core/roboflow_object_detection_model@v2",
                "name": "detection",
                "images": "$inputs.image",
                "model_id": "coco/3",
                **step,
            }
        ],
        "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.detection.predictions"}],
    }


def newer_payload(workflow: dict[str, Any] | None = None, **processing: Any) -> dict[str, Any]:
    return {
        "video_configuration": {
            "type": "VideoConfiguration",
            "video_reference": ["rtsp://cam-1/live", 0],
            "max_fps": 10,
            "video_source_properties": None,
            "batch_collection_timeout": 0.1,
        },
        "processing_configuration": {
            "type": "WorkflowConfiguration",
            "workflow_specification": workflow if workflow is not None else detection_workflow(),
            "image_input_name": "image",
            **processing,
        },
        "sink_configuration": {"type": "MemorySinkConfiguration", "results_buffer_size": 128},
        "consumption_timeout": 30.0,
        "api_key": API_KEY,
        "predictions_queue_size": 256,
        "decoding_buffer_size": 32,
        "type": "init",
    }


def refusal(payload: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_init(payload)
    return str(caught.value)


# --- the older, flat generation ---------------------------------------------------------------


def test_seed_init_command() -> None:
    spec = compile_init(seed_init_command())

    assert spec.video_references == ["rtsp://192.168.0.73:8554/live0.stream"]
    assert spec.model_id == "some/1"
    assert spec.udp_sink is not None and (spec.udp_sink.host, spec.udp_sink.port) == ("192.168.0.3", 9999)
    assert (spec.confidence, spec.iou_threshold, spec.class_agnostic_nms) == (0.5, 0.4, True)
    assert (spec.max_candidates, spec.max_detections) == (300, 3000)
    assert spec.max_fps == 16
    assert spec.video_source_properties == {"frame_width": 1920, "frame_height": 1080, "fps": 30}
    assert spec.api_key is not None and spec.api_key.get_secret_value() == API_KEY
    assert spec.source_buffer_filling_strategy is None  # the engine chooses per source kind
    assert spec.device == ""


def test_seed_client_payload_gets_the_defaults() -> None:
    spec = compile_init(seed_client_payload())

    assert (spec.confidence, spec.iou_threshold, spec.class_agnostic_nms) == (0.5, 0.5, False)
    assert (spec.max_candidates, spec.max_detections, spec.max_fps) == (3000, 300, None)
    assert (spec.results_buffer_size, spec.decoding_buffer_size, spec.predictions_queue_size) == (64, 64, 512)


def test_flat_payload_options() -> None:
    payload = {
        **seed_client_payload(),
        "video_reference": ["a.mp4", 2],
        "source_buffer_filling_strategy": "drop_oldest",
        "source_buffer_consumption_strategy": "Lazy",
        "batch_collection_timeout": 0.5,
        "active_learning_enabled": True,
        "active_learning_target_dataset": "ds",
        "device": "gpu",
    }

    spec = compile_init(payload)

    assert spec.video_references == ["a.mp4", 2]
    assert spec.source_buffer_filling_strategy is BufferFillingStrategy.DROP_OLDEST
    assert spec.source_buffer_consumption_strategy is BufferConsumptionStrategy.LAZY
    assert (spec.batch_collection_timeout, spec.device) == (0.5, "gpu")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"model_configuration": {"type": "classification"}},
            "field 'model_configuration.type': 'classification'",
        ),
        ({"model_id": None}, "field 'model_id' is required"),
        ({"model_id": "just-a-name"}, "field 'model_id': model_id must be 'project/version'"),
        ({"model_id": "../1"}, "model_id must be 'project/version'"),
        ({"model_id": "a/.."}, "model_id must be 'project/version'"),
        ({"model_id": "a/b/c"}, "model_id must be 'project/version'"),
        ({"video_reference": []}, "field 'video_reference': List should have at least 1 item"),
        (
            {"video_reference": True},
            "field 'video_reference[0]': a video reference must be a non-empty string",
        ),
        ({"video_reference": [""]}, "field 'video_reference[0]': a video reference must be"),
        ({"sink_configuration": None}, "field 'sink_configuration' is required"),
        ({"sink_configuration": {"type": "mqtt_sink"}}, "field 'sink_configuration.type': 'mqtt_sink'"),
        (
            {"sink_configuration": {"type": "udp_sink", "host": "h"}},
            "field 'sink_configuration.port' is required",
        ),
        (
            {"sink_configuration": {"type": "udp_sink", "host": "h", "port": 70000}},
            "'sink_configuration.port'",
        ),
        ({"model_configuration": {"confidence": 1.5}}, "field 'model_configuration.confidence'"),
        ({"model_configuration": {"max_detections": 0}}, "field 'model_configuration.max_detections'"),
        ({"max_fps": -1}, "field 'max_fps': Input should be greater than 0"),
        ({"source_buffer_filling_strategy": "newest"}, "field 'source_buffer_filling_strategy'"),
        (
            {"video_source_properties": {"fps": "fast"}},
            "field 'video_source_properties.fps': must be a number",
        ),
        ({"device": "gpu; rm -rf"}, "field 'device'"),
    ],
)
def test_flat_payload_refusals_name_the_field(change: dict[str, Any], message: str) -> None:
    assert message in refusal({**seed_client_payload(), **change})


def test_a_payload_of_neither_generation() -> None:
    message = refusal({"type": "init", "camera": "rtsp://x"})

    assert "neither generation" in message
    assert "video_configuration" in message and "model_id" in message


DETECTION_BLOCKS = (
    "roboflow_core/roboflow_object_detection_model@v1",
    "roboflow_core/roboflow_object_detection_model@v2",
    "roboflow_core/roboflow_object_detection_model@v3",
    "ObjectDetectionModel",
    "RoboflowObjectDetectionModel",
)


# --- the newer, workflow generation -----------------------------------------------------------


def _step(spec: PipelineSpec, name: str = "detection") -> dict[str, Any]:
    assert spec.workflow is not None and spec.model_id is None
    return spec.workflow.step(name).params


def test_newer_payload_with_an_inline_workflow() -> None:
    spec = compile_init(newer_payload())

    assert spec.video_references == ["rtsp://cam-1/live", 0]
    assert spec.workflow is not None and spec.workflow.model_ids() == ["coco/3"]
    assert (spec.max_fps, spec.batch_collection_timeout, spec.consumption_timeout) == (10, 0.1, 30.0)
    assert (spec.results_buffer_size, spec.predictions_queue_size, spec.decoding_buffer_size) == (
        128,
        256,
        32,
    )
    assert spec.udp_sink is None
    assert spec.api_key is not None and spec.api_key.get_secret_value() == API_KEY
    # Unset strategies are left to the engine (files WAIT/LAZY, streams DROP_OLDEST/EAGER).
    assert spec.source_buffer_filling_strategy is None
    assert spec.source_buffer_consumption_strategy is None


def test_newer_payload_minimal() -> None:
    payload = {
        "video_configuration": {"type": "VideoConfiguration", "video_reference": "file.mp4"},
        "processing_configuration": {
            "type": "WorkflowConfiguration",
            "workflow_specification": detection_workflow(),
        },
    }

    spec = compile_init(payload)

    assert spec.video_references == ["file.mp4"]
    assert (spec.results_buffer_size, spec.consumption_timeout, spec.api_key) == (64, None, None)


def test_explicit_null_strategies_let_the_engine_choose() -> None:
    payload = newer_payload()
    payload["video_configuration"] |= {
        "source_buffer_filling_strategy": None,
        "source_buffer_consumption_strategy": "lazy",
    }

    spec = compile_init(payload)

    assert spec.source_buffer_filling_strategy is None
    assert spec.source_buffer_consumption_strategy is BufferConsumptionStrategy.LAZY


@pytest.mark.parametrize("block", DETECTION_BLOCKS)
def test_every_detection_block_is_accepted(block: str) -> None:
    spec = compile_init(newer_payload(detection_workflow(type=block, confidence=0.7, max_detections=50)))

    assert _step(spec)["max_detections"] == 50
    assert _step(spec).get("confidence", 0.7) == 0.7  # v3 has confidence_mode instead
    assert spec.workflow is not None and spec.workflow.steps[0].type.startswith(
        "roboflow_core/roboflow_object_detection_model@")


def test_step_literals_are_kept_and_defaults_filled() -> None:
    workflow = detection_workflow(confidence=0.25, iou_threshold=0.6, class_agnostic_nms=True)

    params = _step(compile_init(newer_payload(workflow)))

    assert (params["confidence"], params["iou_threshold"], params["class_agnostic_nms"]) == (0.25, 0.6, True)
    assert (params["max_candidates"], params["max_detections"], params["class_filter"]) == (3000, 300, None)


def test_selectors_resolve_from_parameters_then_input_defaults() -> None:
    workflow = detection_workflow(confidence="$inputs.confidence", model_id="$inputs.model")

    from_default = compile_init(newer_payload(workflow, workflows_parameters={"model": "people/2"}))
    from_parameter = compile_init(
        newer_payload(workflow, workflows_parameters={"model": "people/2", "confidence": 0.9})
    )

    assert (_step(from_default)["model_id"], _step(from_default)["confidence"]) == ("people/2", 0.3)
    assert _step(from_parameter)["confidence"] == 0.9


def test_a_parameter_without_value_or_default_is_refused() -> None:
    workflow = detection_workflow(model_id="$inputs.model")

    assert "workflow parameter 'model' has no default_value" in refusal(newer_payload(workflow))


def test_a_named_workflow_is_resolved() -> None:
    calls: list[tuple[str, str]] = []

    def resolve(workspace: str, workflow_id: str) -> dict[str, Any]:
        calls.append((workspace, workflow_id))
        return detection_workflow(confidence=0.8)

    payload = newer_payload(workspace_name="acme", workflow_id="people")
    del payload["processing_configuration"]["workflow_specification"]

    spec = compile_init(payload, resolve_workflow=resolve)

    assert calls == [("acme", "people")]
    assert _step(spec)["confidence"] == 0.8


def test_a_named_workflow_that_does_not_exist() -> None:
    def resolve(workspace: str, workflow_id: str) -> dict[str, Any]:
        raise NotFoundError(f"workflow {workspace}/{workflow_id} not found")

    payload = newer_payload(workspace_name="acme", workflow_id="ghost")
    del payload["processing_configuration"]["workflow_specification"]

    with pytest.raises(NotFoundError, match="acme/ghost"):
        compile_init(payload, resolve_workflow=resolve)
    with pytest.raises(NotFoundError, match="no workflow registry"):
        compile_init(payload)


def test_a_named_workflow_resolving_to_an_unsupported_one() -> None:
    payload = newer_payload(workspace_name="acme", workflow_id="ocr")
    del payload["processing_configuration"]["workflow_specification"]

    def resolve(workspace: str, workflow_id: str) -> dict[str, Any]:
        return detection_workflow(type="roboflow_core/sam3@v1")

    with pytest.raises(InvalidPayloadError, match=r"'roboflow_core/sam3@v1' at 'workflow\(acme/ocr\)"):
        compile_init(payload, resolve_workflow=resolve)


def _image_output() -> dict[str, Any]:
    workflow = detection_workflow()
    workflow["outputs"] = [{"type": "WorkflowImageOutput", "name": "viz"}]
    return workflow


@pytest.mark.parametrize(
    ("workflow", "message"),
    [
        (
            detection_workflow(type="roboflow_core/sam3@v1"),
            "unsupported workflow block type 'roboflow_core/sam3@v1' at "
            "'processing_configuration.workflow_specification.steps[0].type'; supported: "
            "roboflow_core/roboflow_object_detection_model@v1",
        ),
        ({"version": "1.0"}, "declares no image input"),
        ({"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}], "steps": {}},
         "field 'processing_configuration.workflow_specification.steps' must be a list"),
        (_image_output(), "output type 'WorkflowImageOutput' is not supported; expected 'JsonField'"),
        (
            detection_workflow(confidence="$steps.other.confidence"),
            "field 'processing_configuration.workflow_specification.steps[0].confidence': "
            "selector '$steps.other.confidence' names no step",
        ),
        (detection_workflow(confidence="$inputs.missing"), "names no declared workflow input"),
        (
            detection_workflow(confidence=3),
            "field 'processing_configuration.workflow_specification.steps[0].confidence': expected a number "
            "between 0 and 1, got 3",
        ),
        (
            detection_workflow(model_id=None),
            "field 'processing_configuration.workflow_specification.steps[0].model_id' is required",
        ),
        (detection_workflow(model_id="yolov8n-640"), "model_id must be 'project/version'"),
    ],
)
def test_unsupported_workflows_are_refused(workflow: dict[str, Any], message: str) -> None:
    assert message in refusal(newer_payload(workflow))


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("video_configuration", {"type": "WebcamConfiguration"}, "field 'video_configuration.type'"),
        (
            "video_configuration",
            {"video_reference": None},
            "field 'video_configuration.video_reference' is required",
        ),
        ("video_configuration", {"max_fps": 0}, "field 'video_configuration.max_fps'"),
        (
            "sink_configuration",
            {"type": "udp_sink"},
            "field 'sink_configuration.type': 'udp_sink' is not supported",
        ),
        ("sink_configuration", {"results_buffer_size": 0}, "field 'sink_configuration.results_buffer_size'"),
        (
            "sink_configuration",
            {"results_buffer_size": 100_001},
            "field 'sink_configuration.results_buffer_size'",
        ),
        ("processing_configuration", {"type": "ModelConfiguration"}, "field 'processing_configuration.type'"),
        (
            "processing_configuration",
            {"workflow_specification": None, "workspace_name": "acme"},
            "needs either 'workflow_specification' or both 'workspace_name' and 'workflow_id'",
        ),
        ("processing_configuration", {"workflow_specification": [1]}, "must be an object, got list"),
        (
            "processing_configuration",
            {"workflows_parameters": [1]},
            "field 'processing_configuration.workflows_parameters'",
        ),
    ],
)
def test_newer_payload_refusals_name_the_field(section: str, change: dict[str, Any], message: str) -> None:
    payload = newer_payload()
    payload[section] = {**payload[section], **change}

    assert message in refusal(payload)


def test_newer_payload_without_processing_configuration() -> None:
    payload = newer_payload()
    del payload["processing_configuration"]

    assert "field 'processing_configuration' is required" in refusal(payload)


def test_newer_top_level_fields_are_validated() -> None:
    assert "field 'consumption_timeout'" in refusal({**newer_payload(), "consumption_timeout": -5})
    assert "field 'decoding_buffer_size'" in refusal({**newer_payload(), "decoding_buffer_size": 0})


def test_errors_are_raised_from_the_validation_error() -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_init({**seed_client_payload(), "max_fps": "fast"})

    assert caught.value.__cause__ is not None


# --- secrets and the task payload -------------------------------------------------------------


def test_api_key_never_appears_in_repr_or_the_redacted_dump() -> None:
    spec = compile_init(seed_client_payload())

    for text in (repr(spec), str(spec), json.dumps(spec.redacted())):
        assert API_KEY not in text
        assert "hunter2" not in text
    assert API_KEY not in json.dumps(spec.model_dump(mode="json"))
    assert spec.redacted()["api_key"] == "***"
    assert spec.redacted()["video_references"] == ["rtsp://***:***@cam.local/live"]


def test_the_task_payload_reveals_secrets_and_round_trips_through_json() -> None:
    spec = compile_init(newer_payload())

    payload = json.loads(json.dumps(spec.task_payload()))

    assert payload["api_key"] == API_KEY and payload["format_version"] == "1.1"
    assert load_task_spec(payload) == spec


def test_the_task_payload_without_an_api_key() -> None:
    spec = compile_init({**seed_client_payload(), "api_key": None})

    assert spec.task_payload()["api_key"] is None
    assert spec.redacted()["api_key"] is None


def test_the_spec_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        PipelineSpec.model_validate({"video_references": ["a"], "model_id": "a/1", "surprise": 1})
