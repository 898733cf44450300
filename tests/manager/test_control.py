"""mute / resume / status / terminate, with a running fake task and without any."""

import json
import time

import redis

from services.core import keys
from services.core.records import PipelineRecord
from tests.manager.conftest import RunningManager
from tests.manager.fakes import REPORT, FakeWorker, call, register_worker
from tests.manager.test_server import INIT_PAYLOAD


def start_pipeline(manager: RunningManager, redis_client: redis.Redis) -> str:
    register_worker(redis_client)
    reply = call(manager.port, INIT_PAYLOAD)
    assert reply["response"] == {"status": "success"}
    return str(reply["pipeline_id"])


def orphan_pipeline(redis_client: redis.Redis, state: str = "PENDING") -> str:
    """A pipeline record no task runs (as after a lost worker, or before a claim)."""
    record = PipelineRecord("orphan", created_at=time.time())
    redis_client.hset(keys.pipeline_record("orphan"), mapping={**record.to_hash(), "state": state})  # type: ignore[dict-item]
    redis_client.sadd(keys.pipelines_index(), "orphan")
    return "orphan"


def command(manager: RunningManager, kind: str, pipeline_id: str) -> dict[str, object]:
    return call(manager.port, {"type": kind, "pipeline_id": pipeline_id})


def test_mute_and_resume_reach_the_task(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    pipeline_id = start_pipeline(manager, redis_client)

    muted = command(manager, "mute", pipeline_id)
    desired_after_mute = redis_client.hget(keys.pipeline_record(pipeline_id), "desired_state")
    resumed = command(manager, "resume", pipeline_id)

    assert muted == {**muted, "response": {"status": "success"}, "pipeline_id": pipeline_id}
    assert resumed["response"] == {"status": "success"}
    assert desired_after_mute == b"MUTED"
    assert redis_client.hget(keys.pipeline_record(pipeline_id), "desired_state") == b"RUNNING"
    assert fake_worker.tasks[0].commands == ["mute", "resume"]


def test_status_is_the_task_report_with_our_extras_and_no_secrets(
    manager: RunningManager, redis_client: redis.Redis
) -> None:
    pipeline_id = start_pipeline(manager, redis_client)
    redis_client.set(keys.results_dropped(pipeline_id), 3)

    reply = command(manager, "status", pipeline_id)

    report = reply["response"]["report"]  # type: ignore[index]
    assert {k: report[k] for k in REPORT} == REPORT
    assert report["pipeline_state"] == "RUNNING" and report["restarts"] == 0
    assert report["last_error"] is None and report["results_dropped"] == 3
    assert "API-KEY-SECRET" not in json.dumps(reply) and "pass@" not in json.dumps(reply)


def test_terminate_stops_the_task_and_keeps_the_last_status_readable(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    pipeline_id = start_pipeline(manager, redis_client)

    reply = command(manager, "terminate", pipeline_id)

    assert reply["response"] == {"status": "success"} and reply["pipeline_id"] == pipeline_id
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []
    fake_worker.tasks[0].join(2)
    assert not fake_worker.tasks[0].is_alive()
    status = command(manager, "status", pipeline_id)
    assert status["response"]["report"]["pipeline_state"] == "TERMINATED"  # type: ignore[index]
    assert 0 < redis_client.ttl(keys.pipeline_record(pipeline_id)) <= 600
    assert 0 < redis_client.ttl(keys.pipeline_report(pipeline_id)) <= 600


def test_commands_without_a_running_task_answer_at_once(
    manager: RunningManager, redis_client: redis.Redis
) -> None:
    pipeline_id = orphan_pipeline(redis_client)
    started = time.monotonic()

    muted = command(manager, "mute", pipeline_id)
    status = command(manager, "status", pipeline_id)

    assert time.monotonic() - started < 0.5  # no waiting for the 1 s command timeout
    assert muted["response"]["error_type"] == "operation_error"  # type: ignore[index]
    assert "has no running task (state PENDING)" in muted["response"]["error_message"]  # type: ignore[index]
    assert redis_client.hget(keys.pipeline_record(pipeline_id), "desired_state") == b"MUTED"  # recorded
    report = status["response"]["report"]  # type: ignore[index]
    assert report["pipeline_state"] == "PENDING" and report["sources_metadata"] == []


def test_terminate_succeeds_without_a_task(manager: RunningManager, redis_client: redis.Redis) -> None:
    pipeline_id = orphan_pipeline(redis_client, state="INITIALISING")

    reply = command(manager, "terminate", pipeline_id)

    assert reply["response"] == {"status": "success"}
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []
    record = redis_client.hgetall(keys.pipeline_record(pipeline_id))
    assert record[b"state"] == b"TERMINATED" and record[b"desired_state"] == b"TERMINATED"
    again = command(manager, "terminate", pipeline_id)
    assert again["response"] == {"status": "success"}
    muted = command(manager, "mute", pipeline_id)
    assert "has ended" in muted["response"]["error_message"]  # type: ignore[index]
    assert redis_client.hget(keys.pipeline_record(pipeline_id), "desired_state") == b"TERMINATED"


def test_a_task_that_does_not_answer_times_out(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    pipeline_id = start_pipeline(manager, redis_client)
    fake_worker.tasks[0].answer = False

    muted = command(manager, "mute", pipeline_id)
    status = command(manager, "status", pipeline_id)
    terminated = command(manager, "terminate", pipeline_id)

    assert muted["response"]["error_type"] == "operation_error"  # type: ignore[index]
    assert "did not answer mute in 1 s" in muted["response"]["error_message"]  # type: ignore[index]
    assert status["response"]["report"]["inference_throughput"] == 25.0  # type: ignore[index]  # stored report
    assert terminated["response"] == {"status": "success"}
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []


def test_status_answers_from_a_fresh_stored_report_without_asking_the_task(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    pipeline_id = start_pipeline(manager, redis_client)
    fake_worker.tasks[0].answer = False  # asking the task would take the 1 s command timeout
    fresh = {**REPORT, "inference_throughput": 12.5, "reported_at": time.time()}
    redis_client.set(keys.pipeline_report(pipeline_id), json.dumps(fresh))

    status = command(manager, "status", pipeline_id)

    assert status["response"]["report"]["inference_throughput"] == 12.5  # type: ignore[index]
    assert "status" not in fake_worker.tasks[0].commands


def test_status_asks_the_task_when_the_stored_report_is_stale(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    pipeline_id = start_pipeline(manager, redis_client)
    stale = {**REPORT, "inference_throughput": 1.0, "reported_at": time.time() - 60}
    redis_client.set(keys.pipeline_report(pipeline_id), json.dumps(stale))

    status = command(manager, "status", pipeline_id)

    assert status["response"]["report"]["inference_throughput"] == REPORT["inference_throughput"]  # type: ignore[index]
    assert fake_worker.tasks[0].commands == ["status"]
