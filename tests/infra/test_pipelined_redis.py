"""The pipelined connection of the hot reads, on a real redis-server: many callers at once each get
their own reply, an error reply or a cancelled caller leaves the others in step, a hung Redis fails the
waiting calls within the reply timeout, and a restarted one is reconnected to."""

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.infra.pipelined_redis import PipelinedConnection
from services.manager.service import redis_client
from services.manager.settings import ManagerSettings
from tests.support.redis_over import RedisOver, redis_over
from tests.support.redis_server import RedisServer, free_port, running_redis

# Busy for ARGV[1] microseconds: a reply that comes late, on purpose.
SLOW = """
local t = redis.call('TIME')
repeat local n = redis.call('TIME') until (n[1] - t[1]) * 1000000 + (n[2] - t[2]) > tonumber(ARGV[1])
return 'slow'
"""


def run(server: RedisServer, scenario, reply_timeout: float = 5.0):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        client = redis_client(ManagerSettings(redis_url=server.url, redis_socket_timeout=reply_timeout), 4)
        hot = PipelinedConnection(client.connection_pool, reply_timeout)
        try:
            return await scenario(hot, client)
        finally:
            await hot.aclose()
            await client.aclose()

    return asyncio.run(main())


def test_concurrent_callers_each_get_their_own_reply() -> None:
    with running_redis() as server:
        with redis.Redis.from_url(server.url) as sync:
            sync.mset({f"k{i}": f"v{i}" for i in range(500)})

        async def scenario(hot: PipelinedConnection, _: object) -> list[object]:
            return list(await asyncio.gather(*(hot.execute("GET", f"k{i}") for i in range(500))))

        assert run(server, scenario) == [f"v{i}".encode() for i in range(500)]


def test_a_script_redis_does_not_know_is_loaded_then_run() -> None:
    with running_redis() as server:
        async def scenario(hot: PipelinedConnection, client: redis.asyncio.Redis) -> object:
            script = client.register_script("return ARGV[1] .. KEYS[1]")
            await client.script_flush()
            return await hot.evalsha(script.sha, script.script, ["key"], ["arg-"])

        assert run(server, scenario) == b"arg-key"


def test_an_error_reply_goes_to_its_caller_alone() -> None:
    with running_redis() as server:
        with redis.Redis.from_url(server.url) as sync:
            sync.set("s", "text")
            sync.lpush("l", "x")

        async def scenario(hot: PipelinedConnection, _: object) -> list[object]:
            return list(await asyncio.gather(hot.execute("GET", "s"), hot.execute("GET", "l"), hot.execute("GET", "s"),
                                             return_exceptions=True))

        first, wrong, last = run(server, scenario)
        assert first == last == b"text"
        assert isinstance(wrong, ResponseError) and "WRONGTYPE" in str(wrong)


def test_a_caller_cancelled_while_it_waits_leaves_the_line_in_step() -> None:
    with running_redis() as server:
        with redis.Redis.from_url(server.url) as sync:
            sync.set("a", "A")

        async def scenario(hot: PipelinedConnection, _: object) -> list[object]:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(hot.execute("EVAL", SLOW, 0, 300_000), 0.05)
            return [await hot.execute("GET", "a"), await hot.execute("ECHO", "b")]

        assert run(server, scenario) == [b"A", b"b"]


