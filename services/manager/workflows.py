"""Named workflows as the manager serves them: put, get, list, delete, and the lookup INIT uses.

Redis (:mod:`services.manager.workflow_store`) holds the workflows put over the wire;
``MANAGER_WORKFLOWS_DIRECTORY`` (:mod:`services.manager.workflow_directory`) is a read-only
fallback, so a name stored in Redis shadows a file of the same name. Every name is checked here,
once, before a key or a path is built from it, and a definition is compiled before it is stored.
"""

import contextlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from services.core.errors import InvalidPayloadError, NotFoundError, OperationError
from services.core.plan import WorkflowResolver
from services.core.workflows import compile_workflow
from services.core.workflows.compiler import IMAGE_INPUTS
from services.core.workflows.inner import MAX_DEPTH, referenced_workflows
from services.manager.workflow_directory import WorkflowDirectory
from services.manager.workflow_store import StoredWorkflow, WorkflowEntry, WorkflowStore

SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
# The one compile error a stored definition may have: INIT supplies the value (workflows_parameters).
MISSING_PARAMETER = "has no default_value and is missing"
MAX_REFERENCED = 8 * MAX_DEPTH  # workflows read for one INIT's inner workflows by reference, at most


def check_name(value: str, field: str) -> str:
    """``value`` when it is a valid workspace or workflow name, else invalid_payload naming ``field``."""
    if not SAFE_NAME.fullmatch(value) or ".." in value:
        raise InvalidPayloadError(f"field '{field}': {value[:200]!r} is not a valid name "
                                  "(1-128 letters, digits, '_', '.', '-'; not starting with '.' or '-')")
    return value


def not_found(workspace_name: str, workflow_id: str) -> NotFoundError:
    return NotFoundError(f"workflow '{workspace_name}/{workflow_id}' not found",
                         f"Workflow '{workspace_name}/{workflow_id}' was not found.")


