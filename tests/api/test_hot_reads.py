"""List and status answered from Redis by the API (services.infra.pipeline_reads, services.api.hot_reads),
against a real in-process manager and the session's real Redis: the same bodies as the routes answer
through the manager, the cases left to the manager, the token still required, and reads that keep
working while the manager is down."""

import gc
import json
import re
import time
from typing import Any

import pytest
import redis

from services.core import keys
from services.core.records import PipelineRecord
from tests.api.conftest import ApiFactory
from tests.manager.conftest import RunningManager
from tests.manager.fakes import REPORT
from tests.support.redis_server import RedisServer
from tests.support.streams import free_port
from tests.support.waiting import wait_until

NEWER, OLDER = "/inference_pipelines/{}/status", "/status/{}"
PATHS = [NEWER, OLDER, "/inference_pipelines/list", "/list_pipelines"]


def stored_pipeline(client: redis.Redis, pipeline_id: str, state: str = "RUNNING", reported_ago: float = 0.1,
                    created_at: float | None = None) -> None:
    """A pipeline's record, index entry, stored report and dropped count, as a task leaves them."""
    record = PipelineRecord(pipeline_id, created_at=created_at or time.time(), state=state,  # type: ignore[arg-type]
                            owner="w@test:1", restarts=2, last_error="camera lost once")
    client.hset(keys.pipeline_record(pipeline_id), mapping=record.to_hash())  # type: ignore[arg-type]
    client.sadd(keys.pipelines_index(), pipeline_id)
    client.set(keys.pipeline_report(pipeline_id), json.dumps({**REPORT, "reported_at": time.time() - reported_ago}))
    client.set(keys.results_dropped(pipeline_id), 7)


def without_request_id(body: bytes) -> bytes:
    return re.sub(rb'"request_id":"[^"]*"', b'"request_id":"-"', body)


@pytest.fixture
def apis(manager: RunningManager, serve_api: ApiFactory, redis_server: RedisServer) -> tuple[Any, Any]:
    """The same manager behind an API that reads Redis and one that asks the manager for everything."""
    return (serve_api(manager_port=manager.port, redis_url=redis_server.url),
            serve_api(manager_port=manager.port, redis_url=redis_server.url, stored_reads=False))


def test_the_stored_reads_answer_the_bytes_the_routes_answer_through_the_manager(
    apis: tuple[Any, Any], redis_client: redis.Redis
) -> None:
    stored_pipeline(redis_client, "p-new", created_at=time.time())
    stored_pipeline(redis_client, "p-old", created_at=time.time() - 60)
    reading, asking = apis
    for template in PATHS:
        path = template.format("p-new")
        fast, slow = reading.http.get(path), asking.http.get(path)
        assert (fast.status_code, slow.status_code) == (200, 200), (path, fast.text, slow.text)
        assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
        assert without_request_id(fast.content) == without_request_id(slow.content), path
    status = reading.http.get(NEWER.format("p-new")).json()
    assert status["report"]["pipeline_state"] == "RUNNING" and status["report"]["results_dropped"] == 7
    assert (status["report"]["restarts"], status["report"]["last_error"]) == (2, "camera lost once")
    assert status["context"]["pipeline_id"] == "p-new" and status["context"]["request_id"]
    assert reading.http.get("/inference_pipelines/list").json()["pipelines"] == ["p-old", "p-new"]  # oldest first


def test_what_the_stored_reads_cannot_answer_goes_to_the_manager(
    apis: tuple[Any, Any], manager: RunningManager, redis_client: redis.Redis
) -> None:
    reading, _ = apis
    missing = reading.http.get(NEWER.format("no-such-id"))
    assert missing.status_code == 404 and missing.json()["error_type"] == "ProcessesManagerNotFoundError"
    assert reading.http.get(OLDER.format("no-such-id")).json()["status"] == "failure"  # the older body

    stored_pipeline(redis_client, "p-stale", reported_ago=30)  # too old, and no task to ask: the manager says so
    stale = reading.http.get(NEWER.format("p-stale"))
    assert stale.status_code == 200 and stale.json()["report"]["pipeline_state"] == "RUNNING"

    redis_client.hset(keys.pipeline_record("p-stale"), "format_version", "9.0")  # a newer release's record
    newer = reading.http.get(NEWER.format("p-stale"))
    assert newer.status_code != 200 and "9.0" in newer.text  # the manager's refusal, naming the version


