"""TrackedKeys and TrackedValue on a real redis-server: every write under the prefix, by anyone, moves the
version on; nothing else does; the version is None whenever Redis's messages cannot be trusted to arrive
(not yet subscribed, connection lost, Redis not answering, tracking refused)."""

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from services.core import keys
from services.infra import tracked_keys
from services.infra.pipeline_reads import PipelineReads
from services.infra.redis_connect import async_client
from services.infra.tracked_keys import TrackedKeys, TrackedValue
from services.manager.store import PipelineStore
from tests.support.redis_over import RedisOver, redis_over
from tests.support.redis_server import RedisServer, commands_run, running_redis
from tests.support.sentinel import MASTER_NAME, SentinelDeployment, running_sentinel
from tools.embedded_redis import free_port

PREFIX = keys.pipelines_index()


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.005)


def tracked(server: RedisServer, body: Callable[[TrackedKeys, Redis], Awaitable[None]]) -> None:
    async def scenario() -> None:
        client = Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
        watched = TrackedKeys(client.connection_pool, PREFIX)
        watched.start()
        try:
            await body(watched, client)
        finally:
            await watched.aclose()
            await client.aclose()

    asyncio.run(scenario())


async def settled(watched: TrackedKeys, client: Redis) -> int:
    """The version once every message of the writes made so far has arrived: one more write under the
    prefix is a barrier (Redis sends a connection's messages in order)."""
    before = watched.version()
    assert before is not None
    await client.set(PREFIX + ":barrier", 1)
    await until(lambda: watched.version() != before)
    version = watched.version()
    assert version is not None
    return version


def test_every_write_under_the_prefix_moves_the_version_on_and_no_other_write_does(redis_server: RedisServer,
                                                                                    redis_client: redis.Redis) -> None:
    async def body(watched: TrackedKeys, client: Redis) -> None:
        assert watched.version() is None  # not subscribed yet: nothing may be answered from memory
        await until(lambda: watched.version() is not None)
        start = await settled(watched, client)
        await client.set(keys.pipeline_record("p-1"), "x")  # another key (vsim:pipeline:..., not under the prefix)
        await client.hset(keys.pipeline_record("p-2"), "created_at", "1")
        assert await settled(watched, client) == start + 1  # only the barrier's message came

        writes: list[Callable[[], Awaitable[object]]] = [
            lambda: client.sadd(PREFIX, "p-1"),
            lambda: client.eval("return redis.call('SREM', KEYS[1], 'p-1')", 1, PREFIX),  # inside a script
            lambda: client.pipeline(transaction=True).sadd(PREFIX, "p-2").hset("x", "a", 1).execute(),
            lambda: client.flushdb(),  # a flush names no key: a message all the same
        ]
        for write in writes:
            version = watched.version()
            await write()
            await until(lambda before=version: watched.version() != before)  # type: ignore[misc]

    tracked(redis_server, body)


def test_the_version_is_none_while_the_tracking_connection_is_lost_and_new_once_it_is_back(
        redis_server: RedisServer, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "services.infra.tracked_keys")

    async def body(watched: TrackedKeys, client: Redis) -> None:
        await until(lambda: watched.version() is not None)
        before = watched.version()
        assert before is not None
        await client.client_kill_filter(_type="pubsub")  # the tracking connection is the only subscriber
        await until(lambda: watched.version() is None)
        await until(lambda: watched.version() is not None)
        again = watched.version()
        assert again is not None and again > before  # nothing read before the loss counts as current
        await client.sadd(PREFIX, "p-1")
        await until(lambda: watched.version() != again)  # and it tracks again

    tracked(redis_server, body)
    messages = [record.getMessage() for record in caplog.records]
    assert sum("tracking connection for vsim:pipelines failed" in message for message in messages) == 1
    assert sum("works again" in message for message in messages) == 1


