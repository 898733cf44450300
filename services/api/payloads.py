"""The INIT payloads of both generations as typed models, for the OpenAPI documentation only.

The routes never validate a payload against these: the manager is the one validator (it compiles
either generation and names the offending field in its ``invalid_payload`` reply), so a payload it
would accept is never refused here. Every model allows extra keys, as the manager ignores them.
The consume options, by contrast, are validated here (:class:`ConsumePayload`).
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.client.payloads import detection_workflow, workflow_init

FillingStrategy = Literal["WAIT", "DROP_OLDEST", "DROP_LATEST", "ADAPTIVE_DROP_OLDEST", "ADAPTIVE_DROP_LATEST"]
ConsumptionStrategy = Literal["LAZY", "EAGER"]
ProcessingMode = Literal["every_frame", "freshest"]
VideoReference = str | int | list[str | int]

_FILLING = "Unset: WAIT for files (every frame is processed), DROP_OLDEST for live streams."
_CONSUMPTION = "Unset: LAZY for files, EAGER for live streams."
_MODE = (
    "Our extension, for every source: 'every_frame' (WAIT/LAZY: every frame processed in order; a live camera "
    "then falls behind real time when the model is slower) or 'freshest' (DROP_OLDEST/EAGER: the newest frame "
    "each round). Unset: every_frame for files, freshest for live streams. Refused when explicit buffer "
    "strategies contradict it."
)
_STALENESS = (
    "Our extension, seconds > 0, only with processing_mode 'freshest': a frame older than this (since it was "
    "decoded) is never processed; such drops are counted as 'stale'. Unset: no age limit."
)
_DEVICE = "Our extension: the worker queue pipelines.<device> (default: the manager's MANAGER_DEFAULT_DEVICE)."
_API_KEY = "Optional; when absent, the initialise routes take it from 'Authorization: Bearer <key>'."


class _Documented(BaseModel):
    model_config = ConfigDict(extra="allow")


class UdpSinkConfiguration(_Documented):
    type: Literal["udp_sink"] = "udp_sink"
    host: str = Field(description="Where the manager's worker sends one JSON datagram per frame.")
    port: int = Field(ge=1, le=65535)


class ObjectDetectionConfiguration(_Documented):
    type: Literal["object-detection"] = "object-detection"
    class_agnostic_nms: bool | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    iou_threshold: float | None = Field(default=None, ge=0, le=1)
    max_candidates: int | None = Field(default=None, ge=1)
    max_detections: int | None = Field(default=None, ge=1)


class OlderInitialisePayload(_Documented):
    """The flat payload of the older generation (reference seed 000)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "model_id": "yolov3-tiny/coco-416", "video_reference": "rtsp://user:password@camera/stream",
        "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": 9999}, "max_fps": 16,
        "model_configuration": {"type": "object-detection", "confidence": 0.5, "iou_threshold": 0.4},
    }]})

    model_id: str = Field(description="'<project>/<version>' in the workers' model repository.")
    video_reference: VideoReference = Field(description="A file, a stream URL, a camera index, or a list of them.")
    sink_configuration: UdpSinkConfiguration
    api_key: str | None = Field(default=None, description=_API_KEY)
    max_fps: float | None = Field(default=None, gt=0)
    source_buffer_filling_strategy: FillingStrategy | None = Field(default=None, description=_FILLING)
    source_buffer_consumption_strategy: ConsumptionStrategy | None = Field(default=None, description=_CONSUMPTION)
    processing_mode: ProcessingMode | None = Field(default=None, description=_MODE)
    max_staleness: float | None = Field(default=None, gt=0, description=_STALENESS)
    model_configuration: ObjectDetectionConfiguration | None = None
    video_source_properties: dict[str, float] | None = Field(
        default=None, description="Capture properties, e.g. frame_width, frame_height, fps.")
    active_learning_enabled: bool | None = None
    active_learning_target_dataset: str | None = None
    batch_collection_timeout: float | None = None
    device: str | None = Field(default=None, description=_DEVICE)


class VideoConfiguration(_Documented):
    type: Literal["VideoConfiguration"] = "VideoConfiguration"
    video_reference: VideoReference = Field(description="A file, a stream URL, a camera index, or a list of them.")
    max_fps: float | None = Field(default=None, gt=0)
    source_buffer_filling_strategy: FillingStrategy | None = Field(default=None, description=_FILLING)
    source_buffer_consumption_strategy: ConsumptionStrategy | None = Field(default=None, description=_CONSUMPTION)
    processing_mode: ProcessingMode | None = Field(default=None, description=_MODE)
    max_staleness: float | None = Field(default=None, gt=0, description=_STALENESS)
    video_source_properties: dict[str, float] | None = None
    batch_collection_timeout: float | None = None


