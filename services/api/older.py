"""The older generation's routes (reference seed 000): flat paths, ``{status, message}`` error bodies."""

from fastapi import APIRouter

from services.api.errors import OlderErrorBody, error_responses
from services.api.inputs import InitPayload
from services.api.openapi import documented_body
from services.api.payloads import OlderInitialisePayload
from services.api.routing import OlderRoute
from services.client.models import CommandResponse, ListPipelinesResponse, StatusResponse
from services.client.tcp import AsyncManagerClient

_COMMON = (401, 500, 502, 503)
_LIST_ERRORS = error_responses(OlderErrorBody, *_COMMON)
_PIPELINE_ERRORS = error_responses(OlderErrorBody, 404, 422, *_COMMON)
_INIT_ERRORS = error_responses(OlderErrorBody, 400, 403, 413, 422, *_COMMON)
_COMMAND_ERRORS = error_responses(OlderErrorBody, 403, 404, 413, 422, *_COMMON)  # POSTs: cross-origin, body size
_INIT_BODY = documented_body(OlderInitialisePayload, "An INIT payload (the manager also accepts the newer form).")


def older_router(client: AsyncManagerClient) -> APIRouter:
    router = APIRouter(route_class=OlderRoute, tags=["older routes"])

    @router.get("/list_pipelines", response_model=ListPipelinesResponse, summary="List active pipelines",
                responses=_LIST_ERRORS)
    async def list_pipelines() -> ListPipelinesResponse:
        return await client.list_pipelines()

    @router.get("/status/{pipeline_id}", response_model=StatusResponse, summary="Get status of pipeline",
                responses=_PIPELINE_ERRORS)
    async def get_status(pipeline_id: str) -> StatusResponse:
        return await client.status(pipeline_id)

    @router.post("/initialise", response_model=CommandResponse, summary="Initialise the pipeline",
                 description="Starts a pipeline; `context.pipeline_id` is its id, also on failure.",
                 responses=_INIT_ERRORS, openapi_extra=_INIT_BODY)
    async def initialise(payload: InitPayload) -> CommandResponse:
        return await client.initialise(payload)

    @router.post("/pause/{pipeline_id}", response_model=CommandResponse, summary="Pauses the pipeline processing",
                 description="Mutes the pipeline: sources keep being read, no results are produced.",
                 responses=_COMMAND_ERRORS)
    async def pause(pipeline_id: str) -> CommandResponse:
        return await client.pause(pipeline_id)

    @router.post("/resume/{pipeline_id}", response_model=CommandResponse, summary="Resumes the pipeline processing",
                 responses=_COMMAND_ERRORS)
    async def resume(pipeline_id: str) -> CommandResponse:
        return await client.resume(pipeline_id)

    @router.post("/terminate/{pipeline_id}", response_model=CommandResponse,
                 summary="Terminates the pipeline processing", responses=_COMMAND_ERRORS)
    async def terminate(pipeline_id: str) -> CommandResponse:
        return await client.terminate(pipeline_id)

    return router