def test_a_redis_that_stops_answering_costs_the_memory_within_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracked_keys, "PING_INTERVAL", 0.05)
    monkeypatch.setattr(tracked_keys, "STALE_AFTER", 0.3)
    with running_redis() as server:
        assert server.process is not None
        process = server.process

        async def body(watched: TrackedKeys, client: Redis) -> None:
            await until(lambda: watched.version() is not None)
            await asyncio.sleep(0.5)  # PINGs answered: it stays trusted past STALE_AFTER
            assert watched.version() is not None
            process.send_signal(signal.SIGSTOP)  # hung: the connection stays open, nothing comes
            try:
                stopped = time.monotonic()
                await until(lambda: watched.version() is None, timeout=2.0)
                assert time.monotonic() - stopped < 0.3 + 0.2
            finally:
                process.send_signal(signal.SIGCONT)
            await until(lambda: watched.version() is not None, timeout=5.0)

        tracked(server, body)


@pytest.mark.parametrize(("refused", "rules", "logged"), [
    ("CLIENT TRACKING", {"channels": ["*"], "commands": ["+@all", "-client"]}, "refuses CLIENT TRACKING"),
    # Refused every time it is tried (every 2 s at most), logged once.
    ("the subscription", {"reset_channels": True, "commands": ["+@all"]}, "refused a command of the tracking"),
])
def test_a_redis_that_refuses_tracking_leaves_every_read_to_redis(
        redis_server: RedisServer, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture, refused: str,
        rules: dict[str, Any], logged: str) -> None:
    caplog.set_level(logging.WARNING, "services.infra.tracked_keys")
    redis_client.acl_setuser("limited", enabled=True, passwords=["+secret-pw"], keys=["*"], **rules)
    try:
        async def scenario() -> None:
            client = Redis.from_url(redis_server.url, username="limited", password="secret-pw")
            watched = TrackedKeys(client.connection_pool, PREFIX)
            watched.start()
            for _ in range(10):
                await asyncio.sleep(0.05)
                assert watched.version() is None, f"tracking on although Redis refused {refused}"
            await watched.aclose()
            await client.aclose()

        asyncio.run(scenario())
    finally:
        redis_client.acl_deluser("limited")
    [message] = [record.getMessage() for record in caplog.records]
    assert logged in message and "secret-pw" not in message


class FakeKeys:
    def __init__(self) -> None:
        self.current: int | None = 1

    def version(self) -> int | None:
        return self.current


def test_a_value_read_across_a_change_is_not_kept() -> None:
    fake = FakeKeys()
    value = TrackedValue(fake)  # type: ignore[arg-type]
    assert value.get() == (False, None)
    version = value.before_read()
    fake.current = 2  # a write's message arrived while the read was out
    value.keep("read before the write", version)
    assert value.get() == (False, None)
    version = value.before_read()
    value.keep("read after it", version)
    assert value.get() == (True, "read after it")
    fake.current = None  # the messages cannot be trusted
    assert value.get() == (False, None)
    value.keep("read meanwhile", None)
    fake.current = 2
    assert value.get() == (True, "read after it")  # what was kept at 2 is still current at 2


def test_the_live_ids_are_read_from_redis_only_after_the_index_changed(redis_server: RedisServer,
                                                                       redis_client: redis.Redis) -> None:
    async def body(watched: TrackedKeys, client: Redis) -> None:
        reads = PipelineReads(client, index=watched)
        store = PipelineStore(client, 600, index=watched)
        await until(lambda: watched.version() is not None)
        assert await reads.live_ids() == ()
        scripts = commands_run(redis_client, "evalsha")
        for _ in range(50):
            assert await reads.live_ids() == ()
        assert commands_run(redis_client, "evalsha") == scripts  # fifty answers, no read

        # Another writer (another manager, a worker restoring its pipeline): seen once its message is in.
        redis_client.hset(keys.pipeline_record("p-1"), mapping={"pipeline_id": "p-1", "created_at": "1"})
        redis_client.sadd(PREFIX, "p-1")
        await until(lambda: reads.known_live_ids() is None)
        assert await reads.live_ids() == ("p-1",)

        # This process's own write: its next read is fresh at once, without waiting for the message.
        await store.remove("p-1")
        assert reads.known_live_ids() is None
        assert await reads.live_ids() == ()

    tracked(redis_server, body)