class WorkflowConfiguration(_Documented):
    type: Literal["WorkflowConfiguration"] = "WorkflowConfiguration"
    workflow_specification: dict[str, Any] | None = Field(
        default=None, description="An inline workflow with one object-detection model step.")
    workspace_name: str | None = Field(default=None, description="With workflow_id: a named, stored workflow.")
    workflow_id: str | None = None
    image_input_name: str = "image"
    workflows_parameters: dict[str, Any] | None = None


class MemorySinkConfiguration(_Documented):
    type: Literal["MemorySinkConfiguration"] = "MemorySinkConfiguration"
    results_buffer_size: int = Field(default=64, ge=1, description="Results kept for consume (oldest trimmed).")


_NEWER_EXAMPLE: dict[str, Any] = {
    key: value for key, value in workflow_init(
        {"video_reference": "rtsp://user:password@camera/stream", "max_fps": 5, "processing_mode": "freshest",
         "max_staleness": 0.5},
        detection_workflow("yolov3-tiny/coco-416", confidence=0.3), {"results_buffer_size": 64}).items()
    if key != "type"
}


class NewerInitialisePayload(_Documented):
    """The workflow payload of the newer generation."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [_NEWER_EXAMPLE]})

    video_configuration: VideoConfiguration
    processing_configuration: WorkflowConfiguration
    sink_configuration: MemorySinkConfiguration | None = None
    consumption_timeout: float | None = Field(
        default=None, description="Seconds without a non-empty consume before the pipeline ends itself.")
    api_key: str | None = Field(default=None, description=_API_KEY)
    predictions_queue_size: int = 512
    decoding_buffer_size: int = 64
    device: str | None = Field(default=None, description=_DEVICE)


_DEFINITION_EXAMPLE: dict[str, Any] = {
    "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
    "steps": [{"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model",
               "images": "$inputs.image", "model_id": "yolov3-tiny/coco-416"}],
    "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.model.predictions"}],
}


class WorkflowDefinition(_Documented):
    """A Workflows definition in the published JSON format, as PUT /workflows/{workspace}/{id} stores it."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [_DEFINITION_EXAMPLE]})

    version: str | None = None
    inputs: list[dict[str, Any]] = Field(description="WorkflowImage (the frames), WorkflowParameter, ...")
    steps: list[dict[str, Any]] = Field(description="Blocks by 'type' and 'name'; fields may be selectors.")
    outputs: list[dict[str, Any]] = Field(description="JsonField outputs: 'name' and 'selector'.")


class WebRTCOffer(_Documented):
    type: str = Field(description="'offer'.")
    sdp: str = Field(description="The peer's SDP offer with its ICE candidates gathered (no trickle ICE); it "
                                 "must carry a video track that is both sent and received.")


class WebRTCTurnConfig(_Documented):
    urls: str | list[str] = Field(description="One TURN/STUN URL or several.")
    username: str | None = None
    credential: str | None = Field(default=None, description="Never logged or shown in a status.")


class InitialiseWebRTCPayload(NewerInitialisePayload):
    """A newer payload whose video is the peer's track: the reply carries the SDP answer.

    ``video_configuration.video_reference`` is ignored. The first name of ``stream_output`` is the workflow
    output whose image goes back as video (``[""]``: the first image output; none: the input frame); the
    first of ``data_output`` is sent as JSON on the data channel the peer opened, one message per frame.
    """

    webrtc_offer: WebRTCOffer
    webrtc_turn_config: WebRTCTurnConfig | None = Field(
        default=None, description="The ICE server for this peer; none: the worker's WORKER_WEBRTC_TURN_* settings.")
    stream_output: list[str] | None = None
    data_output: list[str] | None = None
    webcam_fps: float | None = Field(default=None, description="The peer's frame rate when known.")
    webrtc_realtime_processing: bool = Field(
        default=True, description="true: always the freshest frame (stale ones dropped); false: every frame.")
    webrtc_peer_timeout: float | None = Field(
        default=None, description="Seconds without a frame from the peer before the pipeline ends (10).")


class ConsumePayload(BaseModel):
    """The optional JSON body of GET /inference_pipelines/{id}/consume (the reference sends it on a GET)."""

    excluded_fields: list[str] = Field(default_factory=list, description="Top-level keys removed from each output.")
    max_entries: int | None = Field(default=None, ge=1, le=1000,
                                    description="Our extension: read up to this many results at once ('entries').")
