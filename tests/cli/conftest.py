"""One real stack per test module: the manager and a Celery worker processes on the tests' redis-server."""

from collections.abc import Iterator

import pytest

from tests.cli.support import SLOTS, WORKER
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        running.start_manager()
        running.start_worker(WORKER.split("@")[0], "pipelines.cpu", concurrency=SLOTS)
        yield running
