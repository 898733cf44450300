"""The API's pool of manager connections, against a real in-process manager (fake pipeline tasks, real
Redis) seen through a TCP proxy that counts the connections and the requests and can break them.

What is proved: requests share at most ``pool_size`` connections, one at a time each (through the
client and through HTTP); a connection is retired after ``max_requests`` (which keeps the API below the
manager's per-connection rate limit) and after idling; a pooled connection that dies is replaced, and
the request that meets it is sent again only when it is a read; a write is never sent twice; a
manager restart costs no request; a request past its deadline closes its connection; TLS and
shutdown.
"""

import asyncio
import contextlib
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis

from services.api.manager_pool import PooledManagerClient
from services.client.errors import (
    CommunicationProtocolError,
    ConnectivityError,
    ProcessesManagerNotFoundError,
    ProcessesManagerOperationError,
)
from services.client.models import ListPipelinesResponse
from tests.api.conftest import ApiFactory
from tests.api.manager_proxy import ManagerProxy
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.manager.test_server import INIT_PAYLOAD
from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_until

T = TypeVar("T")


@pytest.fixture
def proxies() -> Iterator[Callable[[int], ManagerProxy]]:
    made: list[ManagerProxy] = []

    def make(port: int) -> ManagerProxy:
        proxy = ManagerProxy(port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def proxy(manager: RunningManager, proxies: Callable[[int], ManagerProxy]) -> ManagerProxy:
    return proxies(manager.port)


def with_client(port: int, use: Callable[[PooledManagerClient], Awaitable[T]], **options: Any) -> T:
    """``use(client)`` in a fresh event loop, with a pooled client of ``127.0.0.1:port`` closed afterwards."""
    async def run() -> T:
        client = PooledManagerClient("127.0.0.1", port, **{"timeout": 5.0, **options})
        try:
            return await use(client)
        finally:
            await client.aclose()
    return asyncio.run(run())


def test_requests_one_after_another_share_one_connection(proxy: ManagerProxy) -> None:
    async def use(client: PooledManagerClient) -> None:
        for _ in range(5):
            assert (await client.list_pipelines()).pipelines == []
            with pytest.raises(ProcessesManagerNotFoundError):  # a failure reply leaves the connection usable
                await client.status("no-such-pipeline")

    with_client(proxy.port, use)

    assert proxy.accepted == 1
    assert proxy.requests == ["list_pipelines", "status"] * 5


def test_concurrent_requests_use_at_most_pool_size_connections(proxy: ManagerProxy) -> None:
    async def use(client: PooledManagerClient) -> list[ListPipelinesResponse]:
        return await asyncio.gather(*(client.list_pipelines() for _ in range(60)))

    replies = with_client(proxy.port, use, pool_size=3)

    assert [reply.pipelines for reply in replies] == [[]] * 60
    assert proxy.count("list_pipelines") == 60
    assert 1 <= proxy.accepted <= 3 and proxy.max_open <= 3


def test_concurrent_http_requests_use_at_most_pool_size_manager_connections(
    proxy: ManagerProxy, serve_api: ApiFactory,
) -> None:
    api = serve_api(manager_port=proxy.port, manager_pool_size=4)
    paths = ["/inference_pipelines/list", "/list_pipelines", "/inference_pipelines/p-1/status", "/status/p-1"] * 12

    async def send_all() -> list[int]:
        limits = httpx.Limits(max_connections=len(paths))
        async with httpx.AsyncClient(base_url=api.url, timeout=30, limits=limits) as http:
            responses = await asyncio.gather(*(http.get(path) for path in paths))
        return [response.status_code for response in responses]

    statuses = asyncio.run(send_all())

    assert statuses == [200, 200, 404, 404] * 12
    assert proxy.count("list_pipelines") == 24 and proxy.count("status") == 24
    assert 1 <= proxy.accepted <= 4 and proxy.max_open <= 4
    api.stop()  # the API's shutdown closes its manager connections
    wait_until(lambda: proxy.open == 0, message=lambda: f"{proxy.open} connections still open")


def test_a_connection_is_retired_after_max_requests(proxy: ManagerProxy) -> None:
    async def use(client: PooledManagerClient) -> None:
        for _ in range(7):
            await client.list_pipelines()

    with_client(proxy.port, use, max_requests=3)

    assert proxy.accepted == 3  # 3 + 3 + 1 requests


def test_retiring_connections_keeps_the_api_below_the_managers_rate_limit(
    start_manager: ManagerFactory, proxies: Callable[[int], ManagerProxy],
) -> None:
    manager = start_manager(max_requests_per_second=1, max_request_burst=5)

    async def thirty_lists(client: PooledManagerClient) -> None:
        for _ in range(30):
            await client.list_pipelines()

    with_client(manager.port, thirty_lists, max_requests=5)  # every request answered
    with pytest.raises(ProcessesManagerOperationError, match="rate limit"):  # the same, on one connection
        with_client(manager.port, thirty_lists, max_requests=0)


def test_an_idle_connection_is_not_used_after_idle_timeout(proxy: ManagerProxy) -> None:
    async def use(client: PooledManagerClient) -> None:
        await client.list_pipelines()
        await client.list_pipelines()
        await asyncio.sleep(0.5)
        await client.list_pipelines()

    with_client(proxy.port, use, idle_timeout=0.2)

    assert proxy.accepted == 2


def test_a_dead_pooled_connection_is_replaced_without_losing_a_request(proxy: ManagerProxy) -> None:
    async def use(client: PooledManagerClient) -> None:
        await client.list_pipelines()
        assert client.pool.open_connections == 1
        proxy.drop_all()  # the manager side closes the idle connection
        for _ in range(100):  # the pool drops it as soon as the FIN arrives
            if client.pool.open_connections == 0:
                break
            await asyncio.sleep(0.02)
        assert client.pool.open_connections == 0
        with pytest.raises(ProcessesManagerNotFoundError):  # a write: answered by the manager, on a new connection
            await client.pause("no-such-pipeline")

    with_client(proxy.port, use)

    assert proxy.accepted == 2
    assert proxy.requests == ["list_pipelines", "mute"]


@pytest.mark.parametrize(("kind", "read"), [
    ("list_pipelines", lambda client: client.list_pipelines()),
    ("status", lambda client: client.status("no-such-pipeline")),
    ("list_workflows", lambda client: client.list_workflows()),
    ("get_workflow", lambda client: client.get_workflow("workspace", "no-such-workflow")),
])
def test_a_read_whose_pooled_connection_dies_before_the_reply_is_sent_again(
    proxy: ManagerProxy, kind: str, read: Callable[[PooledManagerClient], Awaitable[Any]],
) -> None:
    async def use(client: PooledManagerClient) -> None:
        await client.list_pipelines()  # a pooled connection
        proxy.cut_reply_of(kind)
        with contextlib.suppress(ProcessesManagerNotFoundError):  # the manager's answer: the read went through
            await read(client)

    with_client(proxy.port, use)

    assert proxy.accepted == 2
    assert proxy.count(kind) == (3 if kind == "list_pipelines" else 2)


@pytest.mark.parametrize(("kind", "write"), [
    ("mute", lambda client: client.pause("no-such-pipeline")),
    ("resume", lambda client: client.resume("no-such-pipeline")),
    ("terminate", lambda client: client.terminate("no-such-pipeline")),
    ("consume_result", lambda client: client.consume("no-such-pipeline")),  # it moves a cursor
    ("init", lambda client: client.initialise(INIT_PAYLOAD)),
    ("delete_workflow", lambda client: client.delete_workflow("workspace", "no-such-workflow")),
])
def test_a_write_whose_connection_dies_before_the_reply_is_never_sent_twice(
    proxy: ManagerProxy, kind: str, write: Callable[[PooledManagerClient], Awaitable[Any]],
) -> None:
    async def use(client: PooledManagerClient) -> None:
        await client.list_pipelines()
        proxy.cut_reply_of(kind)
        with pytest.raises(CommunicationProtocolError, match="closed the connection before replying"):
            await write(client)
        assert (await client.list_pipelines()).pipelines is not None  # the pool goes on, on a new connection

    with_client(proxy.port, use)

    assert proxy.count(kind) == 1
    assert proxy.accepted == 2


def test_a_terminate_cut_after_the_manager_carried_it_out_reaches_the_pipeline_once(
    proxy: ManagerProxy, manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis,
) -> None:
    register_worker(redis_client)
    pipeline_id = call(manager.port, INIT_PAYLOAD)["pipeline_id"]

    async def use(client: PooledManagerClient) -> None:
        await client.status(pipeline_id)
        proxy.cut_reply_of("terminate")
        with pytest.raises(CommunicationProtocolError):
            await client.terminate(pipeline_id)

    with_client(proxy.port, use)

    (task,) = fake_worker.tasks
    wait_until(lambda: not task.is_alive(), message=lambda: "the pipeline's task did not end")
    assert task.commands.count("terminate") == 1 and proxy.count("terminate") == 1


def test_a_manager_restart_costs_no_request(start_manager: ManagerFactory, serve_api: ApiFactory) -> None:
    port = free_port()
    manager = start_manager(port=port)
    api = serve_api(manager_port=port, manager_pool_size=4)
    paths = ["/inference_pipelines/list", "/list_pipelines"] * 6

    async def reads() -> list[int]:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            return [response.status_code for response in await asyncio.gather(*(http.get(path) for path in paths))]

    assert asyncio.run(reads()) == [200] * len(paths)  # the pool now holds connections to the first manager
    manager.stop()
    start_manager(port=port)

    assert asyncio.run(reads()) == [200] * len(paths)
    response = api.http.post("/inference_pipelines/no-such-pipeline/pause")  # a write reaches the new manager
    assert response.status_code == 404 and response.json()["error_type"] == "ProcessesManagerNotFoundError"


def test_a_request_past_its_deadline_closes_its_connection() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    async def run() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = PooledManagerClient("127.0.0.1", port, timeout=0.3)
        try:
            for attempt in (1, 2):
                with pytest.raises(ConnectivityError, match=f"127.0.0.1:{port} did not answer in time"):
                    await client.list_pipelines()
                assert client.pool.open_connections == 0 and len(accepted) == attempt
        finally:
            await client.aclose()
            server.close()
            for writer in accepted:
                writer.close()

    asyncio.run(run())


def test_a_closed_pool_refuses_requests_and_holds_no_connection(proxy: ManagerProxy) -> None:
    async def use() -> None:
        client = PooledManagerClient("127.0.0.1", proxy.port)
        await asyncio.gather(client.list_pipelines(), client.list_pipelines())
        await client.aclose()
        with pytest.raises(ConnectivityError, match="shutting down"):
            await client.list_pipelines()

    asyncio.run(use())
    wait_until(lambda: proxy.open == 0)


def test_a_manager_refusing_the_connection_is_answered_with_its_reply(start_manager: ManagerFactory) -> None:
    manager = start_manager(max_connections=1)

    async def use(client: PooledManagerClient) -> None:
        await client.list_pipelines()  # holds the manager's only connection in the pool
        other = PooledManagerClient("127.0.0.1", manager.port, timeout=5.0)
        try:
            with pytest.raises(ProcessesManagerOperationError, match="MANAGER_MAX_CONNECTIONS"):
                await other.list_pipelines()
        finally:
            await other.aclose()
        await client.list_pipelines()

    with_client(manager.port, use)


def test_the_token_is_sent_on_every_pooled_request(
    start_manager: ManagerFactory, proxies: Callable[[int], ManagerProxy],
) -> None:
    proxy = proxies(start_manager(auth_token="s3cret").port)

    async def use(client: PooledManagerClient) -> None:
        for _ in range(3):
            await client.list_pipelines()

    with_client(proxy.port, use, token="s3cret")

    assert proxy.accepted == 1 and proxy.count("list_pipelines") == 3


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_pooled_connections_speak_tls(redis_server: RedisServer, fake_worker: FakeWorker, tmp_path: Path) -> None:
    from services.manager.settings import ManagerSettings
    from tests.e2e.test_tls import _ca, _leaf

    _ca(tmp_path, "ca")
    _leaf(tmp_path, "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                              "keyUsage=critical,digitalSignature\n")
    manager = RunningManager(ManagerSettings(host="127.0.0.1", port=0, redis_url=redis_server.url,
                                             tls_cert_file=tmp_path / "server.pem",
                                             tls_key_file=tmp_path / "server.key"), fake_worker)
    try:
        proxy = ManagerProxy(manager.port, read_frames=False)  # encrypted: it only counts connections

        async def use(client: PooledManagerClient) -> None:
            for _ in range(3):
                assert (await client.list_pipelines()).pipelines == []

        with_client(proxy.port, use, tls=True, ca_file=str(tmp_path / "ca.pem"))
        assert proxy.accepted == 1
        with pytest.raises(ConnectivityError):  # the certificate is checked: a client without the CA refuses it
            with_client(proxy.port, use, tls=True)
    finally:
        proxy.close()
        manager.stop()


def test_the_pool_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.api.settings import ApiSettings

    monkeypatch.setenv("API_MANAGER_POOL_SIZE", "3")
    monkeypatch.setenv("API_MANAGER_POOL_IDLE_TIMEOUT", "4.5")
    monkeypatch.setenv("API_MANAGER_POOL_MAX_REQUESTS", "0")
    settings = ApiSettings()
    assert (settings.manager_pool_size, settings.manager_pool_idle_timeout, settings.manager_pool_max_requests) == (
        3, 4.5, 0)
    with pytest.raises(ValueError, match="manager_pool_size"):
        ApiSettings(manager_pool_size=0)
