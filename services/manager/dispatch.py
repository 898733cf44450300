"""Sends pipeline tasks to the device queues, and finds which queues have a live worker.

The Celery app exists only to ``send_task`` by name (``services.core.tasks``), so the manager never
imports worker code. Publishing is blocking I/O, so it runs in a thread, and every socket operation of the
broker connection has a timeout (kombu waits forever without one on a broker that stopped answering:
the publish, and its thread, would never end); a timed-out publish is retried by Celery's publish retry
policy, then raises. The task's ``kwargsrepr`` —
what task events, ``inspect active`` and so Flower show instead of the kwargs — is redacted: the
spec holds the api_key and video references that may carry ``user:password@`` or secret query values.
"""

import asyncio
import logging
from typing import Any, Protocol

from celery import Celery
from celery.utils.saferepr import saferepr

from services.core.redaction import REDACTED, redact_reference, redact_text
from services.core.tasks import RUN_PIPELINE, celery_config, queue_for
from services.core.workflows.plan import WorkflowPlan
from services.core.workflows.secrets import plan_secrets
from services.infra.redis_connect import RedisTarget, with_celery_connection

logger = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Starts one pipeline task; the seam tests substitute with an in-process fake worker."""

    async def dispatch(self, pipeline_id: str, epoch: int, spec: dict[str, Any], reply_to: str,
                       device: str) -> None: ...


class CeleryDispatcher:
    def __init__(self, broker: "str | RedisTarget", socket_timeout: float = 5.0, connect_timeout: float = 2.0) -> None:
        """``broker``: the manager's Redis URL (plain or Sentinel, ``services.infra.redis_connect``);
        ``socket_timeout`` / ``connect_timeout``: seconds (the manager's MANAGER_REDIS_SOCKET_TIMEOUT and
        MANAGER_REDIS_CONNECT_TIMEOUT), applied to the sentinels too."""
        self._app = Celery("vsim-manager", set_as_current=False)
        config = celery_config("")
        config["broker_transport_options"] = {**config["broker_transport_options"], "socket_timeout": socket_timeout,
                                              "socket_connect_timeout": connect_timeout}
        config["broker_connection_timeout"] = connect_timeout
        self._app.conf.update(with_celery_connection(config, broker, "MANAGER_REDIS_URL"))

    async def dispatch(self, pipeline_id: str, epoch: int, spec: dict[str, Any], reply_to: str,
                       device: str) -> None:
        kwargs = {"pipeline_id": pipeline_id, "epoch": epoch, "spec": spec, "reply_to": reply_to}
        queue = queue_for(device)
        await asyncio.to_thread(self._app.send_task, RUN_PIPELINE, kwargs=kwargs, queue=queue,
                                kwargsrepr=redacted_kwargs_repr(kwargs))
        logger.info("dispatched pipeline %s epoch %d to %s", pipeline_id, epoch, queue)

    def close(self) -> None:
        self._app.close()


def redacted_kwargs_repr(kwargs: dict[str, Any]) -> str:
    """The task kwargs as Celery would show them (``saferepr``, 1024 characters), without credentials.

    The spec's api_key and video references are replaced field by field; the whole text then goes
    through ``redact_text`` with the api_key as a known secret, so a credential in any other field
    is removed too.
    """
    spec = dict(kwargs.get("spec") or {})
    api_key = spec.get("api_key")
    if api_key is not None:
        spec["api_key"] = REDACTED
    references = spec.get("video_references")
    if isinstance(references, list):
        spec["video_references"] = [redact_reference(ref) if isinstance(ref, str | int) else ref for ref in references]
    secrets: tuple[str, ...] = (api_key,) if isinstance(api_key, str) else ()
    workflow = spec.get("workflow")
    if isinstance(workflow, dict):  # sink passwords, tokens in headers or URLs
        secrets += plan_secrets(WorkflowPlan.model_validate(workflow))
    return redact_text(saferepr({**kwargs, "spec": spec}, 1024), secrets)

