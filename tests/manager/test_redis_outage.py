"""The manager across Redis outages: a request to a hung Redis is answered, the reaper does not
mistake an outage for lost tasks, and waits for a task's reply longer than the Redis client's socket
timeout still work."""

import asyncio
import os
import signal
import time
import uuid
from typing import Any

import redis

from services.core import keys
from services.core.control import ControlReply
from services.core.records import PipelineRecord, PipelineState
from services.manager.control import wait_reply
from services.manager.reaper import Reaper
from services.manager.service import redis_client
from services.manager.settings import ManagerSettings
from services.manager.store import PipelineStore
from tests.manager.conftest import RunningManager
from tests.manager.fakes import RecordingDispatcher, call
from tests.support.redis_server import RedisServer, running_redis


def test_a_request_to_a_hung_redis_is_answered_within_the_socket_timeout() -> None:
    with running_redis() as server:
        settings = ManagerSettings(host="127.0.0.1", port=0, redis_url=server.url, redis_socket_timeout=1.0)
        manager = RunningManager(settings, RecordingDispatcher())
        assert server.process is not None
        try:
            os.kill(server.process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
            try:
                reply = call(manager.port, {"type": "status", "pipeline_id": "p"})
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert reply["response"]["error_type"] == "internal_error", reply
            assert reply["response"]["error_message"].startswith("Redis is unavailable: TimeoutError"), reply
            assert call(manager.port, {"type": "list_pipelines"})["response"]["status"] == "success"
        finally:
            manager.stop()


def test_an_outage_restarts_no_pipeline_and_a_task_that_died_meanwhile_is_restarted_after_it() -> None:
    # Redis keeps its data (append-only file), but a heartbeat's TTL runs out while it is down.
    with running_redis(persistent=True) as server:
        asyncio.run(_outage_scenario(server))


async def _outage_scenario(server: RedisServer) -> None:
    settings = ManagerSettings(redis_url=server.url, reaper_interval=0.05, heartbeat_grace=0.3, outage_grace=2.0,
                               restart_backoff_initial=0.0)
    client = redis_client(settings, settings.redis_pool_size)
    store = PipelineStore(client, settings.finished_ttl)
    reaper = Reaper(settings, store, RecordingDispatcher(), client)
    alive, died = "alive", "died"  # whose task ticks again once Redis is back, and whose does not
    for pid in (alive, died):
        record = PipelineRecord(pid, state=PipelineState.RUNNING, owner="w@h:1", created_at=time.time())
        await store.create(record, {"video_references": ["rtsp://camera"]})
        await client.set(keys.pipeline_heartbeat(pid), "w@h:1", ex=1)
    stop = asyncio.Event()
    running = asyncio.create_task(reaper.run(stop))
    try:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(1.5)  # longer than the heartbeats' TTL
        await asyncio.to_thread(server.start)
        assert await client.exists(keys.pipeline_heartbeat(alive), keys.pipeline_heartbeat(died)) == 0

        await asyncio.sleep(1.0)  # past heartbeat_grace + reaper_interval, within outage_grace
        assert [(await store.get(pid)).epoch for pid in (alive, died)] == [1, 1]
        await client.set(keys.pipeline_heartbeat(alive), "w@h:1", ex=5)  # its first tick after reconnecting

        deadline = time.monotonic() + 10
        while (await store.get(died)).epoch == 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        lost = await store.get(died)
        assert (lost.epoch, lost.restarts, lost.last_error) == (2, 1, "worker lost (no heartbeat)")
        assert (await store.get(alive)).epoch == 1
    finally:
        stop.set()
        await running
        await client.aclose()


def test_a_reply_wait_longer_than_the_socket_timeout_neither_fails_nor_loses_the_reply(
    redis_server: RedisServer,
) -> None:
    request_id = uuid.uuid4().hex
    pusher = redis.Redis.from_url(redis_server.url)

    async def scenario() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        client = redis_client(ManagerSettings(redis_url=redis_server.url, redis_socket_timeout=0.5), 4)
        try:
            late = asyncio.get_running_loop().call_later(
                1.2, pusher.rpush, keys.reply_list(request_id),
                ControlReply(request_id=request_id, response={"status": "success"}).model_dump_json())
            answered = await wait_reply(client, request_id, timeout=5.0)
            late.cancel()
            unanswered = await wait_reply(client, uuid.uuid4().hex, timeout=1.2)
            return answered, unanswered
        finally:
            await client.aclose()

    try:
        assert asyncio.run(scenario()) == ({"status": "success"}, None)
    finally:
        pusher.close()
