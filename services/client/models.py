"""Typed replies of the stream manager, shaped as the reference's API entities.

One set of models serves the Python clients (what their methods return) and the HTTP API (its
``response_model`` of every route, hence its OpenAPI schema). Models accept extra keys and keep
them, so a report field added by a newer worker reaches the caller instead of being dropped.
"""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

IsoTimestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class CommandContext(BaseModel):
    request_id: str | None = Field(default=None, description="Server-side request id (a uuid4).")
    pipeline_id: str | None = Field(default=None, description="The pipeline the command concerned.")


class CommandResponse(_Open):
    status: str = Field(description="'success' (failures are raised, or answered with an error body).")
    context: CommandContext = Field(description="Request id and pipeline id of the command.")


class ListPipelinesResponse(CommandResponse):
    pipelines: list[str] = Field(description="Ids of the pipelines that have not finished.")


class StatusUpdate(_Open):
    timestamp: IsoTimestamp
    severity: int = Field(description="A logging level: 20 info, 30 warning, 40 error.")
    event_type: str
    payload: dict[str, Any] = {}
    context: str | None = None


class LatencyReport(_Open):
    source_id: int | None = None
    frame_decoding_latency: float | None = Field(default=None, description="Seconds, recent average.")
    inference_latency: float | None = Field(default=None, description="Seconds, recent average.")
    e2e_latency: float | None = Field(default=None, description="Seconds from decode to result, recent average.")


class SourceMetadata(_Open):
    source_id: int | None = None
    source_reference: str | None = Field(default=None, description="The video reference, credentials redacted.")
    state: str | None = None
    source_properties: dict[str, Any] | None = None
    buffer_size: int | None = None
    buffer_filling_strategy: str | None = None
    buffer_consumption_strategy: str | None = None


class StatusReport(_Open):
    video_source_status_updates: list[StatusUpdate] = []
    latency_reports: list[LatencyReport] = []
    inference_throughput: float = Field(default=0.0, description="Frames per second over the recent past.")
    sources_metadata: list[SourceMetadata] = []
    pipeline_state: str | None = Field(default=None, description="The manager's record state of the pipeline.")
    restarts: int | None = None
    last_error: str | None = None
    results_dropped: int | None = Field(default=None, description="Results trimmed from the buffer unread.")


class StatusResponse(CommandResponse):
    report: StatusReport


class FrameMetadata(_Open):
    frame_timestamp: IsoTimestamp
    frame_id: int
    source_id: int | None = None


Output = dict[str, Any] | None  # one source's prediction; None where that source had no frame


class ConsumedEntry(BaseModel):
    outputs: list[Output]
    frames_metadata: list[FrameMetadata | None]


class ConsumeResponse(CommandResponse):
    outputs: list[Output] = Field(description="The oldest unread result, one item per source (null: no frame).")
    frames_metadata: list[FrameMetadata | None] = Field(description="Aligned with outputs.")
    entries: list[ConsumedEntry] | None = Field(
        default=None, description="Every result read, oldest first, when more than one was asked for.")
    dropped: int | None = Field(default=None, description="Results trimmed unread since the last consume.")
    remaining: int | None = Field(default=None, description="Results still buffered after this read.")


class InitialiseWebRTCResponse(CommandResponse):
    sdp: str
    type: str


class WorkflowSummary(_Open):
    workspace_name: str
    workflow_id: str
    updated_at: IsoTimestamp = Field(description="When it was last put (a file's modification time).")


class ListWorkflowsResponse(CommandResponse):
    workflows: list[WorkflowSummary] = Field(description="Named workflows, by workspace and id.")


class WorkflowResponse(CommandResponse):
    workspace_name: str
    workflow_id: str
    specification: dict[str, Any] = Field(description="The Workflows definition, as it was put.")
    updated_at: IsoTimestamp


class PutWorkflowResponse(CommandResponse):
    workspace_name: str
    workflow_id: str
    created: bool = Field(description="True when the name was new, false when its definition was replaced.")
    updated_at: IsoTimestamp


class WorkerDrain(_Open):
    """A drain's progress (our extension: rolling upgrades, ``services.manager.drain``)."""

    requested_at: float = Field(description="Unix time the drain was requested.")
    pipelines_left: int = Field(description="Pipelines still running on the worker (movable or not).")
    movable_left: int = Field(description="Of which pipelines the drain will still move.")
    moving: str | None = Field(default=None, description="The pipeline being handed over right now.")
    moved: int = Field(default=0, description="Pipelines handed over to other workers so far.")
    last_move_s: float | None = Field(default=None, description="Seconds the last hand-over took "
                                                                "(its restart to RUNNING on another worker).")
    waiting: str | None = Field(default=None, description="Why the drain does not progress right now.")
    unmovable: list[str] = Field(default=[], description="Pipelines that cannot move (WebRTC): left running.")
    done: bool = Field(description="The worker takes no task and runs no movable pipeline: it can be stopped.")


class WorkerInfo(_Open):
    hostname: str = Field(description="The worker's Celery node name, as registered.")
    registered: bool = Field(description="False for a drained worker that is not running (e.g. being upgraded).")
    draining: bool
    pipelines: int = Field(description="Pipelines its tasks run (claimed, not over).")
    queues: list[str] = []
    device: str | None = None
    concurrency: int | None = None
    busy_slots: int | None = None
    free_slots: int | None = None
    format_version: str | None = Field(default=None, description="Its registration's format version.")
    consuming: bool | None = Field(default=None, description="Whether it takes tasks from its queues (null: a "
                                                             "worker too old to say; it cannot drain).")
    drain: WorkerDrain | None = None


class ListWorkersResponse(CommandResponse):
    workers: list[WorkerInfo] = Field(description="Registered and drained workers, by hostname.")


class WorkerResponse(CommandResponse):
    worker: WorkerInfo


# The reference's names for the same shapes.
InferencePipelineStatusResponse = StatusResponse
ConsumePipelineResponse = ConsumeResponse
InitializeWebRTCPipelineResponse = InitialiseWebRTCResponse


def context_of(envelope: dict[str, Any]) -> CommandContext:
    return CommandContext(request_id=envelope.get("request_id"), pipeline_id=envelope.get("pipeline_id"))
