"""One real stack per test module: the manager and a Celery worker processes on the tests' redis-server."""

from collections.abc import Iterator

import pytest

from tests.cli.support import SLOTS, WORKER
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        # test_watch cuts clips into tmp_path: pytest's temporary directory is a file root too
        running.start_manager(MANAGER_FILE_ROOTS=f"data,{tmp_path_factory.getbasetemp()}")
        running.start_worker(WORKER.split("@")[0], "pipelines.cpu", concurrency=SLOTS)
        yield running
