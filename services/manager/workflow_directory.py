"""Named workflows as files, read-only: ``<MANAGER_WORKFLOWS_DIRECTORY>/<workspace>/<workflow_id>.json``.

The fallback behind the workflows stored in Redis, so deployments that ship their workflows as
files keep working. Names reach this module already checked (``services.manager.workflows``), so
they can never leave the directory.
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.core.errors import InvalidPayloadError
from services.manager.workflow_store import StoredWorkflow, WorkflowEntry

SUFFIX = ".json"


class WorkflowDirectory:
    def __init__(self, directory: Path | None) -> None:
        self._directory = directory

    def get(self, workspace_name: str, workflow_id: str) -> StoredWorkflow | None:
        if self._directory is None:
            return None
        path = self._directory / workspace_name / f"{workflow_id}{SUFFIX}"
        if not path.is_file():
            return None
        specification = _load(path, f"{workspace_name}/{workflow_id}")
        return StoredWorkflow(workspace_name, workflow_id, specification, _modified(path))

    def entries(self) -> list[WorkflowEntry]:
        """Every ``<workspace>/<id>.json`` file (at that depth only), with its modification time."""
        if self._directory is None or not self._directory.is_dir():
            return []
        return [WorkflowEntry(path.parent.name, path.name.removesuffix(SUFFIX), _modified(path))
                for path in sorted(self._directory.glob(f"*/*{SUFFIX}")) if path.is_file()]


def _modified(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()


def _load(path: Path, name: str) -> dict[str, Any]:
    try:
        workflow = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidPayloadError(f"workflow '{name}' is not readable JSON: {exc}") from exc
    if not isinstance(workflow, dict):
        raise InvalidPayloadError(f"workflow '{name}' must be a JSON object")
    return workflow
