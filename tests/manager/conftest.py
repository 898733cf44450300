"""The manager under test: a real ManagerService on port 0 in its own thread, a real Redis."""

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from services.manager.dispatch import Dispatcher
from services.manager.service import ManagerService
from services.manager.settings import ManagerSettings
from tests.manager.fakes import FakeWorker
from tests.support.redis_server import RedisServer


class RunningManager:
    """A ManagerService served by an event loop in a background thread."""

    def __init__(self, settings: ManagerSettings, dispatcher: Dispatcher | None) -> None:
        self.settings = settings
        self._dispatcher = dispatcher
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            service = ManagerService(self.settings, self._dispatcher)
            await service.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self.port = service.port
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await service.stop()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


ManagerFactory = Callable[..., RunningManager]


@pytest.fixture
def fake_worker(redis_server: RedisServer) -> Iterator[FakeWorker]:
    worker = FakeWorker(redis_server.url)
    yield worker
    worker.close()


@pytest.fixture
def start_manager(redis_server: RedisServer, redis_client: redis.Redis,
                  fake_worker: FakeWorker) -> Iterator[ManagerFactory]:
    """Factory: ``start_manager(**settings)`` -> a running manager (stopped at teardown)."""
    started: list[RunningManager] = []

    def start(dispatcher: Dispatcher | None = None, **overrides: Any) -> RunningManager:
        values: dict[str, Any] = {
            "host": "127.0.0.1", "port": 0, "redis_url": redis_server.url, "command_timeout": 1.0,
            "init_timeout": 2.0, "reaper_interval": 0.1, "heartbeat_grace": 0.3, "finished_ttl": 600,
        }
        values.update(overrides)
        manager = RunningManager(ManagerSettings(**values), dispatcher or fake_worker)
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.stop()


@pytest.fixture
def manager(start_manager: ManagerFactory) -> RunningManager:
    return start_manager()
