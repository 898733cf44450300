"""The real Celery dispatch: the task name, kwargs and queue a worker receives, end to end."""

import json
from collections.abc import Iterator
from typing import Any

import celery.contrib.testing.tasks  # noqa: F401  (registers celery.ping, which start_worker expects)
import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from services.core import keys
from services.core.tasks import RUN_PIPELINE, celery_config, queue_for
from services.manager.dispatch import CeleryDispatcher
from tests.manager.conftest import ManagerFactory
from tests.manager.fakes import call, push_reply, register_worker
from tests.manager.test_server import INIT_PAYLOAD
from tests.support.redis_server import RedisServer

RECEIVED = "test:received"


@pytest.fixture
def celery_worker(redis_server: RedisServer) -> Iterator[None]:
    app = Celery("test-worker", set_as_current=False)
    app.conf.update(celery_config(redis_server.url))

    @app.task(name=RUN_PIPELINE, bind=True, shared=False)  # type: ignore[untyped-decorator]
    def run_pipeline(self: Any, pipeline_id: str, epoch: int, spec: dict[str, Any], reply_to: str) -> None:
        client = redis.Redis.from_url(redis_server.url)
        client.rpush(RECEIVED, json.dumps({"pipeline_id": pipeline_id, "epoch": epoch, "spec": spec,
                                           "queue": self.request.delivery_info.get("routing_key")}))
        client.hset(keys.pipeline_record(pipeline_id), "state", "RUNNING")
        push_reply(client, reply_to, {"status": "success"})
        client.close()

    with start_worker(app, pool="solo", perform_ping_check=False, queues=[queue_for("gpu")],
                      loglevel="WARNING", shutdown_timeout=10):
        yield
    app.close()


def test_init_dispatches_the_task_by_name_to_the_device_queue(
    celery_worker: None, start_manager: ManagerFactory, redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    dispatcher = CeleryDispatcher(redis_server.url)
    manager = start_manager(dispatcher=dispatcher, init_timeout=10.0)
    register_worker(redis_client, device="gpu")

    reply = call(manager.port, {**INIT_PAYLOAD, "device": "gpu"})
    manager.stop()
    dispatcher.close()

    assert reply["response"] == {"status": "success"}
    received = json.loads(redis_client.lpop(RECEIVED) or "{}")  # type: ignore[arg-type]
    assert received["pipeline_id"] == reply["pipeline_id"] and received["epoch"] == 1
    assert received["queue"] == queue_for("gpu")
    assert received["spec"]["api_key"] == "API-KEY-SECRET" and received["spec"]["device"] == "gpu"
