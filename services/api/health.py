"""Liveness and readiness: ``/healthz`` answers while the process serves; ``/readyz`` checks what it needs.

Readiness asks the manager for ``list_pipelines`` (which also proves the API's token is accepted)
and, when API_REDIS_URL is set, PINGs Redis; each check has its own short timeout, and a failure
names the dependency and why, so an orchestrator's event log says what to fix.
"""

import asyncio
from collections.abc import Awaitable
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.api.routing import NewerRoute
from services.api.settings import ApiSettings
from services.client.errors import ProcessesManagerClientError
from services.client.tcp import AsyncManagerClient
from services.core.redaction import redact_text
from services.infra.redis_connect import async_client


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Check(BaseModel):
    ok: bool
    detail: str = Field(description="'ok', 'not configured', or why the dependency failed.")


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Check] = Field(description="One entry per dependency: 'manager', 'redis'.")
    failed: list[str] = Field(description="The dependencies that failed (empty when ready).")


class ReadinessProbe:
    """Checks the manager and, optionally, Redis. The Redis client is made on first use, in the
    server's event loop (redis.asyncio binds its connections to one loop), and closed by :meth:`aclose`."""

    def __init__(self, client: AsyncManagerClient, settings: ApiSettings) -> None:
        self._client = client
        self._timeout = settings.readiness_timeout
        self._redis_url = settings.redis_url
        self._redis: Redis | None = None

    async def check(self) -> Readiness:
        manager, redis = await asyncio.gather(self._check_manager(), self._check_redis())
        checks = {"manager": manager, "redis": redis}
        failed = [name for name, check in checks.items() if not check.ok]
        return Readiness(status="not_ready" if failed else "ready", checks=checks, failed=failed)

    async def _check_manager(self) -> Check:
        try:
            await self._client.call({"type": "list_pipelines"}, timeout=self._timeout)
        except ProcessesManagerClientError as exc:
            return Check(ok=False, detail=str(exc))
        return Check(ok=True, detail="ok")

    async def _check_redis(self) -> Check:
        if self._redis_url is None:
            return Check(ok=True, detail="not configured")
        if self._redis is None:
            self._redis = async_client(self._redis_url.get_secret_value(), "API_REDIS_URL",
                                       socket_timeout=self._timeout, socket_connect_timeout=self._timeout)
        try:
            await asyncio.wait_for(_awaited(self._redis.ping()), self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            secret = self._redis_url.get_secret_value()
            return Check(ok=False, detail=redact_text(f"redis unreachable: {exc or type(exc).__name__}", (secret,)))
        return Check(ok=True, detail="ok")

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


async def _awaited(result: Awaitable[object] | object) -> object:
    # redis-py types ping() for its sync and async clients alike; the async one returns an awaitable.
    return await result if isinstance(result, Awaitable) else result


def health_router(probe: ReadinessProbe) -> APIRouter:
    router = APIRouter(route_class=NewerRoute, tags=["health"])

    @router.get("/healthz", response_model=Health, summary="Liveness: the API process serves requests")
    async def healthz() -> Health:
        return Health()

    @router.get("/readyz", response_model=Readiness, summary="Readiness: the manager (and Redis, if set) answer",
                responses={503: {"model": Readiness, "description": "A dependency failed; `failed` names it."}})
    async def readyz() -> JSONResponse:
        readiness = await probe.check()
        return JSONResponse(readiness.model_dump(mode="json"), status_code=503 if readiness.failed else 200)

    return router
