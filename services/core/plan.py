"""Compiles both init payload generations into one ``PipelineSpec``, the payload of a pipeline task.

The older flat payload and the newer workflow payload (README, "The wire protocol") are first mapped, key by
key, onto the spec's fields (remembering where each value came from), then validated once by
``PipelineSpec``, so every error names the offending path of the payload the client sent.
"""

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.core import formats
from services.core.errors import InvalidPayloadError, NotFoundError, invalid_payload_from
from services.core.redaction import REDACTED, redact_reference, redact_text
from services.core.states import BufferConsumptionStrategy, BufferFillingStrategy, ProcessingMode
from services.core.webrtc import PEER_REFERENCE, WebRTCSpec, compile_webrtc
from services.core.workflows import WorkflowPlan, compile_workflow
from services.core.workflows.compiler import object_at
from services.core.workflows.secrets import plan_secrets

WorkflowResolver = Callable[[str, str], dict[str, Any]]
REALTIME_MAX_STALENESS = 0.2  # seconds: the max_staleness of a realtime WebRTC pipeline that names none

# Ceilings of every size and duration a client sends, enforced wherever a spec is validated: by the
# manager (which may be configured lower: MANAGER_MAX_DECODING_BUFFER_SIZE, ...) and again by the
# worker that receives the task, so no payload makes a task allocate without bound. A decoded
# 1920x1080 frame is 6 MiB: a decoding buffer at the ceiling holds 6 GiB per source.
MAX_DECODING_BUFFER_SIZE = 1024  # frames per source
MAX_PREDICTIONS_QUEUE_SIZE = 100_000  # inference rounds waiting for a sink
MAX_RESULTS_BUFFER_SIZE = 100_000  # entries of the results stream (in Redis)
MAX_DETECTIONS = 100_000  # max_candidates, max_detections
MAX_SOURCE_PROPERTIES = 64  # entries of video_source_properties
MAX_FPS = 1000.0
MAX_BATCH_COLLECTION_TIMEOUT = 60.0  # seconds
MAX_STALENESS = 3600.0  # seconds
MAX_CONSUMPTION_TIMEOUT = 7 * 86_400.0  # seconds


def _video_reference(value: Any) -> str | int:
    if (isinstance(value, str) and value) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError("a video reference must be a non-empty string or a camera index (integer)")


def _number(value: Any) -> float | int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise ValueError("must be a number")


# Plain validators instead of unions: one clear error per bad value, ints stay ints.
VideoReference = Annotated[str | int, PlainValidator(_video_reference, json_schema_input_type=str | int)]
Number = Annotated[float | int, PlainValidator(_number, json_schema_input_type=float)]

DETECTION_PARAMS = ("confidence", "iou_threshold", "class_agnostic_nms", "max_candidates", "max_detections")
_MODEL_ID = re.compile(r"[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+")


def check_model_id(value: str) -> str:
    if not _MODEL_ID.fullmatch(value) or ".." in value or "." in value.split("/"):
        raise ValueError(
            f"model_id must be 'project/version' (two segments of letters, digits, '_', '.', '-'), got {value!r}"
        )
    return value


