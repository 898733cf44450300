"""The manager's Redis I/O for named workflows: put (replace), get, list, delete.

Keys come from ``services.core.keys`` (:func:`~services.core.keys.workflow` per workflow, plus
:func:`~services.core.keys.workflows_index`); each write touches both in one transaction. Names
reach this module already checked (``services.manager.workflows``); definitions already compiled.
"""

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from services.core import keys
from services.core.errors import InternalError


@dataclass(frozen=True, slots=True)
class WorkflowEntry:
    """One line of a listing."""

    workspace_name: str
    workflow_id: str
    updated_at: str  # ISO 8601


@dataclass(frozen=True, slots=True)
class StoredWorkflow:
    workspace_name: str
    workflow_id: str
    specification: dict[str, Any]
    updated_at: str  # ISO 8601

    @property
    def entry(self) -> WorkflowEntry:
        return WorkflowEntry(self.workspace_name, self.workflow_id, self.updated_at)


class WorkflowStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def put(self, workspace_name: str, workflow_id: str, text: str, updated_at: str) -> bool:
        """Stores the definition's JSON ``text``, replacing any previous one; True when it is new."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.workflow(workspace_name, workflow_id))
            pipe.hset(keys.workflow(workspace_name, workflow_id),
                      mapping={"specification": text, "updated_at": updated_at})
            pipe.hset(keys.workflows_index(), keys.workflow_name(workspace_name, workflow_id), updated_at)
            existed, _, _ = await pipe.execute()
        return not existed

    async def get(self, workspace_name: str, workflow_id: str) -> StoredWorkflow | None:
        text, updated_at = await self._redis.hmget(keys.workflow(workspace_name, workflow_id),
                                                   ["specification", "updated_at"])
        if text is None:
            return None
        try:
            specification = json.loads(text)
        except ValueError as exc:
            raise InternalError(f"stored workflow '{workspace_name}/{workflow_id}' is not JSON: {exc}") from exc
        if not isinstance(specification, dict):
            raise InternalError(f"stored workflow '{workspace_name}/{workflow_id}' is not a JSON object")
        return StoredWorkflow(workspace_name, workflow_id, specification, _text(updated_at or b""))

    async def entries(self) -> list[WorkflowEntry]:
        """Every stored workflow's name and time, read from the index only (never the definitions)."""
        index = await self._redis.hgetall(keys.workflows_index())
        return [WorkflowEntry(*keys.split_workflow_name(_text(name)), _text(updated_at))
                for name, updated_at in index.items()]

    async def delete(self, workspace_name: str, workflow_id: str) -> bool:
        """Removes the workflow; False when Redis held none of that name."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.workflow(workspace_name, workflow_id))
            pipe.hdel(keys.workflows_index(), keys.workflow_name(workspace_name, workflow_id))
            deleted, _ = await pipe.execute()
        return bool(deleted)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
