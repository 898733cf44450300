"""init: compile, device, live-worker check, dispatch, and nothing left behind when it fails."""

import json
from pathlib import Path

import redis

from services.core import keys
from services.core.tasks import queue_for
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.manager.test_server import INIT_PAYLOAD


def pipeline_keys(client: redis.Redis) -> list[bytes | str]:
    return sorted(
        client.keys(f"{keys.PREFIX}:pipeline*") + client.keys(f"{keys.PREFIX}:reply:*"))


def test_init_starts_a_pipeline_on_the_device_queue(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register_worker(redis_client)

    reply = call(manager.port, INIT_PAYLOAD)

    pipeline_id = reply["pipeline_id"]
    assert reply["response"] == {"status": "success"}
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == [pipeline_id]
    [dispatched] = fake_worker.calls
    assert dispatched["pipeline_id"] == pipeline_id and dispatched["epoch"] == 1
    assert dispatched["device"] == "cpu"
    assert dispatched["spec"]["api_key"] == "API-KEY-SECRET"  # the task needs it
    assert dispatched["reply_to"] == keys.reply_list(reply["request_id"])
    record = redis_client.hgetall(keys.pipeline_record(pipeline_id))
    assert record[b"epoch"] == b"1" and record[b"desired_state"] == b"RUNNING"
    assert json.loads(redis_client.get(keys.pipeline_spec(pipeline_id)) or "{}")["model_id"] == "yolov3-tiny/coco-416"


def test_init_without_a_live_worker_fails_at_once_and_writes_nothing(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register_worker(redis_client, device="cpu")

    reply = call(manager.port, {**INIT_PAYLOAD, "device": "gpu"})

    assert reply["response"]["error_type"] == "operation_error"
    assert f"no worker serves queue {queue_for('gpu')}" in reply["response"]["error_message"]
    assert reply["pipeline_id"] is None
    assert fake_worker.calls == [] and pipeline_keys(redis_client) == []


def test_init_with_unknown_device_lists_the_configured_ones(manager: RunningManager) -> None:
    reply = call(manager.port, {**INIT_PAYLOAD, "device": "tpu"})

    assert reply["response"]["error_type"] == "invalid_payload"
    assert "cpu, gpu, jetson" in reply["response"]["error_message"]


def test_init_with_a_bad_payload_is_invalid_payload_without_secrets(manager: RunningManager) -> None:
    reply = call(manager.port, {**INIT_PAYLOAD, "model_configuration": {"type": "object-detection",
                                                                       "confidence": 7}})

    assert reply["response"]["error_type"] == "invalid_payload"
    assert "model_configuration.confidence" in reply["response"]["error_message"]
    assert "API-KEY-SECRET" not in json.dumps(reply)


def test_init_that_times_out_leaves_nothing_behind(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    manager = start_manager(init_timeout=0.3)
    register_worker(redis_client)
    fake_worker.behaviour = "silent"

    reply = call(manager.port, INIT_PAYLOAD)

    assert reply["response"]["error_type"] == "operation_error"
    assert "0.3 s" in reply["response"]["error_message"]
    assert reply["pipeline_id"] == fake_worker.calls[0]["pipeline_id"]
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []
    assert pipeline_keys(redis_client) == []
    status = call(manager.port, {"type": "status", "pipeline_id": reply["pipeline_id"]})
    assert status["response"]["error_type"] == "not_found"


def test_init_the_task_refuses_is_relayed_and_leaves_nothing_behind(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register_worker(redis_client)
    fake_worker.behaviour = "fail"

    reply = call(manager.port, INIT_PAYLOAD)

    assert reply["pipeline_id"] == fake_worker.calls[0]["pipeline_id"]
    assert reply["response"]["error_type"] == "operation_error"
    assert reply["response"]["error_message"] == "camera unreachable"
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []
    assert pipeline_keys(redis_client) == []


WORKFLOW = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "image"}],
    "steps": [{"type": "roboflow_core/roboflow_object_detection_model@v1", "name": "detect",
               "image": "$inputs.image", "model_id": "yolov3-tiny/coco-416", "confidence": 0.4}],
    "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"}],
}


def newer_payload(workspace: str, workflow_id: str) -> dict[str, object]:
    return {
        "type": "init",
        "video_configuration": {"type": "VideoConfiguration", "video_reference": "data/media/file.mp4"},
        "processing_configuration": {"type": "WorkflowConfiguration", "workspace_name": workspace,
                                     "workflow_id": workflow_id},
        "sink_configuration": {"type": "MemorySinkConfiguration", "results_buffer_size": 8},
    }


def test_named_workflow_is_read_from_the_workflows_directory(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "people.json").write_text(json.dumps(WORKFLOW))
    manager = start_manager(workflows_directory=tmp_path)
    register_worker(redis_client)

    started = call(manager.port, newer_payload("acme", "people"))
    missing = call(manager.port, newer_payload("acme", "cars"))
    escaping = call(manager.port, newer_payload("..", "people"))

    assert started["response"] == {"status": "success"}
    assert '"confidence": 0.4' in json.dumps(fake_worker.calls[0]["spec"])  # the step's, wherever the plan keeps it
    assert fake_worker.calls[0]["spec"]["results_buffer_size"] == 8
    assert missing["response"]["error_type"] == "not_found" and "acme/cars" in missing["response"]["error_message"]
    assert escaping["response"]["error_type"] == "invalid_payload"
