"""StoredReads (the API's list and status from Redis) on a real redis-server: what it answers, what it
leaves to the manager, and an outage (each failure left to the manager, logged once, and back after)."""

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from services.core import keys
from services.core.records import PipelineRecord
from services.infra import pipeline_reads
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


def test_a_rendering_is_memoised_on_what_redis_holds_with_a_new_request_id_in_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_reads, "MEMO_SIZE", 3)
    rendered: list[dict[str, Any]] = []

    def render(envelope: dict[str, Any]) -> bytes:
        rendered.append(envelope)
        return json.dumps(envelope).encode()

    def constant(envelope: dict[str, Any]) -> bytes:  # a rendering that shows no request id
        return json.dumps(envelope["response"]).encode()

    with running_redis() as server, redis.Redis.from_url(server.url) as client:
        store(client, "p-1", reported_ago=1.0)  # fresh for 1.5 more seconds

        async def scenario() -> list[Any]:
            async_client = Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
            reads = StoredReads(async_client, 2.5)
            status = {"type": "status", "pipeline_id": "p-1"}
            answers = [await reads.rendered(status, render) for _ in range(3)]
            answers += [await reads.rendered(status, constant) for _ in range(2)]
            client.set(keys.results_dropped("p-1"), 4)
            answers.append(await reads.rendered(status, render))
            for other in ("p-2", "p-3", "p-4"):
                store(client, other)
                answers.append(await reads.rendered({"type": "status", "pipeline_id": other}, render))
            answers.append(len(reads._memo))
            answers.append(await reads.rendered({"type": "status", "pipeline_id": "none"}, render))
            await asyncio.sleep(1.6)  # p-1's report is stale now, unchanged in Redis
            answers.append(await reads.rendered(status, render))
            await async_client.aclose()
            return answers

        *same, plain_1, plain_2, changed, _, _, _, memo_size, unknown, stale = asyncio.run(scenario())

    bodies = [json.loads(body) for body in same]
    ids = {body["request_id"] for body in bodies}
    assert len(ids) == 3 and pipeline_reads._MARK not in ids and all(uuid.UUID(i).version == 4 for i in ids)
    assert all({**body, "request_id": "-"} == {**bodies[0], "request_id": "-"} for body in bodies)
    assert bodies[0]["response"]["report"]["inference_throughput"] == 9.5
    assert plain_1 == plain_2 and json.loads(plain_1)["report"]["results_dropped"] == 0
    assert json.loads(changed)["response"]["report"]["results_dropped"] == 4  # a new reading, rendered again
    # rendered: p-1, p-1 changed, p-2..p-4, and p-1 changed again at the end (the memo of 3 had let it go);
    # the constant rendering once (not counted here)
    assert len(rendered) == 1 + 1 + 3 + 1
    assert memo_size == 3  # bounded: the oldest entries went
    assert unknown is None and stale is None
