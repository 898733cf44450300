"""continue_if, rate_limiter and delta_filter over sequences of frames (fake clock where time matters)."""

from typing import Any

import numpy as np
import pytest

from services.core.workflows import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import FlowDecision
from services.worker.workflows.blocks.flow import same
from tests.worker.workflows.query_values import FakeClock, boxes, environment, frame, published, resolved, scene


def build(definition: dict[str, Any], name: str, clock: FakeClock, **parameters: Any) -> tuple[Any, Any]:
    step = compile_workflow(definition, parameters=parameters).step(name)
    return REGISTRY[step.type](step, environment(clock)), step


def decisions(results: list[Any]) -> list[bool]:
    assert all(isinstance(result, FlowDecision) for result in results)
    return [result.proceed for result in results]


# ---------------------------------------------------------------------------- continue_if


def test_published_continue_if_holds_the_branch_open_for_stop_delay_seconds() -> None:
    clock = FakeClock()
    block, step = build(published("workflow_with_continue_if_and_stop_delay"), "continue_if_with_delay", clock)
    assert step.params["stop_delay"] == 1.0 and step.params["next_steps"] == ["dependent_model"]
    results = []
    for condition in (1, 0, 0, 0, 1, 0):  # frames 0.4 s apart: open 1 s after the last true frame
        inputs = resolved(step, {})
        inputs["evaluation_parameters"] = {"condition": condition}
        results.append(block.run(**inputs))
        clock.advance(0.4)
    assert decisions(results) == [True, True, True, False, True, True]


def test_continue_if_without_delay_follows_the_condition_frame_by_frame() -> None:
    clock = FakeClock()
    definition = published("workflow_with_non_batch_condition_based_on_step_output_affecting_further_execution")
    block, step = build(definition, "continue_if", clock)
    results = [block.run(**resolved(step, {"$steps.input_processing_expression.output": value}))
               for value in (1, 2, 1, 1.0, "1")]
    assert decisions(results) == [True, False, True, True, False]


def test_continue_if_counting_detections_and_with_no_next_steps() -> None:
    definition = {
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model", "images": "$inputs.image",
             "model_id": "m"},
            {"type": "roboflow_core/continue_if@v1", "name": "gate", "next_steps": [],
             "evaluation_parameters": {"predictions": "$steps.model.predictions"},
             "condition_statement": {"type": "StatementGroup", "statements": [{
                 "type": "BinaryStatement",
                 "left_operand": {"type": "DynamicOperand", "operand_name": "predictions",
                                  "operations": [{"type": "SequenceLength"}]},
                 "comparator": {"type": "(Number) >="}, "right_operand": {"type": "StaticOperand", "value": 2}}]}},
        ],
        "outputs": [],
    }
    block, step = build(definition, "gate", FakeClock())
    assert decisions([block.run(**resolved(step, {"$steps.model.predictions": scene()}))]) == [False]
    inputs = resolved(step, {"$steps.model.predictions": scene()})
    inputs["next_steps"] = ["model"]
    assert decisions([block.run(**inputs)]) == [True]
    inputs["evaluation_parameters"] = {"predictions": boxes([(0, 0, 1, 1, 0.9, "car")])}
    assert decisions([block.run(**inputs)]) == [False]


# ---------------------------------------------------------------------------- rate_limiter


def test_published_rate_limiter_uses_the_wall_clock() -> None:
    clock = FakeClock()
    block, step = build(published("workflow_with_rate_limiter"), "rate_limiter", clock)
    assert step.params["cooldown_seconds"] == 1 and step.params["video_reference_image"] is None
    results = []
    for _ in range(9):  # a frame every 0.25 s: through at 0, 1 and 2 s
        results.append(block.run(**resolved(step, {"$steps.model.predictions": scene()})))
        clock.advance(0.25)
    assert decisions(results) == [True, False, False, False, True, False, False, False, True]


def test_rate_limiter_on_video_time_ignores_the_wall_clock() -> None:
    clock = FakeClock()
    definition = published("workflow_with_rate_limiter")
    definition["steps"][1]["video_reference_image"] = "$inputs.image"
    definition["steps"][1]["cooldown_seconds"] = 1.0
    block, step = build(definition, "rate_limiter", clock)
    results = []
    for number in range(1, 26):  # 10 fps, processed much faster than real time: one frame per video second
        image = frame(number=number, fps=10.0)
        results.append(block.run(**resolved(step, {"$steps.model.predictions": scene(image), "$inputs.image": image})))
        clock.advance(0.001)
    assert [n for n, proceed in enumerate(decisions(results), start=1) if proceed] == [1, 11, 21]


def test_rate_limiter_falls_back_to_the_wall_clock_without_fps() -> None:
    clock = FakeClock()
    definition = published("workflow_with_rate_limiter")
    definition["steps"][1]["video_reference_image"] = "$inputs.image"
    block, step = build(definition, "rate_limiter", clock)
    results = []
    for number in range(1, 5):
        image = frame(number=number, fps=None)
        results.append(block.run(**resolved(step, {"$steps.model.predictions": scene(image), "$inputs.image": image})))
        clock.advance(0.5)
    assert decisions(results) == [True, False, True, False]


def test_rate_limiter_state_is_per_instance() -> None:
    clock = FakeClock()
    definition = published("workflow_with_rate_limiter")
    (first, step), (second, _) = build(definition, "rate_limiter", clock), build(definition, "rate_limiter", clock)
    inputs = resolved(step, {"$steps.model.predictions": scene()})
    assert decisions([first.run(**inputs), second.run(**inputs), first.run(**inputs)]) == [True, True, False]


# ---------------------------------------------------------------------------- delta_filter


def test_published_delta_filter_passes_the_first_frame_and_every_change() -> None:
    block, step = build(published("workflow_with_delta_filter"), "delta_filter", FakeClock(), target_directory="/tmp")
    assert step.params["next_steps"] == ["csv_formatter"]
    counts = [2, 2, 3, 3, 3, 2, 0, 0, 2]
    results = [block.run(**resolved(step, {"$steps.property_definition.output": count,
                                           "$inputs.image": frame(number=n)}))
               for n, count in enumerate(counts, start=1)]
    assert decisions(results) == [True, False, True, False, False, True, True, False, True]


def test_delta_filter_compares_lists_arrays_and_detections() -> None:
    block, _ = build(published("workflow_with_delta_filter"), "delta_filter", FakeClock(), target_directory="/tmp")
    detections = scene()
    values = [["car"], ["car"], ["car", "bus"], np.array([1, 2]), np.array([1, 2]), np.array([1, 3]), detections,
              detections[np.arange(3)], detections[[0]]]
    results = [block.run(image=frame(), value=value, next_steps=["csv_formatter"]) for value in values]
    assert decisions(results) == [True, False, True, True, False, True, True, False, True]


@pytest.mark.parametrize(("old", "new", "expected"), [
    (1, 1, True), (1, 2, False), ([1, 2], [1, 2], True), (np.array([1, 2]), [1, 2], True),
    (np.array([1, 2]), np.array([1, 2, 3]), False), ("a", 1, False), (None, 0, False),
])
def test_same(old: Any, new: Any, expected: bool) -> None:
    assert same(old, new) is expected
