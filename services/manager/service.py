"""The manager as one object: Redis client, handlers, TCP server and reaper, started and stopped together."""

import asyncio
import logging

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from services.core import keys
from services.infra.pipelined_redis import PipelinedConnection
from services.infra.redis_connect import bounded_async_client
from services.infra.tracked_keys import TrackedKeys
from services.manager.control import Controller
from services.manager.cursor import ResultsCursor
from services.manager.dispatch import CeleryDispatcher, Dispatcher
from services.manager.handlers import Handlers, Services
from services.manager.metrics import ManagerMetrics, MetricsEndpoint, serve_metrics
from services.manager.reaper import Reaper
from services.manager.server import StreamManagerServer
from services.manager.settings import ManagerSettings
from services.manager.store import PipelineStore
from services.manager.workflow_directory import WorkflowDirectory
from services.manager.workflow_store import WorkflowStore
from services.manager.workflows import WorkflowRegistry

logger = logging.getLogger(__name__)

STOP_GRACE = 2.0  # seconds a background task gets to finish when the manager stops
REAPER_POOL_SIZE = 2  # the reaper's own Redis connections (it runs one sweep at a time)


def redis_client(settings: ManagerSettings, max_connections: int) -> Redis:
    """A Redis client of the manager, bounded so a request during an outage is answered, not hung.

    The manager has three (``ManagerService``): one for requests, one for the blocking waits for a
    task's reply, one for the reaper (and LIST and STATUS read on one pipelined connection made from
    the requests' pool settings, :mod:`services.infra.pipelined_redis`). One shared pool let the
    waits (a BLPOP holds its connection for seconds) take every connection under load: requests then
    waited for one, and the reaper's sweep failed on the pool's timeout and was logged as a Redis outage.

    Every call is bounded by the socket and connect timeouts. A connection error is retried at most
    twice within 0.3 s (a pooled connection broken by a Redis restart is replaced transparently; a
    stopped Redis is reported after ≈ 0.3 s, measured). A timeout is not retried: with redis-py's
    default, which retries it too, a hung Redis (SIGSTOP) cost several socket timeouts per call and
    the reply was the handler's "the request timed out" after 10 s, at the client's own deadline;
    now it is "Redis is unavailable: TimeoutError ..." after one socket timeout (5 s, measured).

    ``MANAGER_REDIS_URL`` may name a Sentinel-managed master (``services.infra.redis_connect``): the
    pool is bounded the same way (a Sentinel pool on top of the blocking one), and a connection broken
    by a failover is replaced by one to the promoted master; requests during the failover (seconds)
    are answered "Redis is unavailable".
    """
    return bounded_async_client(
        settings.redis_target(),
        # redis-py's default pool raises MaxConnectionsError beyond 100 connections in use, which answered
        # internal_error to clients under load (1,000 concurrent clients, tests/benchmarks/load.py): a request
        # now waits its turn for a free connection, bounded by its handler's own timeout.
        max_connections=max_connections,
        timeout=settings.handler_timeout,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=2, supported_errors=(RedisConnectionError,)),
    )


async def _ended(task: "asyncio.Task[None]", name: str) -> None:
    """Returns once ``task`` has ended: it gets ``STOP_GRACE`` to end by itself, then is cancelled, again every
    ``STOP_GRACE`` while it runs on (a cancellation landing inside a redis.asyncio call can be swallowed on
    Python 3.11). Its every Redis call is bounded by the client's timeouts, so this ends.

    Waiting it out is what keeps its Redis client safe to close: a task that outlived the wait (two rounds of
    2 s, on a loaded host) went on to release the reaper lease on a connection opened after its client was
    closed, left open when the event loop closed (a socket finalised unclosed, tests/manager, CI)."""
    if (await asyncio.wait([task], timeout=STOP_GRACE))[0]:
        return
    while not task.done():
        logger.info("the %s did not stop within %g s: cancelled", name, STOP_GRACE)
        task.cancel()
        await asyncio.wait([task], timeout=STOP_GRACE)


class ManagerService:
    def __init__(self, settings: ManagerSettings, dispatcher: Dispatcher | None = None) -> None:
        self.settings = settings
        self._redis = redis_client(settings, settings.redis_pool_size)
        self._blocking = redis_client(settings, settings.redis_blocking_pool_size)  # reply waits (BLPOP)
        self._reaper_redis = redis_client(settings, REAPER_POOL_SIZE)
        self._celery: CeleryDispatcher | None = None
        if dispatcher is None:
            dispatcher = self._celery = CeleryDispatcher(settings.redis_target(), settings.redis_socket_timeout,
                                                         settings.redis_connect_timeout)
        # LIST and STATUS read on one pipelined connection of their own (services.infra.pipelined_redis).
        self._hot = PipelinedConnection(self._redis.connection_pool, settings.redis_socket_timeout)
        # LIST is read again only once the index has changed (services.infra.tracked_keys).
        self._index = TrackedKeys(self._redis.connection_pool, keys.pipelines_index())
        store = PipelineStore(self._redis, settings.finished_ttl, self._hot, self._index)
        services = Services(
            redis=self._redis,
            blocking=self._blocking,
            store=store,
            cursor=ResultsCursor(self._redis),
            controller=Controller(self._redis, settings.command_timeout, self._blocking),
            dispatcher=dispatcher,
            workflows=WorkflowRegistry(WorkflowStore(self._redis), WorkflowDirectory(settings.workflows_directory),
                                       settings.max_workflow_bytes),
        )
        self.metrics = ManagerMetrics()
        self.metrics_endpoint: MetricsEndpoint | None = None  # started with the server when a port is set
        self.server = StreamManagerServer(settings, Handlers(settings, services), self.metrics)
        self.reaper = Reaper(settings, PipelineStore(self._reaper_redis, settings.finished_ttl, index=self._index),
                             dispatcher, self._reaper_redis, on_sweep=self.metrics.reaper_swept)
        self.metrics.watch_lease(lambda: self.reaper.lease.held)
        self._reaper_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        self._index.start()
        await self.server.start()
        if self.settings.metrics_port is not None:
            self.metrics_endpoint = serve_metrics(self.metrics, self.settings.metrics_host, self.settings.metrics_port)
        self._stopping.clear()
        self._reaper_task = asyncio.create_task(self.reaper.run(self._stopping), name="reaper")

    async def stop(self) -> None:
        self._stopping.set()
        if self._reaper_task is not None:
            task, self._reaper_task = self._reaper_task, None
            await _ended(task, "reaper")  # before its Redis client closes: see _ended
        await self.server.close()
        if self.metrics_endpoint is not None:
            await asyncio.to_thread(self.metrics_endpoint.close)
            self.metrics_endpoint = None
        await self._hot.aclose()
        await self._index.aclose()
        for client in (self._redis, self._blocking, self._reaper_redis):
            await client.aclose()
        if self._celery is not None:
            await asyncio.to_thread(self._celery.close)
        logger.info("stream manager stopped")
