"""``roboflow_core/json_parser@v1``: a JSON text (an LLM's answer, often in a Markdown ```json block) -> its
expected fields, one output each, and ``error_status``.

As the reference: the first ```json block is parsed when there is one, else the whole text; a field the JSON
lacks is null and sets ``error_status``; text that does not parse (or is not a JSON object) gives every field
null and ``error_status`` true. Unlike the reference nothing is logged per frame (``error_status`` says it) and
a value that is not a string at all fails the step.
"""

import json
import re
from typing import Any

from services.core.workflows.catalogue.formatters import JSON_ERROR_STATUS
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment

MARKDOWN_JSON = re.compile(r"```json([\s\S]*?)```", re.IGNORECASE)


def load_answer(text: str) -> Any:
    """The JSON of an LLM's answer: its first ```json block when it has one, else the whole text; None when that
    is not JSON (vlm_as_classifier and vlm_as_detector read answers this way too)."""
    blocks = MARKDOWN_JSON.findall(text)
    try:
        return json.loads(blocks[0] if blocks else text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return None


def parse_fields(text: str, expected_fields: list[str]) -> tuple[bool, dict[str, Any]]:
    """(whether any expected field is missing, field -> its value or None)."""
    parsed = load_answer(text)
    if not isinstance(parsed, dict):
        return True, dict.fromkeys(expected_fields)
    return not all(name in parsed for name in expected_fields), {name: parsed.get(name) for name in expected_fields}


class JsonParser:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, raw_json: Any, expected_fields: list[str]) -> dict[str, Any]:
        if not isinstance(raw_json, str):
            raise ValueError(f"raw_json must be a string of JSON, got {type(raw_json).__name__}")
        missing, values = parse_fields(raw_json, expected_fields)
        return {**values, JSON_ERROR_STATUS: missing}
