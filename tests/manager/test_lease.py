"""The reaper lease: of several reapers on one real Redis exactly one acts; when its holder stops or
its lease expires another takes over within the TTL; a reaper whose renewal fails stops acting at once."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import redis

from services.core import keys
from services.core.records import PipelineRecord, PipelineState
from services.manager.lease import ReaperLease
from services.manager.metrics import ManagerMetrics
from services.manager.reaper import Reaper
from services.manager.service import redis_client
from services.manager.settings import ManagerSettings
from services.manager.store import PipelineStore
from tests.manager.fakes import RecordingDispatcher, register_worker
from tests.support.redis_server import RedisServer

INTERVAL = 0.05
TTL = 1.0


class RunningReaper:
    """One manager's reaper, driven by ``run`` as the service drives it, with its own Redis client."""

    def __init__(self, url: str, valid_fraction: float | None = None) -> None:
        self.settings = ManagerSettings(redis_url=url, reaper_interval=INTERVAL, reaper_lease_ttl=TTL,
                                        heartbeat_grace=0.1, restart_backoff_initial=0.0)
        self.client = redis_client(self.settings, 4)
        lease = ReaperLease(self.client, TTL, valid_fraction) if valid_fraction is not None else None
        self.dispatcher = RecordingDispatcher()
        self.reaper = Reaper(self.settings, PipelineStore(self.client, 600), self.dispatcher, self.client,
                             lease=lease)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.reaper.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await self.task
        await self.client.aclose()


@asynccontextmanager
async def reapers(url: str, count: int) -> AsyncIterator[list[RunningReaper]]:
    started = [RunningReaper(url) for _ in range(count)]
    try:
        yield started
    finally:
        for running in started:
            if not running.task.done():
                await running.close()


async def lost_pipeline(client: redis.asyncio.Redis, pipeline_id: str) -> None:
    """A RUNNING pipeline whose task is gone (no heartbeat): the reaper restarts it and re-dispatches it."""
    store = PipelineStore(client, 600)
    now = time.time()
    await store.create(PipelineRecord(pipeline_id, state=PipelineState.RUNNING, owner="w@h", created_at=now,
                                      updated_at=now, dispatched_at=now - 600), {"video_references": ["x"]})


async def eventually(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def run(coroutine: Awaitable[None]) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]


def test_of_two_reapers_exactly_one_holds_the_lease_and_acts(redis_server: RedisServer,
                                                              redis_client: redis.Redis) -> None:
    register_worker(redis_client)  # a worker with room: re-dispatches are admitted

    async def scenario() -> None:
        async with reapers(redis_server.url, 2) as (first, second):
            await eventually(lambda: first.reaper.lease.held or second.reaper.lease.held, 2)
            await asyncio.sleep(5 * INTERVAL)
            assert [first.reaper.lease.held, second.reaper.lease.held].count(True) == 1
            holder = first if first.reaper.lease.held else second
            assert redis_client.get(keys.reaper_lease()) == holder.reaper.lease.token.encode()

            for index in range(3):
                await lost_pipeline(holder.client, f"lost-{index}")
            await eventually(lambda: len(holder.dispatcher.calls) == 3, 5)
            await asyncio.sleep(10 * INTERVAL)
            assert sorted(holder.dispatcher.calls) == [(f"lost-{i}", 2) for i in range(3)]
            assert first.dispatcher.calls + second.dispatcher.calls == holder.dispatcher.calls  # the other: none

    run(scenario())


