"""The API under test, two ways.

``stack`` (one per package): the real processes, `python -m services.api` in front of the real
manager and a real Celery worker running the ONNX model, on a redis-server of their own (the
in-process tests below flush the session's Redis between tests, which would wipe Celery's bindings).

``serve_api``: the app served by a real uvicorn in a thread, in front of a real in-process manager
whose pipelines are tests/manager's fake tasks, for the many fast error cases.
"""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from tests.manager.conftest import RunningManager, fake_worker, manager, start_manager
from tests.support.redis_server import running_redis
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until

__all__ = ["fake_worker", "manager", "start_manager"]  # tests/manager's fixtures, used here too


class ServedApi:
    """The app on a free port, served by uvicorn in a background thread."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="api")
        self._thread.start()
        wait_until(lambda: self._server.started or not self._thread.is_alive(), timeout=10)
        if not self._server.started:
            raise RuntimeError("the API did not start")
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=30)  # one per API: each builds an SSL context

    def stop(self) -> None:
        self.http.close()
        self._server.should_exit = True
        self._thread.join(10)


ApiFactory = Callable[..., ServedApi]


@pytest.fixture
def serve_api() -> Iterator[ApiFactory]:
    """Factory: ``serve_api(manager_port=..., **settings)`` -> a served API (stopped at teardown)."""
    served: list[ServedApi] = []

    def serve(**settings: Any) -> ServedApi:
        values: dict[str, Any] = {"manager_host": "127.0.0.1", "manager_timeout": 5.0, "init_timeout": 10.0,
                                  "readiness_timeout": 2.0, **settings}
        api = ServedApi(ApiSettings(**values))
        served.append(api)
        return api

    yield serve
    for api in served:
        api.stop()


@pytest.fixture
def api(manager: RunningManager, serve_api: ApiFactory) -> ServedApi:
    return serve_api(manager_port=manager.port)


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    with running_redis() as redis_server, running_stack(redis_server.url) as running:
        running.start_manager()
        running.start_worker("cpu", "pipelines.cpu", concurrency=2)
        yield running


@pytest.fixture(scope="package")
def api_url(stack: Stack) -> str:
    return stack.start_api()
