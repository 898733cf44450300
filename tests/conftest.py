"""Session-wide fixtures: a real redis-server the tests start themselves; a garbage collection after each module."""

import gc
from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_server import RedisServer, running_redis
from tests.support.socket_origins import SocketOrigins


@pytest.fixture(autouse=True, scope="session")
def _name_where_open_sockets_were_made() -> Iterator[None]:
    """A socket finalised open fails a test naming its addresses only: this adds the thread and stack that made it."""
    origins = SocketOrigins()
    origins.install()  # after pytest's own unraisable hook, which it wraps
    yield
    origins.uninstall()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(autouse=True, scope="module")
def _collect_the_module_garbage() -> Iterator[None]:
    """Once a module's tests and its other fixtures are done, collect the garbage they left.

    A socket or transport left open inside a reference cycle is otherwise only finalised (and its
    ResourceWarning, an error here, raised) at some later collection, in whichever test runs then: once it
    was inside ``ast.parse`` in tests/test_architecture.py, where Python 3.11 turned it into a SystemError (the
    warning's traceback is formatted with ``ast.parse`` again, cpython gh-106905). Collected here, it fails
    the teardown of the last test of the module that left it. Once per module: after every test it cost 3 minutes.
    """
    yield
    gc.collect()
