"""The FastAPI application: both generations of the Stream Management API over one manager client.

Every route is a thin adapter: read the request, call the manager client (an
:class:`~services.client.AsyncManagerClient` whose commands share a bounded pool of persistent
connections, :mod:`services.api.manager_pool`; with ``API_REDIS_URL``, list and status are answered
from Redis as the manager answers them, :mod:`services.infra.pipeline_reads`), return the client's
typed model. Errors become HTTP responses in :mod:`services.api.errors`; nothing here holds pipeline
state.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.api.dashboard import Dashboard
from services.api.health import ReadinessProbe, health_router
from services.api.hot_reads import HotReads
from services.api.manager_pool import PooledManagerClient
from services.api.metrics import ClusterMetrics, add_metrics_route
from services.api.newer import newer_router
from services.api.older import older_router
from services.api.openapi import include_schemas
from services.api.payloads import (
    InitialiseWebRTCPayload,
    NewerInitialisePayload,
    OlderInitialisePayload,
    WorkflowDefinition,
)
from services.api.security import RequestGuard
from services.api.settings import ApiSettings
from services.api.workers import workers_router
from services.api.workflows import workflows_router
from services.core import keys
from services.infra.heap import freeze_startup_heap
from services.infra.pipeline_reads import StoredReads
from services.infra.pipelined_redis import PipelinedConnection
from services.infra.redis_connect import async_client
from services.infra.tracked_keys import TrackedKeys

DESCRIPTION = """\
Start, pause (mute), resume, inspect, consume and terminate video inference pipelines run by the
stream manager. Wire-compatible with both generations of Roboflow's Stream Management API: the
older flat routes (`/list_pipelines`, `/status/{id}`, `/initialise`, ...) and the newer ones under
`/inference_pipelines`. Each generation answers errors in its own body shape. Named workflows
(our extension) are stored, listed, read and deleted under `/workflows`, in the newer style, and
workers are listed and drained (rolling upgrades) under `/workers`.

When the API runs with `API_AUTH_TOKEN`, every route but `/healthz`, `/readyz`, the dashboard's
page and this documentation needs `Authorization: Bearer <API_AUTH_TOKEN>`; an INIT's `api_key`
then travels in the payload or in `X-Api-Key`. Without it, `Authorization: Bearer` carries the
`api_key` of an INIT payload that has none, as in the reference.
"""


def _version() -> str:
    try:
        return version("video-stream-inference-manager")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


READS_TIMEOUT = 2.0  # seconds: a Redis read of the stored reads (then the manager answers)


def create_app(settings: ApiSettings) -> FastAPI:
    token = settings.manager_token.get_secret_value() if settings.manager_token is not None else None
    target = settings.redis_target() if settings.stored_reads else None
    reads_redis = None if target is None else async_client(target, "API_REDIS_URL", socket_timeout=READS_TIMEOUT,
                                                           socket_connect_timeout=READS_TIMEOUT)
    # The reads go on one pipelined connection of their own (services.infra.pipelined_redis).
    hot = None if reads_redis is None else PipelinedConnection(reads_redis.connection_pool, READS_TIMEOUT)
    # LIST is read again only once the index has changed (services.infra.tracked_keys).
    index = None if reads_redis is None else TrackedKeys(reads_redis.connection_pool, keys.pipelines_index())
    reads = None if reads_redis is None else StoredReads(reads_redis, settings.status_max_age, hot, index)
    client = PooledManagerClient(settings.manager_host, settings.manager_port, timeout=settings.manager_timeout,
                                 init_timeout=settings.init_timeout, token=token, pool_size=settings.manager_pool_size,
                                 idle_timeout=settings.manager_pool_idle_timeout,
                                 max_requests=settings.manager_pool_max_requests,
                                 addresses=settings.manager_addresses or None, retry_after=settings.manager_retry_after,
                                 connect_timeout=settings.manager_connect_timeout, reads=reads)
    probe = ReadinessProbe(client, settings)
    dashboard = Dashboard(client, settings)
    metrics = ClusterMetrics(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        freeze_startup_heap()  # in each serving process: its app is built (services.infra.heap)
        if index is not None:
            index.start()
        yield
        await probe.aclose()
        await dashboard.aclose()
        await metrics.aclose()
        await client.aclose()
        if hot is not None:
            await hot.aclose()
        if index is not None:
            await index.aclose()
        if reads_redis is not None:
            await reads_redis.aclose()

    app = FastAPI(title="Stream Management API", description=DESCRIPTION, version=_version(), lifespan=lifespan)
    routers = [older_router(client), newer_router(client), workflows_router(client), health_router(probe),
               dashboard.router(), workers_router(client)]
    if reads is not None:  # inside the guard (added before it): list and status past FastAPI's routing
        app.add_middleware(HotReads, reads=reads)
    # The guard (origin, token, body size) runs inside CORS: a browser's preflight carries no token.
    app.add_middleware(RequestGuard, cors_origins=settings.cors_origins, max_body_bytes=settings.max_body_bytes,
                       token=settings.auth_token.get_secret_value() if settings.auth_token is not None else None,
                       routes=[route for router in routers for route in router.routes])
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Api-Key"])
    older, newer, workflows, health, pages, workers = routers
    app.include_router(older)
    app.include_router(newer)
    app.include_router(workflows)
    app.include_router(workers)
    app.include_router(health)
    add_metrics_route(app, metrics)
    app.include_router(pages)
    include_schemas(app, [OlderInitialisePayload, NewerInitialisePayload, InitialiseWebRTCPayload,
                          WorkflowDefinition])
    return app
