"""Defence in depth: a task whose spec asks for more than the spec's ceilings (a manager configured wrongly,
a message written by something else) is refused by the worker before it allocates anything."""

import pytest
import redis

from services.core.plan import MAX_DECODING_BUFFER_SIZE, MAX_PREDICTIONS_QUEUE_SIZE, PipelineSpec
from services.core.records import PipelineState
from services.worker.settings import WorkerSettings
from services.worker.tasks import run_pipeline_task
from tests.support.pipelines import create_record, new_reply_list, pop_reply, read_record
from tests.support.redis_server import RedisServer


@pytest.mark.parametrize(("field", "value"), [
    ("decoding_buffer_size", 10**9),
    ("decoding_buffer_size", MAX_DECODING_BUFFER_SIZE + 1),
    ("predictions_queue_size", MAX_PREDICTIONS_QUEUE_SIZE + 1),
])
def test_a_task_asking_for_more_than_the_ceiling_fails_with_invalid_payload(
    redis_server: RedisServer, redis_client: redis.Redis, field: str, value: int
) -> None:
    record = create_record(redis_client)
    # A file that does not exist: a worker that did not refuse the spec would answer not_found, at once.
    spec = PipelineSpec(video_references=["data/media/missing.mp4"], model_id="yolov3-tiny/coco-416")
    payload = {**spec.task_payload(), field: value}
    reply_to = new_reply_list()

    state = run_pipeline_task(WorkerSettings(redis_url=redis_server.url), "celery@test", record.pipeline_id,
                              record.epoch, payload, reply_to)

    assert state == PipelineState.FAILED.value
    reply = pop_reply(redis_client, reply_to, timeout=5)
    assert reply is not None and reply["error_type"] == "invalid_payload"
    assert f"field '{field}'" in reply["error_message"]
    failed = read_record(redis_client, record.pipeline_id)
    assert failed.state is PipelineState.FAILED and f"field '{field}'" in failed.last_error
