"""Log lines: one JSON object per line with a fixed field set, the bound pipeline on every line of its
process, nothing unredacted added; the text format's pipeline tag."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from services.core.logs import TEXT_FORMAT, PipelineFilter, bind_pipeline, formatter, unbind_pipeline

Capture = tuple[logging.Logger, io.StringIO, "logging.StreamHandler[io.StringIO]"]


@pytest.fixture
def capture() -> Iterator[Capture]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    handler.addFilter(PipelineFilter())
    logger = logging.getLogger("tests.core.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)
    unbind_pipeline()


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_fixed_fields(capture: Capture) -> None:
    logger, stream, _ = capture
    logger.info("source %s: %s -> %s", 0, "RUNNING", "MUTED")
    (line,) = _lines(stream)
    assert list(line) == ["ts", "level", "logger", "message", "process", "thread"]
    assert line["level"] == "INFO" and line["logger"] == "tests.core.logs"
    assert line["message"] == "source 0: RUNNING -> MUTED"
    assert str(line["ts"]).endswith("+00:00")


def test_every_line_of_a_bound_process_carries_the_pipeline_id(capture: Capture) -> None:
    logger, stream, _ = capture
    bind_pipeline("p-1")
    logger.info("first")
    logger.warning("second")
    unbind_pipeline()
    logger.info("after")
    logger.info("named by the call", extra={"pipeline_id": "p-2"})
    lines = _lines(stream)
    assert [line.get("pipeline_id") for line in lines] == ["p-1", "p-1", None, "p-2"]


def test_credentials_are_redacted_in_messages_and_tracebacks(capture: Capture) -> None:
    logger, stream, _ = capture
    logger.info("opening %s", "rtsp://admin:hunter2@10.0.0.5/stream?token=abc")
    try:
        raise ConnectionError("cannot reach http://user:pass@cam/live.ts")
    except ConnectionError:
        logger.exception("open failed")
    text = stream.getvalue()
    assert "hunter2" not in text and "admin" not in text and "abc" not in text and "user:pass" not in text
    lines = _lines(stream)
    assert lines[0]["message"] == "opening rtsp://***@10.0.0.5/stream?token=***"
    assert "ConnectionError" in str(lines[1]["exc_info"])


def test_the_text_format_can_tag_lines_with_the_pipeline(capture: Capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(formatter("text", "%(pipeline_tag)s%(message)s"))
    logger.info("untagged")
    bind_pipeline("p-9")
    logger.info("tagged")
    assert stream.getvalue().splitlines() == ["untagged", "[p-9] tagged"]
    assert formatter("text")._fmt == TEXT_FORMAT
