"""How every service writes its log lines: plain text, or one JSON object per line, tagged with the pipeline.

``configure_logging`` is each service's one logging setup (``LOG_FORMAT`` = ``text`` or ``json``). A
JSON line carries ``ts``, ``level``, ``logger``, ``message``, ``process``, ``thread`` and, when the
line belongs to a pipeline, ``pipeline_id``; a traceback comes as ``exc_info``.

Which pipeline a line belongs to is process-wide, not per thread: a worker's pool process runs one
pipeline (``worker_max_tasks_per_child=1``) on many threads (sources, inference, sinks, control),
and threads do not inherit context variables, so :func:`bind_pipeline` at task start tags every
line of that process until :func:`unbind_pipeline`. A line may also name its pipeline itself with
``extra={"pipeline_id": ...}`` (the manager does, per request).

Nothing unredacted is added: the fields above are the logger's own, and the message and traceback
go through ``redact_text`` once more (URL user:password and secret query values), in case a
third-party library logged a video reference. Formatting does no I/O; the handler writes to stderr.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from services.core.redaction import redact_text

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_pipeline_id: str | None = None  # the pipeline this process runs (one assignment: atomic in CPython)


def bind_pipeline(pipeline_id: str) -> None:
    """Tags every later log line of this process with ``pipeline_id``."""
    global _pipeline_id
    _pipeline_id = pipeline_id


def unbind_pipeline() -> None:
    global _pipeline_id
    _pipeline_id = None


def bound_pipeline() -> str | None:
    return _pipeline_id


class PipelineFilter(logging.Filter):
    """Sets ``record.pipeline_id`` (the bound pipeline, unless the call passed its own) and
    ``record.pipeline_tag`` (``"[<id>] "`` or ``""``, for text formats). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        pipeline_id = getattr(record, "pipeline_id", None) or _pipeline_id
        record.pipeline_id = pipeline_id
        record.pipeline_tag = f"[{pipeline_id}] " if pipeline_id else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with a fixed set of fields (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        pipeline_id = getattr(record, "pipeline_id", None) or _pipeline_id
        if pipeline_id:
            line["pipeline_id"] = pipeline_id
        line["process"] = record.process
        line["thread"] = record.threadName
        if record.exc_info:
            line["exc_info"] = redact_text(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc_info"] = redact_text(record.exc_text)
        if record.stack_info:
            line["stack_info"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: LogFormat, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    """The formatter of ``log_format``; ``text_format`` may use ``%(pipeline_tag)s``."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(text_format)


def configure_logging(level: str | int, log_format: LogFormat = "text", text_format: str = TEXT_FORMAT) -> None:
    """A service's one logging configuration: the root logger, to stderr, in ``log_format``.

    Like ``logging.basicConfig``, it does nothing when the root logger has handlers already: a
    Celery pool process told to set up logging again keeps the handler it inherited. With JSON,
    Python warnings become log lines too, so that stderr stays one JSON object per line.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format, text_format))
    handler.addFilter(PipelineFilter())
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, handlers=[handler])
    if log_format == "json":
        logging.captureWarnings(True)
