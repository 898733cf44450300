"""Test helpers that play the manager's part around a pipeline task: records, commands, replies."""

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from services.core import keys
from services.core.control import Command, ControlCommand, ControlReply
from services.core.records import DesiredState, PipelineRecord, PipelineState

if TYPE_CHECKING:
    import numpy as np


def create_record(
    client: redis.Redis, pipeline_id: str | None = None, epoch: int = 1, **fields: Any
) -> PipelineRecord:
    """A PENDING record, as the manager writes it before dispatching."""
    record = PipelineRecord(
        pipeline_id=pipeline_id or uuid.uuid4().hex, epoch=epoch, created_at=time.time(), **fields
    )
    client.hset(keys.pipeline_record(record.pipeline_id), mapping=record.to_hash())
    return record


def read_record(client: redis.Redis, pipeline_id: str) -> PipelineRecord:
    return PipelineRecord.from_hash(client.hgetall(keys.pipeline_record(pipeline_id)))


def record_state(client: redis.Redis, pipeline_id: str) -> PipelineState:
    return read_record(client, pipeline_id).state


def new_reply_list() -> str:
    return keys.reply_list(uuid.uuid4().hex)


def pop_reply(client: redis.Redis, list_key: str, timeout: float) -> dict[str, Any] | None:
    """The ``response`` pushed onto ``list_key``, or None after ``timeout`` seconds."""
    popped = client.blpop([list_key], timeout=timeout)
    if popped is None:
        return None
    return ControlReply.model_validate_json(popped[1]).response


def send_command(
    client: redis.Redis,
    pipeline_id: str,
    epoch: int,
    command: Command,
    timeout: float = 5.0,
    desired: DesiredState | None = None,
) -> dict[str, Any] | None:
    """Like the manager: write the desired state (if any), publish, wait for the reply."""
    if desired is not None:
        client.hset(keys.pipeline_record(pipeline_id), "desired_state", desired.value)
    request_id = uuid.uuid4().hex
    message = ControlCommand(command=command, request_id=request_id, epoch=epoch)
    client.publish(keys.pipeline_control_channel(pipeline_id), message.model_dump_json())
    return pop_reply(client, keys.reply_list(request_id), timeout)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """The first truthy value of ``predicate()``; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def last_result_id(client: redis.Redis, pipeline_id: str) -> bytes | None:
    entries = client.xrevrange(keys.results_stream(pipeline_id), count=1)
    return entries[0][0] if entries else None


def read_frames(source: Path, count: int) -> "Iterator[np.ndarray]":
    """The first ``count`` frames of a video (fewer if it is shorter), decoded one at a time."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    try:
        for _ in range(count):
            ok, image = capture.read()
            if not ok:
                return
            yield image
    finally:
        capture.release()


def write_clip(source: Path, target: Path, frames: int) -> Path:
    """The first ``frames`` frames of a real video, re-encoded, so a test can run a file to its end."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    try:
        for image in read_frames(source, frames):
            writer.write(image)
    finally:
        writer.release()
    return target