def test_a_stale_report_of_a_finished_pipeline_is_answered_from_redis(
    serve_api: ApiFactory, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = serve_api(manager_port=free_port(), redis_url=redis_server.url)  # no manager at all
    stored_pipeline(redis_client, "p-ended", state="ENDED", reported_ago=3600)
    stored_pipeline(redis_client, "p-fresh")
    stored_pipeline(redis_client, "p-stale", reported_ago=3600)

    assert api.http.get(NEWER.format("p-ended")).json()["report"]["pipeline_state"] == "ENDED"
    assert api.http.get(OLDER.format("p-fresh")).json()["report"]["inference_throughput"] == 25.0
    assert set(api.http.get("/list_pipelines").json()["pipelines"]) == {"p-ended", "p-fresh", "p-stale"}
    down = api.http.get(NEWER.format("p-stale"))  # the running task must be asked: only the manager can
    assert down.status_code == 503 and "unreachable" in down.json()["message"]


def test_the_token_guards_the_stored_reads_too(
    manager: RunningManager, serve_api: ApiFactory, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = serve_api(manager_port=manager.port, redis_url=redis_server.url, auth_token="the-token")
    stored_pipeline(redis_client, "p-1")
    for template in PATHS:
        path = template.format("p-1")
        assert api.http.get(path).status_code == 401, path
        assert api.http.get(path, headers={"Authorization": "Bearer the-token"}).status_code == 200, path
    token = {"Authorization": "Bearer the-token"}
    assert api.http.post(NEWER.format("p-1"), headers=token).status_code == 405  # only GET takes the fast path


def test_redis_unreachable_leaves_the_reads_to_the_manager(
    manager: RunningManager, serve_api: ApiFactory, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    api = serve_api(manager_port=manager.port, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    stored_pipeline(redis_client, "p-1")  # in the manager's Redis, which the API cannot reach
    for _ in range(3):
        assert api.http.get(NEWER.format("p-1")).json()["report"]["results_dropped"] == 7
        assert api.http.get("/inference_pipelines/list").json()["pipelines"] == ["p-1"]
    told = [r.getMessage() for r in caplog.records if r.name == "services.infra.pipeline_reads"]
    assert len(told) == 1 and "the manager answers them until Redis does" in told[0]  # once per outage


def test_a_memoised_answer_follows_redis_and_ends_when_the_report_goes_stale(
    serve_api: ApiFactory, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = serve_api(manager_port=free_port(), redis_url=redis_server.url, status_max_age=3.0)  # no manager
    stored_pipeline(redis_client, "p-1", reported_ago=1.0)  # fresh for 2 more seconds
    first, second = (api.http.get(NEWER.format("p-1")) for _ in range(2))
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["context"]["request_id"] != second.json()["context"]["request_id"]  # a new id each time
    assert without_request_id(first.content) == without_request_id(second.content)
    redis_client.set(keys.results_dropped("p-1"), 8)
    assert api.http.get(NEWER.format("p-1")).json()["report"]["results_dropped"] == 8
    redis_client.hset(keys.pipeline_record("p-1"), "state", "MUTED")
    assert api.http.get(OLDER.format("p-1")).json()["report"]["pipeline_state"] == "MUTED"
    listed = api.http.get("/list_pipelines").json()
    stored_pipeline(redis_client, "p-2")
    assert listed["pipelines"] == ["p-1"] and api.http.get("/list_pipelines").json()["pipelines"] == ["p-1", "p-2"]
    # the stored report goes stale with nothing changed in Redis: the manager must be asked (it is down)
    wait_until(lambda: api.http.get(NEWER.format("p-1")).status_code == 503, timeout=10)


def test_the_api_freezes_its_heap_once_its_app_is_built(serve_api: ApiFactory) -> None:
    gc.unfreeze()
    try:
        api = serve_api(manager_port=free_port())
        assert api.http.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