class UdpSink(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Annotated[StrictStr, StringConstraints(min_length=1)]
    port: int = Field(ge=1, le=65535)


class PipelineSpec(BaseModel):
    """Everything a task needs to run one pipeline; ``None`` lets the engine choose."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    video_references: list[VideoReference] = Field(min_length=1)
    # What runs on each frame: one detection model (the flat payload) or a compiled workflow.
    model_id: str | None = None
    workflow: WorkflowPlan | None = None
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    iou_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    class_agnostic_nms: bool = False
    max_candidates: int = Field(default=3000, ge=1, le=MAX_DETECTIONS)
    max_detections: int = Field(default=300, ge=1, le=MAX_DETECTIONS)
    max_fps: float | None = Field(default=None, gt=0, le=MAX_FPS)
    source_buffer_filling_strategy: BufferFillingStrategy | None = None
    source_buffer_consumption_strategy: BufferConsumptionStrategy | None = None
    # Declared after the strategies: their validators check against them (``ValidationInfo.data``).
    processing_mode: ProcessingMode | None = None
    # seconds; only with freshest
    max_staleness: float | None = Field(default=None, gt=0, le=MAX_STALENESS, strict=True)
    decoding_buffer_size: int = Field(default=64, ge=1, le=MAX_DECODING_BUFFER_SIZE)
    video_source_properties: dict[str, Number] | None = Field(default=None, max_length=MAX_SOURCE_PROPERTIES)
    batch_collection_timeout: float | None = Field(default=None, ge=0, le=MAX_BATCH_COLLECTION_TIMEOUT)
    udp_sink: UdpSink | None = None
    results_buffer_size: int = Field(default=64, ge=1, le=MAX_RESULTS_BUFFER_SIZE)
    predictions_queue_size: int = Field(default=512, ge=1, le=MAX_PREDICTIONS_QUEUE_SIZE)
    consumption_timeout: float | None = Field(default=None, gt=0, le=MAX_CONSUMPTION_TIMEOUT)
    api_key: SecretStr | None = None
    device: str = Field(default="", pattern=r"^[A-Za-z0-9_.\-]{0,64}$")
    # A WEBRTC request's peer (its offer, what goes back to it); its one source is PEER_REFERENCE.
    webrtc: WebRTCSpec | None = None

    @field_validator("video_references", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return value if isinstance(value, list) else [value]

    @field_validator("source_buffer_filling_strategy", "source_buffer_consumption_strategy", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("processing_mode", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("processing_mode")
    @classmethod
    def _agrees_with_strategies(cls, mode: ProcessingMode | None, info: ValidationInfo) -> ProcessingMode | None:
        if mode is None:
            return mode
        for name, implied in (("source_buffer_filling_strategy", mode.filling),
                              ("source_buffer_consumption_strategy", mode.consumption)):
            given = info.data.get(name)
            if given is not None and given is not implied:
                raise ValueError(
                    f"{mode.value!r} means {mode.filling.value}/{mode.consumption.value} buffers; it contradicts "
                    f"field '{_origin(name, info)}' {given.value!r} (give one of the two, or values that agree)"
                )
        return mode

    @field_validator("max_staleness")
    @classmethod
    def _only_when_freshest(cls, value: float | None, info: ValidationInfo) -> float | None:
        mode = info.data.get("processing_mode", ProcessingMode.FRESHEST)  # absent: its own error is reported
        if value is not None and mode is not ProcessingMode.FRESHEST:
            shown = "not given" if mode is None else repr(mode.value)
            raise ValueError(f"needs field '{_origin('processing_mode', info)}' 'freshest' (it is {shown})")
        return value

    @field_validator("model_id")
    @classmethod
    def _project_version(cls, value: str | None) -> str | None:
        if value is not None:
            check_model_id(value)
        return value

    @model_validator(mode="after")
    def _one_processing(self) -> "PipelineSpec":
        if (self.model_id is None) == (self.workflow is None):
            raise ValueError("a pipeline runs either one model (model_id) or a workflow, not both or neither")
        if (self.webrtc is not None) != (PEER_REFERENCE in self.video_references):
            raise ValueError(f"the video reference {PEER_REFERENCE!r} is the source of a WebRTC pipeline, and only")
        return self

    @property
    def movable(self) -> bool:
        """Whether another worker can take the pipeline over (a WebRTC peer is bound to its worker)."""
        return self.webrtc is None

    def secrets(self) -> tuple[str, ...]:
        """Every secret the spec holds: the api_key and the workflow's (sink passwords, tokens, ...)."""
        found: tuple[str, ...] = (self.api_key.get_secret_value(),) if self.api_key is not None else ()
        found += self.webrtc.secrets() if self.webrtc is not None else ()
        return found + (plan_secrets(self.workflow) if self.workflow is not None else ())

    def model_ids(self) -> list[str]:
        """Every model the pipeline needs."""
        return [self.model_id] if self.model_id is not None else self.workflow.model_ids() if self.workflow else []

    def task_payload(self) -> dict[str, Any]:
        """JSON-ready dump WITH the api_key revealed: only for the Celery task and the spec key.

        It carries ``format_version`` (:data:`services.core.formats.SPEC`); :func:`load_task_spec` reads it back.
        """
        dumped = {"format_version": str(formats.SPEC), **self.model_dump(mode="json")}
        dumped["api_key"] = self.api_key.get_secret_value() if self.api_key is not None else None
        if self.webrtc is not None:
            dumped["webrtc"] = self.webrtc.task_payload()
        return dumped

    def redacted(self) -> dict[str, Any]:
        """JSON-ready dump for status and logs: api_key and URL credentials replaced by ``***``."""
        dumped = self.model_dump(mode="json")
        dumped["api_key"] = REDACTED if self.api_key is not None else None
        dumped["video_references"] = [redact_reference(ref) for ref in self.video_references]
        if self.workflow is not None:  # sink passwords, tokens in webhook headers or URLs
            dumped["workflow"] = json.loads(redact_text(json.dumps(dumped["workflow"]), self.secrets()))
        if self.webrtc is not None:
            dumped["webrtc"] = self.webrtc.redacted()
        return dumped

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name == "video_references":
                value = [redact_reference(ref) for ref in self.video_references]
            elif name == "workflow" and self.workflow is not None:  # its sinks may hold secrets
                value = f"<workflow of {len(self.workflow.steps)} steps>"
            elif name == "webrtc" and self.webrtc is not None:  # the offer's ICE password, the TURN credential
                value = self.webrtc.redacted()
            yield name, value


def load_task_spec(payload: dict[str, Any]) -> PipelineSpec:
    """The spec of a task payload (:meth:`PipelineSpec.task_payload`) of any version this release reads.

    An older payload (no ``format_version``: ``1.0``) validates as it is. A newer minor may carry
    top-level fields this release does not know: they are left out (the minor rule of
    ``services.core.formats``: such a field only adds an option whose absence keeps the older meaning).
    Raises ``FormatError`` for a newer major, pydantic's ``ValidationError`` for an invalid spec.
    """
    version = formats.readable("pipeline spec", payload.get("format_version"), formats.SPEC)
    body = {name: value for name, value in payload.items() if name != "format_version"}
    if version > formats.SPEC:
        body = {name: value for name, value in body.items() if name in PipelineSpec.model_fields}
    return PipelineSpec.model_validate(body)


def _origin(name: str, info: ValidationInfo) -> str:
    """Where a spec field came from in the client's payload (the context of :meth:`_Draft.build`)."""
    origins = info.context.get("origins", {}) if isinstance(info.context, Mapping) else {}
    return str(origins.get(name, name))


@dataclass
class _Draft:
    """Spec field values gathered from a payload, with the payload path each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: Any, origin: str) -> None:
        self.origins[name] = origin
        if value is not None:  # null means "not given": the spec's default applies
            self.values[name] = value

    def build(self) -> PipelineSpec:
        try:
            return PipelineSpec.model_validate(self.values, context={"origins": self.origins})
        except ValidationError as exc:
            raise invalid_payload_from(exc, "init payload", rename=self.origins) from exc


def compile_init(
    payload: Mapping[str, Any], resolve_workflow: WorkflowResolver | None = None
) -> PipelineSpec:
    """The one plan for an init payload of either generation.

    ``resolve_workflow(workspace_name, workflow_id)`` returns a stored workflow specification
    or raises :class:`NotFoundError`. Raises :class:`InvalidPayloadError` naming the bad field.
    """
    if "video_configuration" in payload or "processing_configuration" in payload:
        return _compile_workflow_payload(payload, resolve_workflow).build()
    sink = payload.get("sink_configuration")
    if "model_id" in payload or "video_reference" in payload or _type_of(sink) == "udp_sink":
        return _compile_flat_payload(payload).build()
    raise InvalidPayloadError(
        "init payload matches neither generation: expected either the flat form (model_id, "
        "video_reference, sink_configuration {type: 'udp_sink', host, port}) or the workflow form "
        "(video_configuration, processing_configuration, sink_configuration)"
    )


def compile_webrtc_init(
    payload: Mapping[str, Any], resolve_workflow: WorkflowResolver | None = None
) -> PipelineSpec:
    """The plan of a WEBRTC request: an INIT of the workflow generation whose source is the peer.

    ``video_configuration.video_reference`` is ignored (the peer's track is the video). Unless the
    payload names a processing mode or buffer strategies, ``webrtc_realtime_processing`` chooses:
    true (the default) processes the freshest frame, never one older than ``max_staleness``
    (REALTIME_MAX_STALENESS unless given), false every frame.
    """
    if "processing_configuration" not in payload:
        raise InvalidPayloadError("a webrtc payload is an init payload of the workflow generation: field "
                                  "'processing_configuration' is required")
    draft = _compile_workflow_payload(payload, resolve_workflow)
    draft.put("video_references", [PEER_REFERENCE], "video_configuration.video_reference")
    plan = draft.values["workflow"]
    webrtc = compile_webrtc(payload, [output.name for output in plan.outputs])
    draft.put("webrtc", webrtc, "webrtc_offer")
    chosen = any(draft.values.get(name) is not None for name in (
        "processing_mode", "source_buffer_filling_strategy", "source_buffer_consumption_strategy"))
    if not chosen:
        mode = ProcessingMode.FRESHEST if webrtc.realtime else ProcessingMode.EVERY_FRAME
        draft.put("processing_mode", mode.value, "webrtc_realtime_processing")
        if webrtc.realtime and draft.values.get("max_staleness") is None:
            # A frame waits for a free inference runner before it is picked, and one older than this is
            # dropped: at 30 fps on 2 cores that halved glass-to-glass latency (docs/benchmarks.md, WebRTC).
            draft.put("max_staleness", REALTIME_MAX_STALENESS, "webrtc_realtime_processing")
    return draft.build()


def _compile_flat_payload(payload: Mapping[str, Any]) -> _Draft:
    draft = _Draft()
    draft.put("model_id", payload.get("model_id"), "model_id")
    draft.put("video_references", payload.get("video_reference"), "video_reference")
    sink = _section(payload, "sink_configuration", "udp_sink", required=True)
    if payload.get("model_id") is None:  # the spec itself also takes a workflow instead
        raise InvalidPayloadError("invalid init payload: field 'model_id' is required")
    draft.put("udp_sink", {k: sink[k] for k in ("host", "port") if k in sink}, "sink_configuration")
    model = _section(payload, "model_configuration", "object-detection", required=False)
    for name in DETECTION_PARAMS:
        draft.put(name, model.get(name), f"model_configuration.{name}")
    for name in (
        "api_key",
        "max_fps",
        "source_buffer_filling_strategy",
        "source_buffer_consumption_strategy",
        "processing_mode",
        "max_staleness",
        "video_source_properties",
        "batch_collection_timeout",
        "device",
    ):
        draft.put(name, payload.get(name), name)
    return draft


def _compile_workflow_payload(payload: Mapping[str, Any], resolve: WorkflowResolver | None) -> _Draft:
    draft = _Draft()
    _put_video_configuration(draft, _section(payload, "video_configuration", "VideoConfiguration", True))
    sink = _section(payload, "sink_configuration", "MemorySinkConfiguration", required=False)
    draft.put(
        "results_buffer_size", sink.get("results_buffer_size"), "sink_configuration.results_buffer_size"
    )
    for name in (
        "api_key",
        "consumption_timeout",
        "predictions_queue_size",
        "decoding_buffer_size",
        "device",
    ):
        draft.put(name, payload.get(name), name)
    processing = _section(payload, "processing_configuration", "WorkflowConfiguration", required=True)
    workflow, where = _workflow_of(processing, resolve)
    parameters = object_at(
        processing.get("workflows_parameters") or {}, "processing_configuration.workflows_parameters"
    )
    names = {key: processing.get(key) for key in ("image_input_name", "video_metadata_input_name")}
    for key, value in names.items():
        if value is not None and not isinstance(value, str):
            raise InvalidPayloadError(f"field 'processing_configuration.{key}' must be a string")
    plan = compile_workflow(workflow, where, parameters, image_input_name=names["image_input_name"] or "image",
                            resolve=resolve)
    for model_id in plan.model_ids():
        try:
            check_model_id(model_id)
        except ValueError as exc:
            raise InvalidPayloadError(f"workflow at '{where}': {exc}") from exc
    draft.put("workflow", plan, where)
    return draft


def _put_video_configuration(draft: _Draft, video: Mapping[str, Any]) -> None:
    where = "video_configuration"
    draft.put("video_references", video.get("video_reference"), f"{where}.video_reference")
    # Unlike the reference (DROP_OLDEST/EAGER always, which skips most frames of a file), an unset
    # strategy is left to the engine: files get WAIT/LAZY, live streams DROP_OLDEST/EAGER.
    filling = video.get("source_buffer_filling_strategy")
    consumption = video.get("source_buffer_consumption_strategy")
    draft.put("source_buffer_filling_strategy", filling, f"{where}.source_buffer_filling_strategy")
    draft.put(
        "source_buffer_consumption_strategy", consumption, f"{where}.source_buffer_consumption_strategy"
    )
    for name in ("max_fps", "processing_mode", "max_staleness", "video_source_properties",
                 "batch_collection_timeout"):
        draft.put(name, video.get(name), f"{where}.{name}")


def _workflow_of(
    processing: Mapping[str, Any], resolve: WorkflowResolver | None
) -> tuple[Mapping[str, Any], str]:
    """The workflow specification (inline, else resolved by name) and the path to name in errors."""
    inline = processing.get("workflow_specification")
    if inline is not None:
        where = "processing_configuration.workflow_specification"
        return object_at(inline, where), where
    workspace, workflow_id = processing.get("workspace_name"), processing.get("workflow_id")
    if not (isinstance(workspace, str) and workspace and isinstance(workflow_id, str) and workflow_id):
        raise InvalidPayloadError(
            "processing_configuration needs either 'workflow_specification' or both "
            "'workspace_name' and 'workflow_id' (non-empty strings)"
        )
    if resolve is None:
        raise NotFoundError(
            f"workflow '{workspace}/{workflow_id}' not found: no workflow registry is configured",
            f"Workflow '{workspace}/{workflow_id}' was not found.",
        )
    where = f"workflow({workspace}/{workflow_id})"
    return object_at(resolve(workspace, workflow_id), where), where


def _section(payload: Mapping[str, Any], key: str, expected_type: str, required: bool) -> Mapping[str, Any]:
    """A nested configuration object; its ``type``, when given, must be ``expected_type``."""
    value = payload.get(key)
    if value is None:
        if required:
            raise InvalidPayloadError(f"field '{key}' is required (an object of type {expected_type!r})")
        return {}
    section = object_at(value, key)
    kind = section.get("type", expected_type)
    if kind != expected_type:
        raise InvalidPayloadError(
            f"field '{key}.type': {kind!r} is not supported; expected {expected_type!r}"
        )
    return section


def _type_of(value: Any) -> Any:
    return value.get("type") if isinstance(value, Mapping) else None
