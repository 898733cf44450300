"""The newer generation's routes, under ``/inference_pipelines``, with the reference's newer error bodies.

Unknown pipeline ids are 404 for every command here, terminate included (the reference says 400).
"""

from fastapi import APIRouter

from services.api.errors import NewerErrorBody, error_responses
from services.api.inputs import ConsumeParameters, InitPayload
from services.api.openapi import documented_body
from services.api.payloads import InitialiseWebRTCPayload, NewerInitialisePayload
from services.api.routing import NewerRoute
from services.client.models import (
    CommandResponse,
    ConsumeResponse,
    InitialiseWebRTCResponse,
    ListPipelinesResponse,
    StatusResponse,
)
from services.client.tcp import AsyncManagerClient

_COMMON = (401, 500, 502, 503)
_LIST_ERRORS = error_responses(NewerErrorBody, *_COMMON)
_PIPELINE_ERRORS = error_responses(NewerErrorBody, 404, 422, *_COMMON)
_INIT_ERRORS = error_responses(NewerErrorBody, 400, 403, 413, 422, *_COMMON)
_COMMAND_ERRORS = error_responses(NewerErrorBody, 403, 404, 413, 422, *_COMMON)  # POSTs: cross-origin, body size
_INIT_BODY = documented_body(NewerInitialisePayload, "An INIT payload (the manager also accepts the older form).")
_WEBRTC_BODY = documented_body(InitialiseWebRTCPayload, "An INIT payload with a WebRTC offer.")


def newer_router(client: AsyncManagerClient) -> APIRouter:
    router = APIRouter(prefix="/inference_pipelines", route_class=NewerRoute, tags=["inference pipelines"])

    @router.get("/list", response_model=ListPipelinesResponse, summary="List active InferencePipelines",
                responses=_LIST_ERRORS)
    async def list_pipelines() -> ListPipelinesResponse:
        return await client.list_pipelines()

    @router.get("/{pipeline_id}/status", response_model=StatusResponse, summary="Get status of InferencePipeline",
                responses=_PIPELINE_ERRORS)
    async def get_status(pipeline_id: str) -> StatusResponse:
        return await client.status(pipeline_id)

    @router.post("/initialise", response_model=CommandResponse, summary="Starts new InferencePipeline",
                 description="`context.pipeline_id` is the new pipeline's id, also in a failure's body.",
                 responses=_INIT_ERRORS, openapi_extra=_INIT_BODY)
    async def initialise(payload: InitPayload) -> CommandResponse:
        return await client.initialise(payload)

    @router.post("/initialise_webrtc", response_model=InitialiseWebRTCResponse,
                 summary="Starts new InferencePipeline consuming a WebRTC video track",
                 description="The worker running the pipeline answers the offer; the reply carries its SDP answer. The "
                             "pipeline ends when the peer closes or sends nothing for webrtc_peer_timeout.",
                 responses=_INIT_ERRORS, openapi_extra=_WEBRTC_BODY)
    async def initialise_webrtc(payload: InitPayload) -> InitialiseWebRTCResponse:
        return await client.initialise_webrtc(payload)

    @router.post("/{pipeline_id}/pause", response_model=CommandResponse, summary="Pauses the InferencePipeline",
                 description="Mutes the pipeline: sources keep being read, no results are produced.",
                 responses=_COMMAND_ERRORS)
    async def pause(pipeline_id: str) -> CommandResponse:
        return await client.pause(pipeline_id)

    @router.post("/{pipeline_id}/resume", response_model=CommandResponse, summary="Resumes the InferencePipeline",
                 responses=_COMMAND_ERRORS)
    async def resume(pipeline_id: str) -> CommandResponse:
        return await client.resume(pipeline_id)

    @router.post("/{pipeline_id}/terminate", response_model=CommandResponse,
                 summary="Terminates the InferencePipeline", responses=_COMMAND_ERRORS)
    async def terminate(pipeline_id: str) -> CommandResponse:
        return await client.terminate(pipeline_id)

    @router.get("/{pipeline_id}/consume", response_model=ConsumeResponse, summary="Consumes InferencePipeline result",
                description="The oldest unread result; options in a JSON body (as the reference sends them, on "
                            "a GET) or in the query. `frames_metadata` items are null for sources without a frame.",
                responses=_PIPELINE_ERRORS)
    async def consume(pipeline_id: str, options: ConsumeParameters) -> ConsumeResponse:
        return await client.consume(pipeline_id, options.excluded_fields, options.max_entries)

    return router