def test_writes_are_seen_through_a_sentinel_failover_whichever_node_the_connection_was_on() -> None:
    # A manual failover demotes the old master to a replica without killing it; a killed master takes its
    # connections with it. After each, a write on the new master must still move the version on.
    with running_sentinel() as deployment:
        async def scenario() -> None:
            client = async_client(deployment.url, socket_timeout=2, socket_connect_timeout=2)
            watched = TrackedKeys(client.connection_pool, PREFIX)
            watched.start()
            try:
                for fail_over in (manual_failover, killed_master):
                    await until(lambda: watched.version() is not None, timeout=10)
                    before = watched.version()
                    new_master = await asyncio.to_thread(fail_over, deployment)
                    with deployment.data_client(new_master) as data:
                        data.sadd(PREFIX, f"after-{fail_over.__name__}")
                    await until(lambda before=before: watched.version() not in (None, before), timeout=15)
                    version = watched.version()
                    with deployment.data_client(new_master) as data:
                        data.sadd(PREFIX, f"later-{fail_over.__name__}")
                    await until(lambda version=version: watched.version() not in (None, version), timeout=5)
            finally:
                await watched.aclose()
                await client.aclose()

        asyncio.run(scenario())


def manual_failover(deployment: SentinelDeployment) -> int:
    old = deployment.master_port()
    with deployment.sentinel_client(deployment.sentinel_ports[0]) as sentinel:
        sentinel.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
    return deployment.wait_for_failover(old)


def killed_master(deployment: SentinelDeployment) -> int:
    return deployment.wait_for_failover(deployment.kill_master())


def test_over_tls_with_a_password_and_a_database_and_across_a_restart(tmp_path: Path,
                                                                       tls_files: tuple[Path, Path]) -> None:
    """The handshake (TLS, AUTH, SELECT) is redis-py's; the messages are then read on that same TLS connection,
    and a restarted Redis (its data lost) is tracked again with the same handshake."""
    cert, key = tls_files
    port = free_port()
    arguments = ("--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                 "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")
    url = f"rediss://:s3cret-pass@127.0.0.1:{port}/3?ssl_ca_certs={cert}"

    async def scenario(server: RedisOver) -> None:
        client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        watched = TrackedKeys(client.connection_pool, PREFIX)
        watched.start()
        try:
            await until(lambda: watched.version() is not None, timeout=10)
            before = watched.version()
            await client.sadd(PREFIX, "p-1")
            await until(lambda: watched.version() not in (None, before))
            await asyncio.to_thread(server.restart)
            await until(lambda: watched.version() is None)
            await until(lambda: watched.version() is not None, timeout=10)
            again = watched.version()
            with contextlib.suppress(redis.exceptions.ConnectionError):
                await client.ping()  # the client's own pooled connection died with the restart
            await client.sadd(PREFIX, "p-2")
            await until(lambda: watched.version() not in (None, again))
        finally:
            await watched.aclose()
            await client.aclose()

    with redis_over(tmp_path, *arguments) as server:
        asyncio.run(scenario(server))


def test_closing_ends_the_tracking_task_even_where_its_connect_swallows_the_cancellation(
        redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # A cancellation landing inside a redis.asyncio call can be swallowed on Python 3.11: the task used to go on
    # connecting and tracking, and aclose() waited for it for ever. Closed, it connects no more.
    caplog.set_level(logging.WARNING, "services.infra.tracked_keys")
    connect = tracked_keys.take_over

    async def stubborn(*args: Any, **kwargs: Any) -> Any:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)  # swallowed
        return await connect(*args, **kwargs)

    monkeypatch.setattr(tracked_keys, "take_over", stubborn)
    before = {client["id"] for client in redis_client.client_list()}

    async def scenario() -> None:
        client = Redis.from_url(redis_server.url, socket_timeout=2, socket_connect_timeout=2)
        watched = TrackedKeys(client.connection_pool, PREFIX)
        watched.start()
        await asyncio.sleep(0.1)  # connecting
        await asyncio.wait_for(watched.aclose(), 5)
        await client.aclose()

    asyncio.run(scenario())
    assert [client for client in redis_client.client_list() if client["id"] not in before] == []
    assert caplog.records == []
