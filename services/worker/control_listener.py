"""The control listener: a thread subscribed to a pipeline's control channel that answers commands.

Each message is a ``ControlCommand``; garbage and commands for another epoch are ignored. The
handler's ``response`` goes back as a ``ControlReply`` on ``keys.reply_list(request_id)``. Pub/sub
loses what is published while the listener reconnects, so after every (re)subscription it calls
``on_subscribed``, which reconciles the pipeline with the desired state in the record (the manager
writes that before it publishes): a lost message is only a late one. That includes redis-py's own
transparent reconnects, which resubscribe by themselves: their confirmation is the signal.

While no message comes the thread sleeps in the subscription's socket for up to ``POLL`` seconds;
``stop`` wakes it at once by publishing ``WAKE`` (an empty message every listener skips) on the
channel, so an idle pipeline's listener wakes once every few seconds instead of five times a second.

Reconnect attempts back off from ``BACKOFF_INITIAL`` to ``BACKOFF_MAX`` (1 s, so commands reach the
task within about a second of Redis coming back) and start again from the bottom after every
successful subscription.
"""

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis
from pydantic import ValidationError

from services.core import keys
from services.core.control import Command, ControlCommand
from services.core.errors import failure_response
from services.infra.os_threads import name_os_thread
from services.worker.replies import push_reply

log = logging.getLogger(__name__)

Handler = Callable[[Command], dict[str, Any]]

POLL = 2.0  # the longest the thread waits for a message before it looks at its stop flag (stop() wakes it)
CONFIRM_POLL = 0.2  # how often it looks at the stop flag while its subscription is not confirmed yet
WAKE = b""  # published by stop() to wake its own thread; not a command, so every listener skips it
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 1.0


class ControlListener:
    def __init__(
        self,
        client: redis.Redis,
        pipeline_id: str,
        epoch: int,
        handle: Handler,
        on_subscribed: Callable[[], None],
    ) -> None:
        self._client = client
        self._pipeline_id = pipeline_id
        self._epoch = epoch
        self._handle = handle
        self._on_subscribed = on_subscribed
        self._channel = keys.pipeline_control_channel(pipeline_id)
        self._stop = threading.Event()
        self.subscribed = threading.Event()  # set once the first subscription is confirmed
        self._delay = BACKOFF_INITIAL
        self._thread = threading.Thread(target=self._run, name=f"control-{pipeline_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            if self._thread.is_alive():
                self._wake()
            self._thread.join(timeout)

    def _wake(self) -> None:
        # Redis away: the thread waits to reconnect (on the stop flag) or is about to see its connection fail.
        with contextlib.suppress(redis.RedisError):
            self._client.publish(self._channel, WAKE)

    def _run(self) -> None:
        name_os_thread()
        self._delay = BACKOFF_INITIAL
        while not self._stop.is_set():
            try:
                self._session()
                return
            except redis.RedisError as exc:
                log.warning("pipeline %s: control channel lost (%s), reconnecting in %.1fs",
                            self._pipeline_id, type(exc).__name__, self._delay)
            if self._stop.wait(self._delay):
                return
            self._delay = min(self._delay * 2, BACKOFF_MAX)

    def _session(self) -> None:
        """Subscribe, reconcile, then serve messages until stopped; raises redis errors."""
        with self._client.pubsub() as pubsub:  # type: ignore[no-untyped-call]
            pubsub.subscribe(self._channel)
            self._await_confirmation(pubsub)
            self._on_subscribed()
            self.subscribed.set()
            self._delay = BACKOFF_INITIAL
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=POLL)
                if message is None:
                    continue
                if message["type"] == "message":
                    if message["data"]:  # empty: a WAKE
                        self._serve(message["data"])
                elif message["type"] == "subscribe":  # redis-py reconnected and resubscribed by itself
                    log.info("pipeline %s: control channel resubscribed", self._pipeline_id)
                    self._on_subscribed()

    def _await_confirmation(self, pubsub: Any) -> None:
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=CONFIRM_POLL)
            if message is not None and message["type"] == "subscribe":
                return

    def _serve(self, data: bytes) -> None:
        try:
            command = ControlCommand.model_validate_json(data)
        except ValidationError:
            log.warning("pipeline %s: ignoring an unreadable control message", self._pipeline_id)
            return
        if command.epoch != self._epoch:
            log.info("pipeline %s: ignoring %s for epoch %d (ours is %d)",
                     self._pipeline_id, command.command.value, command.epoch, self._epoch)
            return
        log.info("pipeline %s: %s (request %s)", self._pipeline_id, command.command.value, command.request_id)
        try:
            response = self._handle(command.command)
        except Exception as exc:  # a failed command is answered, never fatal to the listener
            log.exception("pipeline %s: %s failed", self._pipeline_id, command.command.value)
            response = failure_response(exc)
        push_reply(self._client, keys.reply_list(command.request_id), command.request_id, response)
