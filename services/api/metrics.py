"""``GET /metrics``: the cluster's pipelines and workers in the Prometheus text format, read from Redis per scrape.

The API is the one place Prometheus scrapes for pipeline metrics (tasks come and go on workers it
cannot reach); the manager serves its own control-plane metrics (``MANAGER_METRICS_PORT``). Redis is
``API_REDIS_URL``: unset or unreachable, the answer is still 200 with ``vsim_metrics_redis_up 0``, so
an alert can tell "no pipelines" from "cannot see them". A plain Starlette route: the body is not
JSON and is not part of the OpenAPI document.
"""

import logging
import time

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from services.api.collector import ClusterCollector
from services.api.scrape import ClusterReader, ClusterSnapshot
from services.api.settings import ApiSettings
from services.core.redaction import redact_text
from services.infra.redis_connect import async_client

logger = logging.getLogger(__name__)

SCRAPE_TIMEOUT = 5.0  # seconds for each Redis call of a scrape (Prometheus' default scrape timeout is 10 s)


class ClusterMetrics:
    """Reads and renders the metrics. The Redis client is made on first use, in the server's event
    loop (redis.asyncio binds its connections to one loop), and closed by :meth:`aclose`."""

    def __init__(self, settings: ApiSettings) -> None:
        self._redis_url = settings.redis_url
        self._redis: Redis | None = None
        self._reader: ClusterReader | None = None
        self._failing = False

    async def snapshot(self) -> ClusterSnapshot:
        if self._redis_url is None:
            return ClusterSnapshot(time.time(), redis_up=False)
        if self._reader is None:
            self._redis = async_client(self._redis_url.get_secret_value(), "API_REDIS_URL",
                                       socket_timeout=SCRAPE_TIMEOUT, socket_connect_timeout=SCRAPE_TIMEOUT)
            self._reader = ClusterReader(self._redis)
        try:
            snapshot = await self._reader.read()
        except (RedisError, OSError) as exc:
            if not self._failing:  # once per outage: Prometheus scrapes every few seconds
                secret = self._redis_url.get_secret_value()
                logger.warning("metrics: Redis unreadable: %s", redact_text(str(exc), (secret,)))
            self._failing = True
            return ClusterSnapshot(time.time(), redis_up=False)
        self._failing = False
        return snapshot

    async def render(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ClusterCollector(await self.snapshot()))
        return generate_latest(registry)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis, self._reader = None, None


def add_metrics_route(app: FastAPI, metrics: ClusterMetrics) -> None:
    async def endpoint(_: Request) -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_route("/metrics", endpoint, methods=["GET"], include_in_schema=False)
