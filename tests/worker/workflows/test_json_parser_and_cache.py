"""json_parser@v1 on raw and Markdown-wrapped JSON, and cache_set@v1 / cache_get@v1: one bounded cache per
workflow and source, shared by its steps, run by the executor over frames."""

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.cache import MAX_ENTRIES, BoundedCache
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import VideoMetadata, WorkflowImage
from tests.worker.workflows.query_values import environment

IMAGE = {"type": "WorkflowImage", "name": "image"}


def parser(**fields: Any) -> Any:
    definition = {"version": "1.0", "inputs": [IMAGE], "outputs": [],
                  "steps": [{"type": "roboflow_core/json_parser@v1", "name": "parser", "raw_json": '{"a": 1}',
                             "expected_fields": ["label", "count"], **fields}]}
    step = compile_workflow(definition).step("parser")
    return REGISTRY[step.type](step, environment()), step.params["expected_fields"]


@pytest.mark.parametrize(("text", "expected"), [
    ('{"label": "person", "count": 3, "extra": true}', {"label": "person", "count": 3, "error_status": False}),
    ('Here you go:\n```json\n{"label": "car", "count": 1}\n```\nand ```json {"label": "bus"}```',
     {"label": "car", "count": 1, "error_status": False}),  # the first block only
    ('```JSON\n{"label": "dog"}\n```', {"label": "dog", "count": None, "error_status": True}),
    ('{"count": null, "label": "x"}', {"label": "x", "count": None, "error_status": False}),  # present, null
    ("not json at all", {"label": None, "count": None, "error_status": True}),
    ('["label", "count"]', {"label": None, "count": None, "error_status": True}),  # JSON, not an object
    ("[" * 100_000, {"label": None, "count": None, "error_status": True}),  # deeper than the parser goes
])
def test_json_parser_fields_and_error_status(text: str, expected: dict[str, Any]) -> None:
    block, fields = parser()
    assert block.run(raw_json=text, expected_fields=fields) == expected


def test_json_parser_refuses_a_value_that_is_not_text() -> None:
    block, fields = parser()
    with pytest.raises(ValueError, match="raw_json must be a string of JSON, got dict"):
        block.run(raw_json={"label": "person"}, expected_fields=fields)


def counting_workflow(key: str = "people") -> dict[str, Any]:
    """The previous frame's value (read before this frame's is stored) beside this frame's."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowVideoMetadata", "name": "video"}],
        "steps": [
            {"type": "roboflow_core/cache_get@v1", "name": "previous", "image": "$inputs.image", "key": key},
            {"type": "roboflow_core/property_definition@v1", "name": "frame_number", "data": "$inputs.video",
             "operations": [{"type": "ExtractFrameMetadata", "property_name": "frame_number"}]},
            {"type": "roboflow_core/cache_set@v1", "name": "store", "image": "$inputs.image", "key": key,
             "value": "$steps.frame_number.output"},
            {"type": "roboflow_core/cache_get@v1", "name": "current", "image": "$inputs.image", "key": key},
        ],
        "outputs": [{"type": "JsonField", "name": name, "selector": f"$steps.{step}.output"}
                    for name, step in (("previous", "previous"), ("stored", "store"), ("current", "current"))],
    }


def frame(number: int, video: str = "0") -> WorkflowImage:
    return WorkflowImage.frame(np.zeros((8, 8, 3), np.uint8), "image",
                               VideoMetadata(video, number, datetime(2026, 1, 1, tzinfo=UTC)))


def test_the_steps_of_a_workflow_share_the_cache_of_their_source() -> None:
    plan = compile_workflow(counting_workflow())
    source_0 = WorkflowExecutor(plan, REGISTRY, environment())
    source_1 = WorkflowExecutor(plan, REGISTRY, environment())  # the processor gives each source its environment

    outputs = [source_0.run(frame(number))[0] for number in (1, 2, 3)]
    other, _ = source_1.run(frame(7, "1"))

    assert outputs == [{"previous": False, "stored": 1, "current": 1}, {"previous": 1, "stored": 2, "current": 2},
                       {"previous": 2, "stored": 3, "current": 3}]
    assert other == {"previous": False, "stored": 7, "current": 7}, "another source's cache is its own"


def test_a_key_that_is_not_a_string_fails_the_step() -> None:
    definition = counting_workflow("$inputs.key")
    definition["inputs"].append({"type": "WorkflowParameter", "name": "key", "default_value": "people"})
    plan = compile_workflow(definition)
    step = plan.step("store")
    block = REGISTRY[step.type](step, environment())
    with pytest.raises(ValueError, match="key must be a string, got int"):
        block.run(image=frame(1), key=5, value=1)


def test_the_cache_forgets_the_least_recently_used_key_beyond_its_capacity() -> None:
    cache = BoundedCache(capacity=2)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.set("c", 3)
    assert (cache.get("a"), cache.get("b", False), cache.get("c"), len(cache)) == (1, False, 3, 2)


def test_a_stream_of_new_keys_stays_within_the_bound() -> None:
    env = environment()
    definition = counting_workflow("$steps.frame_key.output")
    definition["steps"].insert(0, {"type": "roboflow_core/property_definition@v1", "name": "frame_key",
                                   "data": "$inputs.video", "operations": [
                                       {"type": "ExtractFrameMetadata", "property_name": "frame_number"},
                                       {"type": "ToString"}]})
    executor = WorkflowExecutor(compile_workflow(definition), REGISTRY, env)

    for number in range(MAX_ENTRIES + 50):
        outputs, errors = executor.run(frame(number))
        assert errors == [] and outputs["current"] == number

    assert len(env.shared["cache"]) == MAX_ENTRIES
