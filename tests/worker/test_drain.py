"""The worker's side of a drain: the registration beat reads the drain flag from Redis and the
consumer switch cancels or re-adds the worker's queues on Celery's consumer (a recording stand-in
here; the real Celery consumer in tests/e2e/test_drain.py)."""

import json
from collections.abc import Callable
from typing import Any

import redis

from services.core import keys
from services.worker.drain import ConsumerSwitch
from services.worker.registration import Registration, WorkerIdentity
from tests.support.waiting import wait_until

QUEUES = ("pipelines.cpu",)


class TaskConsumer:
    def __init__(self) -> None:
        self.queues = set(QUEUES)

    def consuming_from(self, queue: str) -> bool:
        return queue in self.queues


class Consumer:
    """What ConsumerSwitch uses of Celery's consumer; ``call_soon`` callbacks run when ``run_loop`` is called."""

    hostname = "w@test"

    def __init__(self) -> None:
        self.task_consumer: TaskConsumer | None = TaskConsumer()
        self.pending: list[Callable[[], None]] = []
        self.calls: list[tuple[str, str]] = []

    def call_soon(self, function: Callable[..., Any], *args: Any) -> None:
        self.pending.append(lambda: function(*args))

    def run_loop(self) -> None:
        while self.pending:
            self.pending.pop(0)()

    def cancel_task_queue(self, queue: str) -> None:
        self.calls.append(("cancel", queue))
        assert self.task_consumer is not None
        self.task_consumer.queues.discard(queue)

    def add_task_queue(self, queue: str) -> None:
        self.calls.append(("add", queue))
        assert self.task_consumer is not None
        self.task_consumer.queues.add(queue)


def test_the_switch_cancels_and_re_adds_the_queues_once_each() -> None:
    consumer = Consumer()
    switch = ConsumerSwitch(consumer, QUEUES)

    switch.apply(drained=False)
    assert consumer.pending == [] and switch.consuming()
    switch.apply(drained=True)
    switch.apply(drained=True)  # the next beat, before the consumer's loop ran: not asked twice
    assert len(consumer.pending) == 1 and switch.consuming()
    consumer.run_loop()
    assert consumer.calls == [("cancel", "pipelines.cpu")] and not switch.consuming()
    switch.apply(drained=True)
    assert consumer.pending == []

    switch.apply(drained=False)
    consumer.run_loop()
    assert consumer.calls[-1] == ("add", "pipelines.cpu") and switch.consuming()


def test_the_switch_does_nothing_without_a_running_consumer() -> None:
    consumer = Consumer()
    consumer.task_consumer = None  # not started yet, or reconnecting to the broker
    switch = ConsumerSwitch(consumer, QUEUES)
    switch.apply(drained=False)
    switch.apply(drained=True)
    assert consumer.pending == [] and not switch.consuming()


def test_the_beat_reads_the_drain_flag_and_publishes_what_the_consumer_does(redis_client: redis.Redis) -> None:
    consumer = Consumer()
    identity = WorkerIdentity(hostname="w@test", queues=QUEUES, concurrency=2, device="cpu")
    registration = Registration(redis_client, identity, switch=ConsumerSwitch(consumer, QUEUES))

    def published() -> dict[str, Any]:
        return dict(json.loads(redis_client.get(keys.worker_registration("w@test"))))  # type: ignore[arg-type]

    registration._beat()
    assert (published()["format_version"], published()["draining"], published()["consuming"]) == ("1.1", False, True)

    redis_client.hset(keys.worker_drains(), "w@test", "{}")  # drain_worker
    registration._beat()  # learns it
    consumer.run_loop()  # the consumer's loop cancels the queue
    registration._beat()
    assert (published()["draining"], published()["consuming"]) == (True, False)

    redis_client.hdel(keys.worker_drains(), "w@test")  # undrain_worker
    registration._beat()
    consumer.run_loop()
    registration._beat()
    assert (published()["draining"], published()["consuming"]) == (False, True)


def test_a_worker_without_a_switch_says_nothing_about_its_consumer(redis_client: redis.Redis) -> None:
    identity = WorkerIdentity(hostname="old@test", queues=QUEUES, concurrency=1, device="cpu")
    registration = Registration(redis_client, identity)
    registration.start()
    try:
        wait_until(lambda: redis_client.get(keys.worker_registration("old@test")) is not None)
        assert json.loads(redis_client.get(keys.worker_registration("old@test")))["consuming"] is None  # type: ignore[arg-type]
    finally:
        registration.stop()
