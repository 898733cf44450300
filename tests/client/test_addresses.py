"""Clients given several manager addresses: a connection that cannot be made moves on to the next address
at once, an error once the request was sent is the caller's (never sent elsewhere), and a failed address
is tried again after ``retry_after``. For the TCP clients (sync and async), the API's pool and ``vsim``."""

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from services.api.manager_pool import PooledManagerClient
from services.client import AsyncManagerClient, ManagerClient
from services.client.addresses import AddressList, parse_address, parse_addresses
from services.client.cli import main
from services.client.errors import CommunicationProtocolError, ConnectivityError
from services.core.framing import encode_message
from tests.cli.support import vsim
from tests.client.conftest import Blocking
from tests.client.servers import ScriptedServer, replies, scripted_server
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until


class NamedManager(ScriptedServer):
    """A stand-in manager on ``port`` that answers every request with a list naming itself."""

    def __init__(self, name: str, port: int = 0) -> None:
        super().__init__(self._answer, port)
        self.name = name

    def _answer(self, conn: socket.socket) -> None:
        conn.sendall(encode_message({"request_id": "r", "pipeline_id": None,
                                     "response": {"status": "success", "pipelines": [self.name]}}))


@contextlib.contextmanager
def named(name: str, port: int = 0) -> Iterator[NamedManager]:
    server = NamedManager(name, port)
    try:
        yield server
    finally:
        server.close()


def at(port: int) -> str:
    return f"127.0.0.1:{port}"


Make = Callable[..., Any]


@pytest.fixture(params=["sync", "async", "pool"])
def client_for(request: pytest.FixtureRequest) -> Make:
    """Factory: ``client_for("h:p,h:p", **options)``: the blocking, async or pooled client, driven synchronously."""
    def make(addresses: str, **options: Any) -> Any:
        if request.param == "sync":
            return ManagerClient(addresses=addresses, **options)
        if request.param == "async":
            return Blocking(AsyncManagerClient(addresses=addresses, **options))
        return Pooled(addresses, **options)
    return make


class Pooled:
    """The API's pooled client, one event loop per call (its pool starts afresh in each loop)."""

    def __init__(self, addresses: str, **options: Any) -> None:
        self.client = PooledManagerClient(addresses=addresses, **options)
        self.addresses = self.client.addresses

    def list_pipelines(self) -> Any:
        async def once() -> Any:
            try:
                return await self.client.list_pipelines()
            finally:
                await self.client.aclose()
                self.client.pool._closed = False  # the next call's loop opens new connections
        return asyncio.run(once())

    def call(self, command: dict[str, Any]) -> Any:
        async def once() -> Any:
            try:
                return await self.client.call(command)
            finally:
                await self.client.aclose()
                self.client.pool._closed = False
        return asyncio.run(once())


def test_addresses_parse() -> None:
    assert parse_address("manager:7071", 7070) == ("manager", 7071)
    assert parse_address(" manager ", 7070) == ("manager", 7070)
    assert parse_address("[::1]:7071", 7070) == ("::1", 7071)
    assert parse_address("::1", 7070) == ("::1", 7070)
    assert parse_addresses("a:1, b ,a:1,,c:3", 7070) == (("a", 1), ("b", 7070), ("c", 3))
    assert parse_addresses([("a", 1), "b:2"], 7070) == (("a", 1), ("b", 2))
    for bad in ("", " , ", "a:0", "a:99999", "a:x", ":7070", "[::1]x"):
        with pytest.raises(ValueError):
            parse_addresses(bad, 7070)


def test_a_refused_address_is_skipped_at_once_and_tried_again_after_retry_after(client_for: Make) -> None:
    dead = free_port()
    with named("b") as b:
        client = client_for(f"{at(dead)},{at(b.port)}", retry_after=0.5)
        assert client.list_pipelines().pipelines == ["b"]
        assert client.addresses.is_down(("127.0.0.1", dead))
        with named("a", dead) as a:  # the first manager is back
            assert client.list_pipelines().pipelines == ["b"]  # marked down: the others first
            assert a.requests == []
            wait_until(lambda: not client.addresses.is_down(("127.0.0.1", dead)), timeout=5)
            assert client.list_pipelines().pipelines == ["a"]  # tried again, in its place in the list
            assert len(a.requests) == 1 and len(b.requests) == 2


