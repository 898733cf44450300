"""The control listener against a real Redis: commands answered, the wake-up skipped, stop prompt."""

import threading
import time
import uuid
from typing import Any

import redis

from services.core import keys
from services.core.control import Command, ControlCommand, ControlReply
from services.worker import control_listener
from services.worker.control_listener import ControlListener


def _listener(client: redis.Redis, handled: list[Command], epoch: int = 1) -> ControlListener:
    def handle(command: Command) -> dict[str, Any]:
        handled.append(command)
        return {"status": "success"}

    listener = ControlListener(client, "p1", epoch, handle, on_subscribed=lambda: None)
    listener.start()
    assert listener.subscribed.wait(10)
    return listener


def test_stop_wakes_the_thread_waiting_for_a_message(redis_client: redis.Redis, monkeypatch: Any) -> None:
    monkeypatch.setattr(control_listener, "POLL", 3600.0)  # only the WAKE can end its wait within the test
    listener = _listener(redis_client, [])
    time.sleep(0.3)  # the thread is inside its wait for a message by now
    listener.stop(timeout=30)
    assert not listener._thread.is_alive()


def test_a_wake_is_not_a_command_and_a_command_after_it_is_answered(redis_client: redis.Redis, caplog: Any) -> None:
    handled: list[Command] = []
    listener = _listener(redis_client, handled)
    try:
        channel = keys.pipeline_control_channel("p1")
        assert redis_client.publish(channel, control_listener.WAKE) >= 1
        request_id = uuid.uuid4().hex
        command = ControlCommand(command=Command.MUTE, epoch=1, request_id=request_id)
        redis_client.publish(channel, command.model_dump_json())
        popped = redis_client.blpop([keys.reply_list(request_id)], timeout=10)
        assert popped is not None
        assert ControlReply.model_validate_json(popped[1]).response == {"status": "success"}
        assert handled == [Command.MUTE]  # the wake reached the handler as nothing
        assert "unreadable" not in caplog.text  # nor was it taken for a broken command
    finally:
        listener.stop()


def test_stop_when_redis_refuses_still_returns(redis_client: redis.Redis) -> None:
    listener = _listener(redis_client, [])
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    listener._client = dead  # the wake cannot be published: the thread still ends, by its poll at the latest
    done = threading.Event()
    threading.Thread(target=lambda: (listener.stop(timeout=control_listener.POLL * 3), done.set())).start()
    assert done.wait(control_listener.POLL * 4)
    assert not listener._thread.is_alive()
