"""The dashboard: one page served by the API that shows every pipeline and drives it.

``GET /dashboard`` is a static page (HTML, vanilla JS and CSS from ``services/api/static/``, no
build step, nothing loaded from elsewhere) that polls ``GET /dashboard/api/pipelines`` and draws
what it reads: each pipeline's device, owner worker, state, restarts, last error and sources, and
its throughput and latency over the last minutes (sparklines kept by the page). Its buttons and its
form call the API's own newer routes (pause, resume, terminate, initialise), and each pipeline's
``<img>`` shows ``GET /inference_pipelines/{id}/preview.jpg``: the latest annotated frame that the
worker publishes into Redis (``keys.pipeline_preview``), which needs ``API_REDIS_URL``. Its webcam
view (``/dashboard#webcam``) is a WebRTC client of ``POST /inference_pipelines/initialise_webrtc``: the
camera goes to a worker, the workflow's video and data-channel messages come back to the browser
directly (the CSP needs nothing more: a ``MediaStream`` shown through ``srcObject`` is not a fetch).

The snapshot costs one manager ``list_pipelines``, one ``status`` per pipeline (concurrently; the
manager answers those from the report the task stored within the last second) and, with Redis,
one pipelined script per pipeline that reads its record's device and owner, marks it watched and
says whether a preview exists. Like every route, nothing is kept between requests. The page escapes
everything it shows (it builds its DOM with ``textContent``); the source references it shows are the
redacted ones of the status report.

Previews are drawn only while someone looks: listing a pipeline on the dashboard and reading its
preview both mark it watched (``keys.pipeline_preview_watched``, ``PREVIEW_WATCH_TTL`` seconds, only
for a pipeline that has a record), and the owning task draws and publishes only while the mark is
there. A read that finds no preview while the watch is less than ``FIRST_PREVIEW_WAIT`` old waits for
the first one (it comes within about one ``WORKER_PREVIEW_INTERVAL``) instead of answering 404 at once.
"""

import asyncio
import logging
import time
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from services.api.errors import NewerErrorBody, error_responses
from services.api.routing import NewerRoute
from services.api.settings import ApiSettings
from services.client.errors import ProcessesManagerClientError, ProcessesManagerNotFoundError
from services.client.models import StatusReport
from services.client.tcp import AsyncManagerClient
from services.core import keys
from services.core.redaction import redact_text
from services.infra.redis_connect import async_client

logger = logging.getLogger(__name__)

STATUS_CONCURRENCY = 16  # status commands in flight at once for one snapshot
# The page's own files: name -> media type. Nothing else is served from the folder.
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
# The page loads its script, style, data and previews from this API only, and nothing may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' blob:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
JPEG_SCHEMA = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}
FIRST_PREVIEW_WAIT = 2.5  # seconds a preview read waits for the first preview of a watch that is this young
FIRST_PREVIEW_POLL = 0.1  # seconds between two reads meanwhile

