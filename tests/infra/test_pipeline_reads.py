"""StoredReads (the API's list and status from Redis) on a real redis-server: what it answers, what it
leaves to the manager, and an outage (each failure left to the manager, logged once, and back after)."""

import asyncio
import json
import logging
import time

import pytest
import redis
from redis.asyncio import Redis

from services.core import keys
from services.core.records import PipelineRecord
from services.infra.pipeline_reads import StoredReads
from tests.support.redis_server import running_redis


def store(client: redis.Redis, pipeline_id: str, state: str = "RUNNING", reported_ago: float = 0.0) -> None:
    record = PipelineRecord(pipeline_id, created_at=time.time(), state=state)  # type: ignore[arg-type]
    client.hset(keys.pipeline_record(pipeline_id), mapping=record.to_hash())  # type: ignore[arg-type]
    client.sadd(keys.pipelines_index(), pipeline_id)
    client.set(keys.pipeline_report(pipeline_id), json.dumps({"inference_throughput": 9.5,
                                                             "reported_at": time.time() - reported_ago}))


def test_the_stored_reads_answer_what_the_manager_answers_from_redis_and_nothing_else(caplog: pytest.LogCaptureFixture
                                                                                     ) -> None:
    caplog.set_level(logging.WARNING, "services.infra.pipeline_reads")
    with running_redis() as server:
        with redis.Redis.from_url(server.url) as client:
            store(client, "fresh")
            store(client, "stale", reported_ago=10)
            store(client, "over", state="TERMINATED", reported_ago=600)

        async def scenario() -> list[object]:
            async_client = Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
            reads = StoredReads(async_client, 2.0)
            answers: list[object] = [await reads.reply({"type": "list_pipelines"})]
            for command in ({"type": "status", "pipeline_id": "fresh"}, {"type": "status", "pipeline_id": "stale"},
                            {"type": "status", "pipeline_id": "over"}, {"type": "status", "pipeline_id": "none"},
                            {"type": "status"}, {"type": "terminate", "pipeline_id": "fresh"}):
                answers.append(await reads.reply(command))
            server.stop()
            answers += [await reads.reply({"type": "list_pipelines"}) for _ in range(3)]  # the outage
            server.start()  # empty (not persisted): written again
            with redis.Redis.from_url(server.url) as again:
                store(again, "fresh")
            answers.append(await reads.reply({"type": "status", "pipeline_id": "fresh"}))
            await async_client.aclose()
            return answers

        listed, fresh, stale, over, unknown, no_id, not_a_read, *outage, after = asyncio.run(scenario())

    assert isinstance(listed, dict) and set(listed["response"]["pipelines"]) == {"fresh", "stale", "over"}
    assert listed["response"]["status"] == "success" and listed["pipeline_id"] is None
    assert isinstance(fresh, dict) and fresh["pipeline_id"] == "fresh"
    report = fresh["response"]["report"]
    assert (report["inference_throughput"], report["pipeline_state"], report["results_dropped"]) == (9.5, "RUNNING", 0)
    assert stale is None  # the running task must be asked: the manager's part
    assert isinstance(over, dict) and over["response"]["report"]["pipeline_state"] == "TERMINATED"
    assert (unknown, no_id, not_a_read) == (None, None, None)
    assert outage == [None, None, None]
    assert isinstance(after, dict) and after["response"]["report"]["inference_throughput"] == 9.5
    told = [record.getMessage() for record in caplog.records]
    assert len(told) == 2 and "the manager answers them until Redis does" in told[0], told
    assert told[1] == "reads from Redis work again"
