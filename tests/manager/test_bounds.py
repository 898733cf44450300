"""Every size a client sends is bounded: the manager's settings refuse large buffers before anything is
written, and the spec's own ceilings (which the worker checks again, tests/worker/test_spec_bounds.py)
refuse the rest."""

from typing import Any

import pytest
import redis
from pydantic import ValidationError

from services.core.errors import InvalidPayloadError
from services.core.plan import MAX_DECODING_BUFFER_SIZE, MAX_PREDICTIONS_QUEUE_SIZE, compile_init
from services.manager.settings import ManagerSettings
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.manager.test_init import pipeline_keys
from tests.manager.test_webrtc import webrtc_request
from tools.payloads import newer_init

CAMERA = "rtsp://camera.example/stream"


def assert_refused_without_trace(reply: dict[str, Any], message: str, manager: RunningManager,
                                 fake_worker: FakeWorker, client: redis.Redis) -> None:
    assert reply["response"]["status"] == "failure"
    assert (reply["response"]["error_type"], reply["response"]["error_message"]) == ("invalid_payload", message)
    assert reply["pipeline_id"] is None and fake_worker.calls == [] and pipeline_keys(client) == []
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"decoding_buffer_size": 257},
     "field 'decoding_buffer_size': 257 is above the maximum of 256 (MANAGER_MAX_DECODING_BUFFER_SIZE)"),
    ({"predictions_queue_size": 4097},
     "field 'predictions_queue_size': 4097 is above the maximum of 4096 (MANAGER_MAX_PREDICTIONS_QUEUE_SIZE)"),
    ({"results_buffer_size": 1001}, "field 'sink_configuration.results_buffer_size': 1001 is above the maximum "
                                    "of 1000 (MANAGER_MAX_RESULTS_BUFFER_SIZE)"),
], ids=["decoding", "predictions", "results"])
def test_an_init_asking_for_more_than_the_manager_allows_is_refused_before_anything_is_written(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis, fields: dict[str, Any],
    message: str
) -> None:
    manager = start_manager(max_results_buffer_size=1000)  # the other two at their defaults
    register_worker(redis_client)

    reply = call(manager.port, newer_init(CAMERA, **fields))

    assert_refused_without_trace(reply, message, manager, fake_worker, redis_client)


def test_buffers_at_the_maximum_are_accepted(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    manager = start_manager(max_decoding_buffer_size=32, max_predictions_queue_size=100, max_results_buffer_size=10)
    register_worker(redis_client)

    reply = call(manager.port, newer_init(CAMERA, results_buffer_size=10, decoding_buffer_size=32,
                                          predictions_queue_size=100))

    assert reply["response"] == {"status": "success"}
    spec = fake_worker.calls[0]["spec"]
    assert (spec["decoding_buffer_size"], spec["predictions_queue_size"], spec["results_buffer_size"]) == (32, 100, 10)


def test_a_webrtc_request_is_bounded_like_an_init(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register_worker(redis_client)

    reply = call(manager.port, webrtc_request(decoding_buffer_size=100_000))

    assert reply["response"]["error_type"] == "invalid_payload"
    assert "field 'decoding_buffer_size'" in reply["response"]["error_message"]
    assert "TURN-SECRET" not in str(reply)
    assert fake_worker.calls == [] and pipeline_keys(redis_client) == []


@pytest.mark.parametrize("setting", [
    {"max_decoding_buffer_size": MAX_DECODING_BUFFER_SIZE + 1},
    {"max_predictions_queue_size": MAX_PREDICTIONS_QUEUE_SIZE + 1},
    {"max_results_buffer_size": 100_001},
    {"max_decoding_buffer_size": 0},
], ids=["decoding", "predictions", "results", "zero"])
def test_a_manager_cannot_allow_more_than_the_workers_accept(setting: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ManagerSettings(**setting)


# The spec's own ceilings: what the manager refuses whatever its settings, and every worker again.
@pytest.mark.parametrize(("extra", "video", "path"), [
    ({"decoding_buffer_size": MAX_DECODING_BUFFER_SIZE + 1}, {}, "decoding_buffer_size"),
    ({"predictions_queue_size": MAX_PREDICTIONS_QUEUE_SIZE + 1}, {}, "predictions_queue_size"),
    ({"consumption_timeout": 8 * 86_400}, {}, "consumption_timeout"),
    ({}, {"max_fps": 1001}, "video_configuration.max_fps"),
    ({}, {"batch_collection_timeout": 61}, "video_configuration.batch_collection_timeout"),
    ({}, {"processing_mode": "freshest", "max_staleness": 3601.0}, "video_configuration.max_staleness"),
    ({}, {"video_source_properties": {f"p{i}": 1 for i in range(65)}}, "video_configuration.video_source_properties"),
], ids=["decoding", "predictions", "consumption", "fps", "batch", "staleness", "properties"])
def test_every_size_and_duration_of_a_payload_has_a_ceiling(extra: dict[str, Any], video: dict[str, Any],
                                                            path: str) -> None:
    payload = newer_init(CAMERA, **extra)
    payload["video_configuration"].update(video)

    with pytest.raises(InvalidPayloadError) as refused:
        compile_init(payload)

    assert f"field '{path}'" in str(refused.value)


@pytest.mark.parametrize("name", ["max_candidates", "max_detections"])
def test_the_detection_limits_of_a_flat_payload_have_a_ceiling(name: str) -> None:
    payload = {"model_id": "yolov3-tiny/coco-416", "video_reference": CAMERA, "type": "init",
               "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": 9999},
               "model_configuration": {"type": "object-detection", name: 100_001}}

    with pytest.raises(InvalidPayloadError) as refused:
        compile_init(payload)

    assert f"field 'model_configuration.{name}'" in str(refused.value)