def test_a_hung_redis_fails_the_waiting_calls_within_the_reply_timeout_and_is_reconnected_after() -> None:
    with running_redis() as server:
        assert server.process is not None

        async def scenario(hot: PipelinedConnection, _: object) -> tuple[float, list[object], object]:
            assert await hot.execute("PING") == b"PONG"  # connected before Redis hangs
            os.kill(server.process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            started = time.monotonic()
            try:
                failures = await asyncio.gather(*(hot.execute("PING") for _ in range(3)), return_exceptions=True)
            finally:
                os.kill(server.process.pid, signal.SIGCONT)  # type: ignore[union-attr]
            return time.monotonic() - started, list(failures), await hot.execute("ECHO", "back")

        waited, failures, after = run(server, scenario, reply_timeout=0.5)
        assert all(isinstance(failure, RedisTimeoutError) for failure in failures), failures
        assert waited < 5.0  # the reply timeout (0.5 s) plus one watchdog period, not the caller's patience
        assert after == b"back"


def test_a_restarted_redis_is_reconnected_to_and_a_closed_connection_refuses_calls() -> None:
    with running_redis() as server:
        async def scenario(hot: PipelinedConnection, _: object) -> list[object]:
            first = await hot.execute("ECHO", "one")
            server.stop()
            server.start()
            second = await hot.execute("ECHO", "two")  # the broken connection is noticed, then replaced
            await hot.aclose()
            with pytest.raises(RedisConnectionError):
                await hot.execute("ECHO", "three")
            return [first, second]

        assert run(server, scenario) == [b"one", b"two"]


def test_callers_arriving_before_the_connection_share_one_connect() -> None:
    with running_redis() as server:
        async def scenario(hot: PipelinedConnection, client: redis.asyncio.Redis) -> tuple[list[object], int]:
            replies = await asyncio.gather(*(hot.execute("ECHO", str(i)) for i in range(500)))
            clients = await client.client_list()
            return list(replies), len(clients)

        replies, connections = run(server, scenario)
        assert replies == [str(i).encode() for i in range(500)]
        assert connections == 2  # the one pipelined connection, and the pooled one that asked


def test_a_refused_connect_fails_every_caller_at_once_and_the_next_call_tries_again() -> None:
    with running_redis() as server:
        async def scenario(hot: PipelinedConnection, _: object) -> tuple[list[object], object]:
            server.stop()
            failures = await asyncio.gather(*(hot.execute("PING") for _ in range(20)), return_exceptions=True)
            server.start()
            return list(failures), await hot.execute("ECHO", "up")

        failures, after = run(server, scenario)
        assert all(isinstance(failure, RedisConnectionError) for failure in failures), failures
        assert after == b"up"


def test_over_tls_with_a_password_and_a_database_the_connection_redis_py_made_carries_the_calls(
        tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    """The handshake (TLS, AUTH, SELECT) is redis-py's; the replies are then read on that same TLS
    connection: a restart of Redis is reconnected to with the same handshake."""
    cert, key = tls_files
    port = free_port()
    arguments = ("--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                 "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")
    url = f"rediss://:s3cret-pass@127.0.0.1:{port}/3?ssl_ca_certs={cert}"

    async def main(server: RedisOver) -> tuple[list[object], object, list[object]]:
        client = redis_client(ManagerSettings(redis_url=url), 4)
        hot = PipelinedConnection(client.connection_pool, 5.0)
        try:
            await wait_for_redis(client)
            await client.set("where", "db 3")
            replies = list(await asyncio.gather(*(hot.execute("ECHO", str(i)) for i in range(300))))
            script = client.register_script("return redis.call('GET', KEYS[1])")
            first = await hot.evalsha(script.sha, script.script, ["where"], [])
            await asyncio.to_thread(server.restart)  # empty, and the connection is broken
            await wait_for_redis(client)
            await client.set("where", "db 3 again")
            return replies, first, [await hot.execute("GET", "where"), await hot.execute("CLIENT", "INFO")]
        finally:
            await hot.aclose()
            await client.aclose()

    with redis_over(tmp_path, *arguments) as server:
        replies, first, (again, info) = asyncio.run(main(server))
    assert replies == [str(i).encode() for i in range(300)]
    assert first == b"db 3"  # AUTH and SELECT 3 were made on the connection before it was taken over
    assert again == b"db 3 again"  # reconnected after the restart, with the same handshake
    assert b" db=3 " in info


def test_on_a_unix_socket_with_decoded_replies_the_replies_are_text_and_errors_keep_their_type(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"

    async def main() -> tuple[object, object, type[BaseException]]:
        client = redis.asyncio.Redis(unix_socket_path=str(socket_path), password="s3cret-pass", decode_responses=True)
        hot = PipelinedConnection(client.connection_pool, 5.0)
        try:
            await wait_for_redis(client)
            await client.rpush("list", "a")
            text = await hot.execute("ECHO", "héllo")
            many = await hot.execute("LRANGE", "list", 0, -1)
            failure = await asyncio.gather(hot.execute("EVALSHA", "0" * 40, 0), return_exceptions=True)
            return text, many, type(failure[0])
        finally:
            await hot.aclose()
            await client.aclose()

    with redis_over(tmp_path, "--unixsocket", str(socket_path)):
        text, many, failure = asyncio.run(main())
    assert (text, many) == ("héllo", ["a"])
    assert failure is NoScriptError  # redis-py's own error classes, as its parser gives them


async def wait_for_redis(client: redis.asyncio.Redis) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            await client.ping()
            return
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
