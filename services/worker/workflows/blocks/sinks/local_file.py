"""``roboflow_core/local_file_sink@v1``: writes a string per frame to files under the file sinks' root.

As the reference: ``separate_files`` writes each content to a new ``<prefix>_<timestamp>.<type>``;
``append_log`` appends to one file per block (per video source) and starts a new one after
``max_entries_per_file`` entries. In an append log, JSON content is re-written on one line (the file
is ``.jsonl``; content that is not JSON is refused), and a CSV content's first line (its header) is
dropped except on a file's first entry. A newline ends every entry. Write failures are
``error_status: true``; a directory outside the root fails the step (see ``file_root``).

Unlike the reference, a new log file is also started when the directory, prefix or type changes, a
CSV entry left empty once its header is dropped writes no blank line, and no file stays open between
frames.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.sinks import inputs
from services.worker.workflows.blocks.sinks.file_root import append_to, check_prefix, confined_directory, create_file

log = logging.getLogger(__name__)

FILE_TYPES = ("csv", "json", "txt")
OUTPUT_MODES = ("append_log", "separate_files")
SAVED = "Data saved successfully"


def _result(error: bool, message: str) -> dict[str, Any]:
    return {"error_status": error, "message": message}


@dataclass(frozen=True, slots=True)
class _Destination:
    directory: Path
    prefix: str
    extension: str


class LocalFileSink:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._env = env
        self._destination: _Destination | None = None
        self._file: Path | None = None
        self._entries = 0

    def run(self, *, content: Any, file_type: Any, output_mode: Any, target_directory: Any,
            file_name_prefix: Any, max_entries_per_file: Any) -> dict[str, Any]:
        text = inputs.as_str(content, "content")
        kind = _choice(file_type, "file_type", FILE_TYPES)
        mode = _choice(output_mode, "output_mode", OUTPUT_MODES)
        prefix = check_prefix(inputs.as_str(file_name_prefix, "file_name_prefix"))
        try:
            directory = confined_directory(self._env.sinks.file_root,
                                           inputs.as_str(target_directory, "target_directory"))
        except OSError as error:  # refusals are ValueErrors and fail the step; this is the disk's answer
            log.warning("local file sink could not create its directory: %s", error)
            return _result(True, f"Could not create the target directory: {error}")
        if mode == "separate_files":
            return self._separate(_Destination(directory, prefix, kind), text)
        limit = inputs.as_int(max_entries_per_file, "max_entries_per_file", 1)
        return self._append(_Destination(directory, prefix, "jsonl" if kind == "json" else kind), text, limit)

    def _separate(self, destination: _Destination, text: str) -> dict[str, Any]:
        try:
            create_file(destination.directory, destination.prefix, destination.extension, self._env.clock(),
                        _line(text))
        except OSError as error:
            log.warning("local file sink could not write a file: %s", error)
            return _result(True, f"Could not save the file: {error}")
        return _result(False, SAVED)

    def _append(self, destination: _Destination, text: str, limit: int) -> dict[str, Any]:
        if destination.extension == "jsonl":
            try:
                text = json.dumps(json.loads(text))
            except ValueError as error:
                log.warning("local file sink got content that is not JSON: %s", error)
                return _result(True, "Invalid JSON content")
        if self._file is None or destination != self._destination or self._entries >= limit:
            return self._start_file(destination, text)
        if destination.extension == "csv":
            text = "\n".join(text.split("\n")[1:])
        try:
            if text.strip():
                append_to(self._file, _line(text))
        except OSError as error:
            log.warning("local file sink could not append to %s: %s", self._file, error)
            self._file = None  # the next entry starts a new file
            return _result(True, f"Could not append content to append log: {error}")
        self._entries += 1
        return _result(False, SAVED)

    def _start_file(self, destination: _Destination, text: str) -> dict[str, Any]:
        self._file, self._destination, self._entries = None, destination, 0
        try:
            self._file = create_file(destination.directory, destination.prefix, destination.extension,
                                     self._env.clock(), _line(text))
        except OSError as error:
            log.warning("local file sink could not create a file: %s", error)
            return _result(True, f"Could not create new sink file: {error}")
        self._entries = 1
        return _result(False, SAVED)


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _line(text: str) -> str:
    return text if text.endswith("\n") else f"{text}\n"
