"""Sends pipeline tasks to the device queues, and finds which queues have a live worker.

The Celery app exists only to ``send_task`` by name (``services.core.tasks``), so the manager never
imports worker code. Publishing is blocking I/O, so it runs in a thread.
"""

import asyncio
import json
import logging
from typing import Any, Protocol

from celery import Celery
from redis.asyncio import Redis

from services.core import keys
from services.core.tasks import RUN_PIPELINE, celery_config, queue_for

logger = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Starts one pipeline task; the seam tests substitute with an in-process fake worker."""

    async def dispatch(self, pipeline_id: str, epoch: int, spec: dict[str, Any], reply_to: str,
                       device: str) -> None: ...


class CeleryDispatcher:
    def __init__(self, broker_url: str) -> None:
        self._app = Celery("vsim-manager", set_as_current=False)
        self._app.conf.update(celery_config(broker_url))

    async def dispatch(self, pipeline_id: str, epoch: int, spec: dict[str, Any], reply_to: str,
                       device: str) -> None:
        kwargs = {"pipeline_id": pipeline_id, "epoch": epoch, "spec": spec, "reply_to": reply_to}
        queue = queue_for(device)
        await asyncio.to_thread(self._app.send_task, RUN_PIPELINE, kwargs=kwargs, queue=queue)
        logger.info("dispatched pipeline %s epoch %d to %s", pipeline_id, epoch, queue)

    def close(self) -> None:
        self._app.close()


async def live_queues(redis: Redis) -> set[str]:
    """Every queue named by a live worker registration (unreadable registrations are skipped)."""
    queues: set[str] = set()
    async for key in redis.scan_iter(match=keys.worker_registration_pattern(), count=100):
        raw = await redis.get(key)
        queues.update(_queues_of(raw))
    return queues


def _queues_of(raw: bytes | str | None) -> list[str]:
    if raw is None:  # expired between SCAN and GET
        return []
    try:
        registration = json.loads(raw)
        queues = registration.get("queues", []) if isinstance(registration, dict) else []
    except ValueError:
        return []
    return [queue for queue in queues if isinstance(queue, str)]