class WorkflowRegistry:
    def __init__(self, store: WorkflowStore, directory: WorkflowDirectory, max_bytes: int) -> None:
        self._store = store
        self._directory = directory
        self._max_bytes = max_bytes

    async def put(self, workspace_name: str, workflow_id: str,
                  specification: dict[str, Any]) -> tuple[StoredWorkflow, bool]:
        """Compiles and stores (replacing) the definition; the stored workflow and whether it is new."""
        _check_names(workspace_name, workflow_id)
        text = json.dumps(specification, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode())
        if size > self._max_bytes:
            raise InvalidPayloadError(f"field 'specification': the definition is {size} bytes, over the limit of "
                                      f"{self._max_bytes} (MANAGER_MAX_WORKFLOW_BYTES)")
        found = await self._fetched([], [specification])
        found[workspace_name, workflow_id] = specification  # a reference to itself: the cycle is found now

        def resolve(referenced_workspace: str, referenced_id: str) -> dict[str, Any]:
            _check_names(referenced_workspace, referenced_id)
            if (referenced_workspace, referenced_id) not in found:
                raise not_found(referenced_workspace, referenced_id)
            return found[referenced_workspace, referenced_id]

        check_definition(specification, resolve)
        updated_at = datetime.now(UTC).isoformat()
        created = await self._store.put(workspace_name, workflow_id, text, updated_at)
        return StoredWorkflow(workspace_name, workflow_id, specification, updated_at), created

    async def get(self, workspace_name: str, workflow_id: str, field_prefix: str = "") -> StoredWorkflow:
        _check_names(workspace_name, workflow_id, field_prefix)
        stored = await self._store.get(workspace_name, workflow_id)
        if stored is None:
            stored = self._directory.get(workspace_name, workflow_id)
        if stored is None:
            raise not_found(workspace_name, workflow_id)
        return stored

    async def entries(self, workspace_name: str | None = None) -> list[WorkflowEntry]:
        """Every workflow get can return (Redis first, then the directory's), by workspace and id."""
        if workspace_name is not None:
            check_name(workspace_name, "workspace_name")
        found = {(e.workspace_name, e.workflow_id): e for e in self._directory.entries() if _valid(e)}
        found.update({(e.workspace_name, e.workflow_id): e for e in await self._store.entries()})
        return [entry for name, entry in sorted(found.items())
                if workspace_name is None or entry.workspace_name == workspace_name]

    async def delete(self, workspace_name: str, workflow_id: str) -> None:
        _check_names(workspace_name, workflow_id)
        if await self._store.delete(workspace_name, workflow_id):
            return
        if self._directory.get(workspace_name, workflow_id) is not None:
            raise OperationError(
                f"workflow '{workspace_name}/{workflow_id}' is a file in MANAGER_WORKFLOWS_DIRECTORY, which is "
                "read-only here: remove the file", "The workflow is a read-only file of the manager.")
        raise not_found(workspace_name, workflow_id)

    async def resolver_for(self, payload: Mapping[str, Any]) -> WorkflowResolver:
        """The ``resolve_workflow`` of ``compile_init`` for this INIT payload.

        ``compile_init`` is synchronous, so the workflow the payload names is read here first; the
        resolver then checks the names (reporting them at their INIT path) and answers from that read.
        """
        named = _named_workflow(payload)
        processing = payload.get("processing_configuration")
        inline = processing.get("workflow_specification") if isinstance(processing, Mapping) else None
        found = await self._fetched([named] if named is not None else [], [inline])
        top = (processing.get("workspace_name"), processing.get("workflow_id")) if isinstance(processing, Mapping) \
            else None  # as given: an invalid name is reported at its INIT path

        def resolve(workspace_name: str, workflow_id: str) -> dict[str, Any]:
            _check_names(workspace_name, workflow_id, "processing_configuration." if
                         (workspace_name, workflow_id) == top else "")
            if (workspace_name, workflow_id) not in found:
                raise not_found(workspace_name, workflow_id)
            return found[workspace_name, workflow_id]

        return resolve

    async def _fetched(self, names: list[tuple[str, str]],
                       definitions: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
        """The workflows ``names`` name and those their inner workflows name by reference, and so on (at most
        ``MAX_REFERENCED`` reads): ``compile_init`` is synchronous, so they are read here first. A name that is
        missing or invalid is left out: the resolver reports it, at its path, when the compiler asks."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        pending = list(names) + [name for definition in definitions for name in referenced_workflows(definition)]
        tried: set[tuple[str, str]] = set()
        while pending and len(tried) < MAX_REFERENCED:
            name = pending.pop(0)
            if name in tried:
                continue
            tried.add(name)
            with contextlib.suppress(NotFoundError, InvalidPayloadError):
                found[name] = (await self.get(*name)).specification
                pending.extend(referenced_workflows(found[name]))
        return found


def check_definition(specification: dict[str, Any], resolve: WorkflowResolver | None = None) -> None:
    """Compiles the definition as an INIT would, but for what only an INIT can supply: the values of
    parameters without a default, and which image input receives the frames (any one will do); ``resolve``
    returns the workflows its inner workflows name."""
    try:
        compile_workflow(specification, where="specification", parameters=None,
                         image_input_name=_first_image_input(specification), resolve=resolve)
    except InvalidPayloadError as exc:
        if MISSING_PARAMETER not in str(exc):
            raise


def _first_image_input(specification: Mapping[str, Any]) -> str:
    inputs = specification.get("inputs")
    for item in inputs if isinstance(inputs, list) else ():
        if isinstance(item, dict) and item.get("type") in IMAGE_INPUTS and isinstance(item.get("name"), str):
            return str(item["name"])
    return "image"  # none: the compiler says the definition declares no image input


def _check_names(workspace_name: str, workflow_id: str, field_prefix: str = "") -> None:
    check_name(workspace_name, f"{field_prefix}workspace_name")
    check_name(workflow_id, f"{field_prefix}workflow_id")


def _valid(entry: WorkflowEntry) -> bool:
    return all(SAFE_NAME.fullmatch(name) and ".." not in name for name in (entry.workspace_name, entry.workflow_id))


def _named_workflow(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (workspace, id) an INIT payload names with valid names and no inline workflow, else None."""
    processing = payload.get("processing_configuration")
    if not isinstance(processing, Mapping) or processing.get("workflow_specification") is not None:
        return None
    workspace_name, workflow_id = processing.get("workspace_name"), processing.get("workflow_id")
    if not (isinstance(workspace_name, str) and isinstance(workflow_id, str)):
        return None
    try:
        _check_names(workspace_name, workflow_id)
    except InvalidPayloadError:
        return None
    return workspace_name, workflow_id
