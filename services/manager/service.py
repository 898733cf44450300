"""The manager as one object: Redis client, handlers, TCP server and reaper, started and stopped together."""

import asyncio
import logging

from redis.asyncio import Redis

from services.manager.control import Controller
from services.manager.cursor import ResultsCursor
from services.manager.dispatch import CeleryDispatcher, Dispatcher
from services.manager.handlers import Handlers, Services
from services.manager.reaper import Reaper
from services.manager.server import StreamManagerServer
from services.manager.settings import ManagerSettings
from services.manager.store import PipelineStore
from services.manager.workflows import WorkflowDirectory

logger = logging.getLogger(__name__)

STOP_GRACE = 2.0  # seconds a background task gets to finish when the manager stops


class ManagerService:
    def __init__(self, settings: ManagerSettings, dispatcher: Dispatcher | None = None) -> None:
        self.settings = settings
        self._redis = Redis.from_url(settings.redis_url)
        self._celery: CeleryDispatcher | None = None
        if dispatcher is None:
            dispatcher = self._celery = CeleryDispatcher(settings.redis_url)
        store = PipelineStore(self._redis, settings.finished_ttl)
        services = Services(
            redis=self._redis,
            store=store,
            cursor=ResultsCursor(self._redis),
            controller=Controller(self._redis, settings.command_timeout),
            dispatcher=dispatcher,
            resolve_workflow=WorkflowDirectory(settings.workflows_directory),
        )
        self.server = StreamManagerServer(settings, Handlers(settings, services))
        self.reaper = Reaper(settings, store, dispatcher, self._redis)
        self._reaper_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start()
        self._stopping.clear()
        self._reaper_task = asyncio.create_task(self.reaper.run(self._stopping), name="reaper")

    async def stop(self) -> None:
        self._stopping.set()
        if self._reaper_task is not None:
            await asyncio.wait([self._reaper_task], timeout=STOP_GRACE)
            self._reaper_task = None
        await self.server.close()
        await self._redis.aclose()
        if self._celery is not None:
            await asyncio.to_thread(self._celery.close)
        logger.info("stream manager stopped")
