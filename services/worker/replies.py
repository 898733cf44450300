"""Replies from a pipeline's task to the manager: a ``ControlReply`` pushed onto a reply list.

RPUSH and EXPIRE go in one transaction, so a reply nobody waits for expires by itself.
"""

from typing import Any

import redis

from services.core import keys
from services.core.control import ControlReply

SUCCESS: dict[str, Any] = {"status": "success"}


def push_reply(client: redis.Redis, list_key: str, request_id: str, response: dict[str, Any]) -> None:
    """Pushes ``response`` (the wire ``response`` object) onto ``list_key``."""
    reply = ControlReply(request_id=request_id, response=response)
    with client.pipeline(transaction=True) as pipe:
        pipe.rpush(list_key, reply.model_dump_json())
        pipe.expire(list_key, keys.REPLY_TTL)
        pipe.execute()
