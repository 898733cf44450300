"""Control commands to a pipeline's task: PUBLISH on its channel, then wait for the reply list.

The handler writes the desired state into the record first (the task reconciles with it), so a
lost message is only a late one. ``PUBLISH`` answers how many subscribers got the command: with none
there is nobody to wait for.
"""

import logging
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from services.core import keys
from services.core.control import Command, ControlCommand, ControlReply
from services.core.errors import InternalError, OperationError

logger = logging.getLogger(__name__)


class NoListenerError(Exception):
    """No task is subscribed to the pipeline's control channel."""


class Controller:
    def __init__(self, redis: Redis, command_timeout: float) -> None:
        self._redis = redis
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
        response = await wait_reply(self._redis, request_id, self._timeout)
        if response is None:
            raise OperationError(
                f"the worker running pipeline {pipeline_id} did not answer {command.value} "
                f"in {self._timeout:g} s",
                "The worker running the pipeline did not answer in time.",
            )
        return response


async def wait_reply(redis: Redis, request_id: str, timeout: float) -> dict[str, Any] | None:
    """The ``response`` a task pushed for ``request_id``, or None after ``timeout`` seconds."""
    popped = await redis.blpop([keys.reply_list(request_id)], timeout=timeout)
    if popped is None:
        return None
    try:
        reply = ControlReply.model_validate_json(popped[1])
    except ValidationError as exc:
        logger.error("unreadable reply to request %s", request_id)
        raise InternalError(f"the worker sent an unreadable reply to request {request_id}") from exc
    return reply.response
