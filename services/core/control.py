"""Control messages between the manager and a pipeline's task (over Redis pub/sub + reply lists).

The manager writes the desired state into the record first, then publishes a ``ControlCommand`` on
``keys.pipeline_control_channel``; the task applies it and RPUSHes a ``ControlReply`` JSON onto
``keys.reply_list(request_id)``. When the task starts it pushes an init reply onto the list named in
its dispatch (success once it has claimed the pipeline and its sources are starting, or failure).
"""

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class Command(StrEnum):
    MUTE = "mute"
    RESUME = "resume"
    STATUS = "status"
    TERMINATE = "terminate"


class ControlCommand(BaseModel):
    model_config = ConfigDict(frozen=True)

    command: Command
    request_id: str
    epoch: int  # a task whose epoch differs ignores the command


class ControlReply(BaseModel):
    """``response`` is the reply's ``response`` object as it goes on the wire
    (``{"status": "success", ...}`` or a failure made by ``errors.failure_response``)."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    response: dict[str, Any]
