"""The clients under test, sync and async, against the manager of tests/manager (real manager on
port 0, real Redis, fake worker) or against the misbehaving servers of :mod:`tests.client.servers`."""

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from services.client import AsyncManagerClient, ManagerClient
from tests.manager.conftest import fake_worker, manager, start_manager  # noqa: F401  (shared fixtures)


class Blocking:
    """An :class:`AsyncManagerClient` driven from synchronous test code, one event loop per call,
    so every test runs unchanged against both clients."""

    def __init__(self, client: AsyncManagerClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        return lambda *args, **kwargs: asyncio.run(attribute(*args, **kwargs))

    def __repr__(self) -> str:
        return repr(self.client)


Connect = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Connect:
    """Factory: ``connect(port, **options)`` -> a ManagerClient, or an AsyncManagerClient behind :class:`Blocking`."""
    def make(port: int, **options: Any) -> Any:
        if request.param == "sync":
            return ManagerClient("127.0.0.1", port, **options)
        return Blocking(AsyncManagerClient("127.0.0.1", port, **options))
    return make
