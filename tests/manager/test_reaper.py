"""Supervision: ended pipelines leave the list with their status readable; lost ones fail."""

import time

import redis

from services.core import keys
from services.core.records import PipelineRecord
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call
from tests.manager.test_control import orphan_pipeline, start_pipeline
from tests.support.waiting import wait_until


def listed(manager: RunningManager) -> list[str]:
    return call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"]  # type: ignore[no-any-return]


def report(manager: RunningManager, pipeline_id: str) -> dict[str, object]:
    return call(manager.port, {"type": "status", "pipeline_id": pipeline_id})["response"]["report"]  # type: ignore[no-any-return]


def test_ended_pipeline_leaves_the_list_and_keeps_its_status(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    pipeline_id = start_pipeline(manager, redis_client)
    fake_worker.tasks[0].lose()  # its files ended: the task wrote ENDED and exited
    redis_client.hset(keys.pipeline_record(pipeline_id), "state", "ENDED")
    redis_client.delete(keys.pipeline_heartbeat(pipeline_id))

    wait_until(lambda: listed(manager) == [])

    status = report(manager, pipeline_id)
    assert status["pipeline_state"] == "ENDED" and status["inference_throughput"] == 25.0
    assert 0 < redis_client.ttl(keys.pipeline_record(pipeline_id)) <= 600


def test_pipeline_whose_heartbeat_stops_fails(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    pipeline_id = start_pipeline(manager, redis_client)
    time.sleep(0.5)  # beyond the grace: a beating pipeline stays
    assert listed(manager) == [pipeline_id]

    fake_worker.tasks[0].lose()
    redis_client.delete(keys.pipeline_heartbeat(pipeline_id))  # as its TTL would

    wait_until(lambda: listed(manager) == [])
    status = report(manager, pipeline_id)
    assert status["pipeline_state"] == "FAILED" and status["last_error"] == "worker lost (no heartbeat)"


def test_pending_pipeline_nobody_claims_fails(
    start_manager: ManagerFactory, redis_client: redis.Redis
) -> None:
    pipeline_id = orphan_pipeline(redis_client)
    redis_client.hset(keys.pipeline_record(pipeline_id), "created_at", time.time() - 60)
    manager = start_manager(init_timeout=5.0)

    wait_until(lambda: listed(manager) == [])
    assert report(manager, pipeline_id)["pipeline_state"] == "FAILED"


def test_fresh_pending_pipeline_is_left_alone(manager: RunningManager, redis_client: redis.Redis) -> None:
    pipeline_id = orphan_pipeline(redis_client)
    time.sleep(0.5)
    assert listed(manager) == [pipeline_id]
    assert PipelineRecord.from_hash(redis_client.hgetall(keys.pipeline_record(pipeline_id))).state == "PENDING"  # type: ignore[arg-type]


def test_a_restarted_manager_sees_the_same_pipelines(
    start_manager: ManagerFactory, redis_client: redis.Redis
) -> None:
    first = start_manager()
    pipeline_ids = [start_pipeline(first, redis_client) for _ in range(2)]
    before = (listed(first), [report(first, pid) for pid in pipeline_ids])
    first.stop()

    second = start_manager()
    after = (listed(second), [report(second, pid) for pid in pipeline_ids])

    assert before == after and sorted(before[0]) == sorted(pipeline_ids)
    assert call(second.port, {"type": "mute", "pipeline_id": pipeline_ids[0]})["response"]["status"] == "success"