# KEYS: record, watched, preview. ARGV: watch TTL (s), '1' for the JPEG itself, else whether there is one.
# Marks the pipeline watched; false (nothing written) without a record, else {the watch's PTTL before this
# call (-2: not watched), the JPEG or false | 1 or 0}.
_WATCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local before = redis.call('PTTL', KEYS[2])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
if ARGV[2] == '1' then return {before, redis.call('GET', KEYS[3])} end
return {before, redis.call('EXISTS', KEYS[3])}
"""


class DashboardSource(BaseModel):
    source_id: int | None = None
    source_reference: str | None = Field(default=None, description="The video reference, credentials redacted.")
    state: str | None = None
    frames_decoded: int | None = Field(default=None, description="Frames decoded so far (the page derives fps).")
    nominal_fps: float | None = Field(default=None, description="The source's own frame rate, when it reports one.")
    frame_decoding_latency: float | None = Field(default=None, description="Seconds, recent average.")
    inference_latency: float | None = Field(default=None, description="Seconds, recent average.")
    e2e_latency: float | None = Field(default=None, description="Seconds from decode to result, recent average.")


class DashboardPipeline(BaseModel):
    pipeline_id: str
    device: str | None = Field(default=None, description="The device queue it runs on (needs API_REDIS_URL).")
    owner: str | None = Field(default=None, description="The worker process running it ('host:pid').")
    pipeline_state: str | None = None
    restarts: int | None = None
    last_error: str | None = None
    inference_throughput: float | None = Field(default=None, description="Frames per second, recent.")
    frames_processed: int | None = None
    reported_at: float | None = Field(default=None, description="Unix time the worker wrote the report.")
    sources: list[DashboardSource] = []
    has_preview: bool = Field(default=False, description="A preview JPEG is available right now.")
    error: str | None = Field(default=None, description="Why its status could not be read, if it could not.")


class DashboardSnapshot(BaseModel):
    pipelines: list[DashboardPipeline] = Field(description="The listed pipelines, in the manager's order.")
    previews: bool = Field(description="Whether this API can serve previews (API_REDIS_URL is set and answers).")
    redis_error: str | None = Field(default=None, description="Why Redis could not be read, if it could not.")
    generated_at: float = Field(description="Unix time of the snapshot.")


class Dashboard:
    """The dashboard's routes and the Redis client they share (made on first use, in the server's
    loop; closed by :meth:`aclose`)."""

    def __init__(self, client: AsyncManagerClient, settings: ApiSettings) -> None:
        self._client = client
        self._redis_url = settings.redis_url
        self._timeout = settings.readiness_timeout
        self._redis: Redis | None = None
        self._watch_script: AsyncScript | None = None

    def router(self) -> APIRouter:
        router = APIRouter(route_class=NewerRoute)

        @router.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse("dashboard")  # relative: also right behind a proxy's path prefix

        @router.get("/dashboard", include_in_schema=False)
        async def page() -> Response:
            return Response(_asset("dashboard.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

        @router.get("/dashboard/static/{name}", include_in_schema=False)
        async def asset(name: str) -> Response:
            if name not in ASSETS:
                raise HTTPException(404, f"no dashboard file {name!r}")
            return Response(_asset(name), media_type=ASSETS[name], headers=PAGE_HEADERS)

        @router.get("/dashboard/api/pipelines", response_model=DashboardSnapshot, tags=["dashboard"],
                    summary="Every listed pipeline with its device, owner, state, sources and metrics",
                    responses=error_responses(NewerErrorBody, 401, 500, 502, 503))
        async def snapshot() -> DashboardSnapshot:
            return await self.snapshot()

        @router.get("/inference_pipelines/{pipeline_id}/preview.jpg", response_class=Response,
                    tags=["inference pipelines"], summary="Latest annotated frame of the InferencePipeline",
                    description="A small JPEG (about 480 px wide) of the pipeline's latest frame with its "
                                "boxes and class labels, refreshed by the worker about once a second while "
                                "the pipeline runs (`WORKER_PREVIEW_INTERVAL`) and someone looks: each read "
                                "keeps previews coming for 10 s, and the first read waits up to 2.5 s for "
                                "the first one. 404 when there is none: unknown, muted or ended for a few "
                                "seconds, or previews disabled. Needs `API_REDIS_URL`.",
                    responses={200: {"content": JPEG_SCHEMA, "description": "The JPEG."},
                               **error_responses(NewerErrorBody, 404, 422, 500, 503)})
        async def preview(pipeline_id: str) -> Response:
            return Response(await self.preview(pipeline_id), media_type="image/jpeg",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

        return router

    async def snapshot(self) -> DashboardSnapshot:
        listed = await self._client.list_pipelines()
        gate = asyncio.Semaphore(STATUS_CONCURRENCY)

        async def status(pipeline_id: str) -> DashboardPipeline | None:
            async with gate:
                try:
                    report = (await self._client.status(pipeline_id)).report
                except ProcessesManagerNotFoundError:  # it ended between the list and the status
                    return None
                except ProcessesManagerClientError as exc:
                    return DashboardPipeline(pipeline_id=pipeline_id, error=str(exc))
            return _pipeline(pipeline_id, report)

        pipelines = [p for p in await asyncio.gather(*(status(i) for i in listed.pipelines)) if p is not None]
        redis_error = await self._add_records(pipelines) if self._redis_url is not None else None
        return DashboardSnapshot(pipelines=pipelines, previews=self._redis_url is not None and redis_error is None,
                                 redis_error=redis_error, generated_at=time.time())

    async def preview(self, pipeline_id: str) -> bytes:
        """The pipeline's latest preview, marking it watched; waits for the first one of a young watch."""
        if self._redis_url is None:
            raise HTTPException(503, "previews need the API to read Redis: set API_REDIS_URL")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_PREVIEW_WAIT
        young: bool | None = None  # whether the watch began less than FIRST_PREVIEW_WAIT ago
        while True:
            try:
                found = await asyncio.wait_for(self._watch(pipeline_id, image=True), self._timeout)
            except (RedisError, OSError, TimeoutError) as exc:
                raise HTTPException(503, self._redis_failure(exc)) from exc
            if found and isinstance(found[1], bytes):
                return found[1]
            if young is None and found:
                young = int(found[0]) < 0 or int(found[0]) > 1000 * (keys.PREVIEW_WATCH_TTL - FIRST_PREVIEW_WAIT)
            if not young or loop.time() + FIRST_PREVIEW_POLL > deadline:
                raise HTTPException(404, f"no preview of pipeline {pipeline_id} (unknown, muted, ended or "
                                         "previews disabled on its worker)")
            await asyncio.sleep(FIRST_PREVIEW_POLL)

    async def _watch(self, pipeline_id: str, image: bool, pipe: Any = None) -> Any:
        """The watch script's reply, or with ``pipe`` the script queued on that pipeline."""
        connection = self._connection()
        assert self._watch_script is not None
        names = [keys.pipeline_record(pipeline_id), keys.pipeline_preview_watched(pipeline_id),
                 keys.pipeline_preview(pipeline_id)]
        return await self._watch_script(keys=names, args=[keys.PREVIEW_WATCH_TTL, int(image)],
                                        client=pipe if pipe is not None else connection)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _add_records(self, pipelines: list[DashboardPipeline]) -> str | None:
        """Adds each record's device and owner, and whether a preview exists; why Redis failed, or None."""
        if not pipelines:
            return None
        try:
            async with self._connection().pipeline(transaction=False) as pipe:
                for pipeline in pipelines:
                    pipe.hmget(keys.pipeline_record(pipeline.pipeline_id), ["device", "owner"])
                    await self._watch(pipeline.pipeline_id, image=False, pipe=pipe)  # the page shows every preview
                replies = await asyncio.wait_for(pipe.execute(), self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            return self._redis_failure(exc)
        for index, pipeline in enumerate(pipelines):
            device, owner = replies[2 * index]
            pipeline.device = _text(device) or pipeline.device
            pipeline.owner = _text(owner) or pipeline.owner
            watched = replies[2 * index + 1]
            pipeline.has_preview = bool(watched and int(watched[1]))
        return None

    def _connection(self) -> Redis:
        if self._redis is None:
            assert self._redis_url is not None
            self._redis = async_client(self._redis_url.get_secret_value(), "API_REDIS_URL",
                                       socket_timeout=self._timeout, socket_connect_timeout=self._timeout)
            self._watch_script = self._redis.register_script(_WATCH)
        return self._redis

    def _redis_failure(self, exc: BaseException) -> str:
        secret = self._redis_url.get_secret_value() if self._redis_url is not None else ""
        message = redact_text(f"redis unreachable: {exc or type(exc).__name__}", (secret,) if secret else ())
        logger.warning("dashboard: %s", message)
        return message


def _pipeline(pipeline_id: str, report: StatusReport) -> DashboardPipeline:
    extra: dict[str, Any] = report.model_extra or {}
    latencies = {latency.source_id: latency for latency in report.latency_reports}
    sources = []
    for index, source in enumerate(report.sources_metadata):
        source_id = source.source_id if source.source_id is not None else index
        latency = latencies.get(source_id)
        source_extra: dict[str, Any] = source.model_extra or {}
        properties = source.source_properties or {}
        sources.append(DashboardSource(
            source_id=source_id, source_reference=source.source_reference, state=source.state,
            frames_decoded=_number(source_extra.get("frames_decoded"), int),
            nominal_fps=_number(properties.get("fps"), float),
            frame_decoding_latency=latency.frame_decoding_latency if latency else None,
            inference_latency=latency.inference_latency if latency else None,
            e2e_latency=latency.e2e_latency if latency else None,
        ))
    owner = extra.get("owner")
    return DashboardPipeline(
        pipeline_id=pipeline_id, owner=owner if isinstance(owner, str) and owner else None,
        pipeline_state=report.pipeline_state, restarts=report.restarts, last_error=report.last_error,
        inference_throughput=report.inference_throughput,
        frames_processed=_number(extra.get("frames_processed"), int),
        reported_at=_number(extra.get("reported_at"), float), sources=sources,
    )


def _number(value: object, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind(value)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace") or None
    return value if isinstance(value, str) and value else None


@cache
def _asset(name: str) -> bytes:
    return files("services.api").joinpath("static", name).read_bytes()
