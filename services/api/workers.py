"""Workers under ``/workers``: list them, drain one and end its drain (rolling upgrades).

Our extension (the reference has no such routes), in the newer generation's style: newer error bodies,
typed responses. Each route is one manager command (``list_workers``, ``drain_worker``,
``undrain_worker``; see ``services.manager.drain``): ``POST /workers/{hostname}/drain`` stops the worker
taking new pipelines and moves its pipelines to other workers one at a time, ``DELETE`` on the same
path ends the drain, ``GET /workers`` shows every worker with its pipelines and its drain's progress.
An unknown worker is 404.
"""

from fastapi import APIRouter

from services.api.errors import NewerErrorBody, error_responses
from services.api.routing import NewerRoute
from services.client.models import ListWorkersResponse, WorkerResponse
from services.client.tcp import AsyncManagerClient

_COMMON = (401, 500, 502, 503)
_LIST_ERRORS = error_responses(NewerErrorBody, *_COMMON)
# 400: a hostname the manager refuses (characters); 403/413: writes (cross-origin, body size).
_DRAIN_ERRORS = error_responses(NewerErrorBody, 400, 403, 404, 413, 422, *_COMMON)


def workers_router(client: AsyncManagerClient) -> APIRouter:
    router = APIRouter(prefix="/workers", route_class=NewerRoute, tags=["workers"])

    @router.get("", response_model=ListWorkersResponse, summary="List workers and their drains",
                description="Every registered worker, and every drained one (a drained worker that is not "
                            "running is listed with `registered: false` until its drain ends).",
                responses=_LIST_ERRORS)
    async def list_workers() -> ListWorkersResponse:
        return await client.list_workers()

    @router.post("/{hostname}/drain", response_model=WorkerResponse, summary="Drain a worker",
                 description="The worker stops taking new pipelines (admission skips it, it stops consuming its "
                             "queue) and its pipelines move to other workers one at a time, each restarted there "
                             "with a new epoch. A pipeline that cannot move (WebRTC) is left running, one no "
                             "other worker has room for waits. Progress: `drain` in the reply and in GET /workers.",
                 responses=_DRAIN_ERRORS)
    async def drain(hostname: str) -> WorkerResponse:
        return await client.drain_worker(hostname)

    @router.delete("/{hostname}/drain", response_model=WorkerResponse, summary="End a worker's drain",
                   description="The worker takes new pipelines again (pipelines already moved stay where they are).",
                   responses=_DRAIN_ERRORS)
    async def undrain(hostname: str) -> WorkerResponse:
        return await client.undrain_worker(hostname)

    return router
