"""Control commands to a pipeline's task: PUBLISH on its channel, then wait for the reply list.

The handler writes the desired state into the record first (the task reconciles with it), so a
lost message is only a late one. ``PUBLISH`` answers how many subscribers got the command: with none
there is nobody to wait for.
"""

import asyncio
import logging
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from services.core import keys
from services.core.control import Command, ControlCommand, ControlReply
from services.core.errors import InternalError, OperationError

logger = logging.getLogger(__name__)


_REDIS_PY_SOCKET_TIMEOUT = 5.0  # redis-py's default when a client sets none


class NoListenerError(Exception):
    """No task is subscribed to the pipeline's control channel."""


class Controller:
    def __init__(self, redis: Redis, command_timeout: float, blocking: Redis | None = None) -> None:
        """``blocking``: the client of the reply waits (a BLPOP holds its connection); default ``redis``."""
        self._redis = redis
        self._blocking = blocking or redis
        self._timeout = command_timeout

    async def send(self, pipeline_id: str, epoch: int, command: Command, request_id: str) -> dict[str, Any]:
        """The task's reply ``response``.

        Raises :class:`NoListenerError` when no task listens, :class:`OperationError` when the
        task does not answer within the command timeout.
        """
        message = ControlCommand(command=command, request_id=request_id, epoch=epoch)
        receivers = await self._redis.publish(keys.pipeline_control_channel(pipeline_id),
                                              message.model_dump_json())
        if receivers == 0:
            raise NoListenerError(pipeline_id)
        response = await wait_reply(self._blocking, request_id, self._timeout)
        if response is None:
            raise OperationError(
                f"the worker running pipeline {pipeline_id} did not answer {command.value} "
                f"in {self._timeout:g} s",
                "The worker running the pipeline did not answer in time.",
            )
        return response


async def wait_reply(redis: Redis, request_id: str, timeout: float) -> dict[str, Any] | None:
    """The ``response`` a task pushed for ``request_id``, or None after ``timeout`` seconds.

    One BLPOP longer than the client's socket timeout is cut by it (measured: a 7 s BLPOP raised
    redis' TimeoutError after the default 5 s, so an INIT could not wait its 30 s), hence a series
    of BLPOPs, each a second shorter than that timeout. The reply list outlives the gaps between
    them (it expires after ``keys.REPLY_TTL``): nothing pushed in between is lost.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    step = _blocking_step(redis)
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        # BLPOP's timeout 0 means "forever": never pass less than a millisecond.
        popped = await redis.blpop([keys.reply_list(request_id)], timeout=max(0.001, min(remaining, step)))
        if popped is not None:
            break
    try:
        reply = ControlReply.model_validate_json(popped[1])
    except ValidationError as exc:
        logger.error("unreadable reply to request %s", request_id)
        raise InternalError(f"the worker sent an unreadable reply to request {request_id}") from exc
    return reply.response


def _blocking_step(redis: Redis) -> float:
    """The longest one BLPOP may block on ``redis``: a second less than its socket timeout."""
    socket_timeout = redis.connection_pool.connection_kwargs.get("socket_timeout", _REDIS_PY_SOCKET_TIMEOUT)
    if socket_timeout is None:  # no socket timeout: one BLPOP may take the whole wait
        return float("inf")
    return max(0.1, float(socket_timeout) - 1.0)
