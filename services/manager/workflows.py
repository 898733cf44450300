"""Named workflows stored as files: ``<workflows_directory>/<workspace>/<workflow_id>.json``."""

import json
import re
from pathlib import Path
from typing import Any

from services.core.errors import InvalidPayloadError, NotFoundError

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")


class WorkflowDirectory:
    """The ``resolve_workflow`` callable ``services.core.plan.compile_init`` expects."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory

    def __call__(self, workspace: str, workflow_id: str) -> dict[str, Any]:
        for name, value in (("workspace_name", workspace), ("workflow_id", workflow_id)):
            if not _SAFE_NAME.fullmatch(value) or ".." in value:
                raise InvalidPayloadError(
                    f"field 'processing_configuration.{name}': {value!r} is not a valid name "
                    "(letters, digits, '_', '.', '-')"
                )
        path = self._path(workspace, workflow_id)
        if path is None or not path.is_file():
            raise NotFoundError(f"workflow '{workspace}/{workflow_id}' not found",
                                f"Workflow '{workspace}/{workflow_id}' was not found.")
        return _load(path, f"{workspace}/{workflow_id}")

    def _path(self, workspace: str, workflow_id: str) -> Path | None:
        if self._directory is None:
            return None
        return self._directory / workspace / f"{workflow_id}.json"


def _load(path: Path, name: str) -> dict[str, Any]:
    try:
        workflow = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidPayloadError(f"workflow '{name}' is not readable JSON: {exc}") from exc
    if not isinstance(workflow, dict):
        raise InvalidPayloadError(f"workflow '{name}' must be a JSON object")
    return workflow