def test_an_error_after_the_request_was_sent_is_reported_and_never_sent_elsewhere(client_for: Make) -> None:
    with scripted_server(replies(b"")) as dies, named("b") as b:  # reads the request, closes without a reply
        client = client_for(f"{at(dies.port)},{at(b.port)}")
        for command in ({"type": "terminate", "pipeline_id": "p"}, {"type": "list_pipelines"}):
            with pytest.raises((CommunicationProtocolError, ConnectivityError)):
                client.call(command)
        assert len(dies.requests) == 2 and b.requests == []  # in flight on the first manager only
        assert not client.addresses.is_down(("127.0.0.1", dies.port))  # it accepted the connection


def test_when_every_address_fails_the_error_names_each_and_they_are_still_tried(client_for: Make) -> None:
    first, second = free_port(), free_port()
    client = client_for(f"{at(first)},{at(second)}", retry_after=60)
    with pytest.raises(ConnectivityError) as refused:
        client.list_pipelines()
    message = str(refused.value)
    assert message.startswith("no stream manager could be reached: ")
    assert at(first) in message and at(second) in message
    with named("second", second):  # every address is marked down: they are all tried anyway
        assert client.list_pipelines().pipelines == ["second"]


def test_a_connection_attempt_that_hangs_is_cut_at_connect_timeout_and_the_next_address_answers() -> None:
    # A listener whose accept queue is full drops further SYNs: connecting to it hangs.
    hung = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hung.bind(("127.0.0.1", 0))
    hung.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(hung.getsockname())
        fillers.append(filler)
    try:
        with named("b") as b:
            client = ManagerClient(addresses=f"{at(hung.getsockname()[1])},{at(b.port)}", connect_timeout=0.3,
                                   timeout=10)
            assert client.list_pipelines().pipelines == ["b"]
            assert client.addresses.is_down(("127.0.0.1", hung.getsockname()[1]))
    finally:
        for filler in fillers:
            filler.close()
        hung.close()


def test_the_list_comes_as_host_or_from_the_environment_and_repr_shows_it_without_the_token(
        monkeypatch: pytest.MonkeyPatch) -> None:
    dead = free_port()
    with named("b") as b:
        listed = f"{at(dead)},{at(b.port)}"
        assert ManagerClient(listed).list_pipelines().pipelines == ["b"]
        monkeypatch.setenv("STREAM_MANAGER_ADDRESSES", listed)
        client = ManagerClient(token="s3cret-token")
        assert client.list_pipelines().pipelines == ["b"]
        assert repr(client) == f"ManagerClient({listed})" and "s3cret" not in repr(client)
        assert ManagerClient("127.0.0.1", b.port).addresses.addresses == (("127.0.0.1", b.port),)  # host wins


def test_one_address_keeps_the_single_manager_error() -> None:
    dead = free_port()
    with pytest.raises(ConnectivityError, match=rf"^stream manager at 127\.0\.0\.1:{dead} unreachable"):
        ManagerClient("127.0.0.1", dead).list_pipelines()


def test_vsim_takes_a_manager_list(capsys: pytest.CaptureFixture[str]) -> None:
    dead = free_port()
    with named("b") as b:
        result = vsim("--managers", f"{at(dead)},{at(b.port)}", "list")
    assert (result.code, result.lines) == (0, ["b"]), result
    with pytest.raises(SystemExit) as usage:
        main(["--managers", "127.0.0.1:0", "list"])
    assert usage.value.code == 2 and "the port must be 1-65535" in capsys.readouterr().err


def test_the_address_list_orders_failed_addresses_last_soonest_retry_first() -> None:
    addresses = AddressList((("a", 1), ("b", 2), ("c", 3)), retry_after=60)
    assert addresses.order() == [("a", 1), ("b", 2), ("c", 3)]
    addresses.failed(("b", 2))
    addresses.failed(("a", 1))
    assert addresses.order() == [("c", 3), ("b", 2), ("a", 1)]
    addresses.succeeded(("a", 1))
    assert addresses.order() == [("a", 1), ("c", 3), ("b", 2)]
    assert addresses.attempt_timeout(10.0) == addresses.connect_timeout
    assert AddressList((("a", 1),)).attempt_timeout(10.0) == 10.0  # one address: the whole deadline
