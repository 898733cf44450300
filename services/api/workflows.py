"""Named workflows under ``/workflows``: put, list, get and delete Workflows definitions the manager stores.

Our extension (the reference has no such routes), in the newer generation's style: newer error bodies,
typed responses. Each route is one manager command (``put_workflow``, ``list_workflows``, ``get_workflow``,
``delete_workflow``); the manager checks the names and compiles a definition before it stores it.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.api.errors import NewerErrorBody, error_responses
from services.api.inputs import json_object
from services.api.openapi import documented_body
from services.api.payloads import WorkflowDefinition
from services.api.routing import NewerRoute
from services.client.models import (
    CommandResponse,
    ListWorkflowsResponse,
    PutWorkflowResponse,
    WorkflowResponse,
)
from services.client.tcp import AsyncManagerClient

_COMMON = (401, 500, 502, 503)
_LIST_ERRORS = error_responses(NewerErrorBody, *_COMMON)
# 400: an invalid name (or definition); 422 stands where FastAPI would document its own validation body.
_WORKSPACE_ERRORS = error_responses(NewerErrorBody, 400, 422, *_COMMON)
_GET_ERRORS = error_responses(NewerErrorBody, 400, 404, 422, *_COMMON)
_PUT_ERRORS = error_responses(NewerErrorBody, 400, 403, 413, 422, *_COMMON)  # writes: cross-origin, body size
_DELETE_ERRORS = error_responses(NewerErrorBody, 400, 403, 404, 413, 422, *_COMMON)
_PUT_BODY = documented_body(WorkflowDefinition, "The Workflows definition itself (a JSON object), stored as given.")

Definition = Annotated[dict[str, Any], Depends(json_object)]


def workflows_router(client: AsyncManagerClient) -> APIRouter:
    router = APIRouter(prefix="/workflows", route_class=NewerRoute, tags=["named workflows"])

    @router.get("", response_model=ListWorkflowsResponse, summary="List named workflows",
                responses=_LIST_ERRORS)
    async def list_workflows() -> ListWorkflowsResponse:
        return await client.list_workflows()

    @router.get("/{workspace_name}", response_model=ListWorkflowsResponse,
                summary="List the named workflows of one workspace", responses=_WORKSPACE_ERRORS)
    async def list_workspace(workspace_name: str) -> ListWorkflowsResponse:
        return await client.list_workflows(workspace_name)

    @router.get("/{workspace_name}/{workflow_id}", response_model=WorkflowResponse,
                summary="Get a named workflow's definition", responses=_GET_ERRORS)
    async def get_workflow(workspace_name: str, workflow_id: str) -> WorkflowResponse:
        return await client.get_workflow(workspace_name, workflow_id)

    @router.put("/{workspace_name}/{workflow_id}", response_model=PutWorkflowResponse,
                summary="Store (or replace) a named workflow",
                description="The body is the definition. It is compiled first: an invalid one is 400 with the "
                            "JSON path of the problem. INITs then name it with `workspace_name` + `workflow_id`.",
                responses=_PUT_ERRORS, openapi_extra=_PUT_BODY)
    async def put_workflow(workspace_name: str, workflow_id: str, definition: Definition) -> PutWorkflowResponse:
        return await client.put_workflow(workspace_name, workflow_id, definition)

    @router.delete("/{workspace_name}/{workflow_id}", response_model=CommandResponse,
                   summary="Delete a named workflow", responses=_DELETE_ERRORS)
    async def delete_workflow(workspace_name: str, workflow_id: str) -> CommandResponse:
        return await client.delete_workflow(workspace_name, workflow_id)

    return router