def test_a_stopping_holder_releases_the_lease_and_the_other_takes_over_at_its_next_attempt(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    register_worker(redis_client)  # a worker with room: re-dispatches are admitted

    async def scenario() -> None:
        async with reapers(redis_server.url, 2) as (first, second):
            await eventually(lambda: first.reaper.lease.held or second.reaper.lease.held, 2)
            holder, other = (first, second) if first.reaper.lease.held else (second, first)
            await holder.close()
            assert not holder.reaper.lease.held
            took = await eventually(lambda: other.reaper.lease.held, TTL)
            assert took < TTL / 2  # released: no waiting for the TTL
            await lost_pipeline(other.client, "after-stop")
            await eventually(lambda: other.dispatcher.calls == [("after-stop", 2)], 5)

    run(scenario())


def test_when_the_holder_dies_without_releasing_the_other_acts_within_the_ttl(
        redis_server: RedisServer, redis_client: redis.Redis) -> None:
    register_worker(redis_client)  # a worker with room: re-dispatches are admitted

    async def scenario() -> None:
        settings = ManagerSettings(redis_url=redis_server.url, reaper_interval=INTERVAL, reaper_lease_ttl=TTL)
        client = redis_client_for(settings)
        dead = ReaperLease(client, TTL)
        assert await dead.refresh()  # taken, then never renewed nor released: a manager killed with -9
        taken_at = time.monotonic()
        await lost_pipeline(client, "orphan")
        async with reapers(redis_server.url, 1) as (survivor,):
            await asyncio.sleep(TTL / 2)
            assert survivor.dispatcher.calls == [] and not survivor.reaper.lease.held  # the dead one's lease holds
            await eventually(lambda: survivor.dispatcher.calls == [("orphan", 2)], 2 * TTL)
            waited = time.monotonic() - taken_at
            # the key's TTL, then the next attempt, then the heartbeat grace the new holder's timers need
            assert TTL <= waited < TTL + survivor.settings.heartbeat_grace + 10 * INTERVAL + 0.5, waited
        await client.aclose()

    run(scenario())


def redis_client_for(settings: ManagerSettings) -> redis.asyncio.Redis:
    return redis_client(settings, 2)


def test_a_holder_whose_renewal_fails_stops_acting_at_once(redis_server: RedisServer,
                                                            redis_client: redis.Redis) -> None:
    register_worker(redis_client)  # a worker with room: re-dispatches are admitted

    async def scenario() -> None:
        metrics = ManagerMetrics()
        async with reapers(redis_server.url, 1) as (holder,):
            metrics.watch_lease(lambda: holder.reaper.lease.held)
            await eventually(lambda: holder.reaper.lease.held, 2)
            assert metrics.registry.get_sample_value("vsim_manager_reaper_lease_held") == 1.0
            # Another manager holds the key now (it expired and was taken meanwhile).
            redis_client.set(keys.reaper_lease(), "elsewhere:1:abc", px=60_000)
            await eventually(lambda: not holder.reaper.lease.held, 2)
            assert metrics.registry.get_sample_value("vsim_manager_reaper_lease_held") == 0.0
            await lost_pipeline(holder.client, "not-mine")
            await asyncio.sleep(20 * INTERVAL)
            assert holder.dispatcher.calls == []
            assert PipelineRecord.from_hash(redis_client.hgetall(keys.pipeline_record("not-mine"))).epoch == 1  # type: ignore[arg-type]
            assert redis_client.get(keys.reaper_lease()) == b"elsewhere:1:abc"  # never taken from its holder

            redis_client.delete(keys.reaper_lease())  # the other holder went away
            await eventually(lambda: holder.dispatcher.calls == [("not-mine", 2)], 5)

    run(scenario())


def test_no_sweep_acts_without_a_valid_lease(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    register_worker(redis_client)  # a worker with room: re-dispatches are admitted

    async def scenario() -> None:
        holder = RunningReaper(redis_server.url, valid_fraction=0.0)  # held, but never valid by its own clock
        try:
            await eventually(lambda: holder.reaper.lease.held, 2)
            await lost_pipeline(holder.client, "untouched")
            await asyncio.sleep(20 * INTERVAL)
            assert holder.dispatcher.calls == []
            assert holder.reaper.lease.held and not holder.reaper.lease.valid()
        finally:
            await holder.close()
        assert redis_client.get(keys.reaper_lease()) is None  # released on stop

    run(scenario())


def test_the_lease_ttl_must_outlive_a_sweep() -> None:
    with pytest.raises(ValueError, match="MANAGER_REAPER_LEASE_TTL"):
        ManagerSettings(reaper_interval=1.0, reaper_lease_ttl=1.5)
