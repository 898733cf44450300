"""The executor's semantics with small fake blocks: order, levels (crops/slices), null propagation,
per-frame step failures, flow-control gates, nested fields on lists, and state per instance."""

import threading
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from services.core.workflows import compile_workflow
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment, FlowDecision
from services.worker.workflows.blocks.formatters import FirstNonEmptyOrDefault
from services.worker.workflows.blocks.transforms.collapse import DimensionCollapse
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import VideoMetadata, WorkflowImage

IMAGE = {"type": "WorkflowImage", "name": "image"}
SLICER = "roboflow_core/image_slicer@v1"
DETECT = "roboflow_core/roboflow_object_detection_model@v2"
STITCH = "roboflow_core/detections_stitch@v1"
CONSENSUS = "roboflow_core/detections_consensus@v1"
PROPERTY = "roboflow_core/property_definition@v1"
CONTINUE_IF = "roboflow_core/continue_if@v1"
FIRST_NON_EMPTY = "roboflow_core/first_non_empty_or_default@v1"
COLLAPSE = "roboflow_core/dimension_collapse@v1"
calls: list[tuple[str, Any]] = []


class Slicer:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self.name = step.name

    def run(self, image: WorkflowImage, **_: Any) -> list[dict[str, Any]]:
        return [{"slices": image.crop(0, 0, 10 * (i + 1), 10)} for i in range(3)]


class Detect:
    """'Detects' the image's width; returns None (a null) for images wider than 25 px; fails at 20 px."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self.name = step.name
        self.frames = 0  # state per instance

    def run(self, images: WorkflowImage, model_id: str, **_: Any) -> dict[str, Any]:
        self.frames += 1
        calls.append((self.name, images.width))
        if images.width == 20:
            raise ValueError("twenty is a bad width")
        return {"predictions": None if images.width > 25 else [images.width, self.frames],
                "inference_id": "i", "model_id": model_id}


class Stitch:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, reference_image: WorkflowImage, predictions: list[Any], **_: Any) -> dict[str, Any]:
        calls.append(("stitch", predictions))
        return {"predictions": predictions}


class Consensus:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, predictions_batches: list[Any], **_: Any) -> dict[str, Any]:
        calls.append(("consensus", predictions_batches))
        return {"predictions": predictions_batches, "object_present": True, "presence_confidence": 1.0}


class Gate:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self.open = True

    def run(self, **_: Any) -> FlowDecision:
        self.open = not self.open  # alternate: closed on the first frame, open on the second, ...
        return FlowDecision(self.open)


class Constant:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, data: Any, **_: Any) -> dict[str, Any]:
        return {"output": data}


REGISTRY = {SLICER: Slicer, DETECT: Detect, STITCH: Stitch, CONSENSUS: Consensus, CONTINUE_IF: Gate,
            PROPERTY: Constant, FIRST_NON_EMPTY: FirstNonEmptyOrDefault, COLLAPSE: DimensionCollapse}


def frame(width: int = 40) -> WorkflowImage:
    video = VideoMetadata("0", 1, datetime.now(UTC), 25.0, None, True)
    return WorkflowImage.frame(np.zeros((10, width, 3), np.uint8), "image.[0]", video)


def executor(steps: list[dict[str, Any]], outputs: dict[str, str]) -> WorkflowExecutor:
    calls.clear()
    plan = compile_workflow({"version": "1.0", "inputs": [IMAGE], "steps": steps, "outputs": [
        {"type": "JsonField", "name": name, "selector": selector} for name, selector in outputs.items()]})
    return WorkflowExecutor(plan, REGISTRY, BlockEnvironment(0, models=None, background=None))  # type: ignore[arg-type]


def slicing() -> list[dict[str, Any]]:
    return [{"type": SLICER, "name": "slicer", "image": "$inputs.image"},
            {"type": DETECT, "name": "a", "images": "$steps.slicer.slices", "model_id": "m/1"},
            {"type": DETECT, "name": "b", "images": "$steps.slicer.slices", "model_id": "m/2"}]


def test_a_step_on_slices_runs_once_per_slice_and_a_failing_slice_fails_only_itself() -> None:
    run = executor(slicing(), {"a": "$steps.a.predictions"})

    outputs, errors = run.run(frame())

    assert [width for name, width in calls if name == "a"] == [10, 20, 30]
    # slice 10 px: a value; 20 px: the block failed (None); 30 px: the block returned None
    assert outputs == {"a": [[10, 1], None, None]}
    assert [(e.step, e.error_type, e.error_message) for e in errors] == [
        ("a", "ValueError", "twenty is a bad width"), ("b", "ValueError", "twenty is a bad width")]


def test_a_batch_field_gets_the_whole_list_back_at_the_image_level() -> None:
    steps = [*slicing(), {"type": STITCH, "name": "stitch", "reference_image": "$inputs.image",
                          "predictions": "$steps.a.predictions"}]
    run = executor(steps, {"stitched": "$steps.stitch.predictions"})

    outputs, _ = run.run(frame())

    assert [c for c in calls if c[0] == "stitch"] == [("stitch", [[10, 1], None, None])]
    assert outputs["stitched"] == [[10, 1], None, None]


def test_dimension_collapse_brings_the_slices_results_back_to_the_frame_as_one_list() -> None:
    steps = [*slicing(), {"type": COLLAPSE, "name": "collapse", "data": "$steps.a.predictions"},
             {"type": PROPERTY, "name": "reader", "data": "$steps.collapse.output", "operations": []}]
    run = executor(steps, {"collapsed": "$steps.collapse.output", "reader": "$steps.reader.output"})

    outputs, _ = run.run(frame())

    # one list for the frame (not one value per slice), the failed and null slices kept in place
    assert outputs == {"collapsed": [[10, 1], None, None], "reader": [[10, 1], None, None]}


def test_a_nested_list_of_selectors_on_slices_takes_each_slice_of_every_part() -> None:
    steps = [*slicing(), {"type": CONSENSUS, "name": "vote",
                          "predictions_batches": ["$steps.a.predictions", "$steps.b.predictions"],
                          "required_votes": 2}]
    run = executor(steps, {"vote": "$steps.vote.predictions"})

    outputs, _ = run.run(frame())

    # per slice: [a's, b's]; slices where a part is null are skipped (null output)
    assert [c[1] for c in calls if c[0] == "consensus"] == [[[10, 1], [10, 1]]]
    assert outputs["vote"] == [[[10, 1], [10, 1]], None, None]


def test_null_inputs_skip_the_reader_and_literal_nulls_do_not() -> None:
    steps = [{"type": DETECT, "name": "wide", "images": "$inputs.image", "model_id": "m/1"},
             {"type": PROPERTY, "name": "reader", "data": "$steps.wide.predictions", "operations": []},
             {"type": DETECT, "name": "narrow", "images": "$inputs.image", "model_id": "m/1", "class_filter": None}]
    run = executor(steps, {"reader": "$steps.reader.output", "narrow": "$steps.narrow.predictions"})

    wide, _ = run.run(frame(40))
    narrow, _ = run.run(frame(24))

    assert wide == {"reader": None, "narrow": None}  # 40 px: the model gave None, the reader never ran
    assert narrow == {"reader": [24, 2], "narrow": [24, 2]}  # state: each instance counted its own frames


def test_a_flow_control_gate_skips_its_next_steps_and_what_reads_them() -> None:
    steps = [{"type": CONTINUE_IF, "name": "gate", "next_steps": ["$steps.model"],
              "condition_statement": {"type": "StatementGroup", "statements": [
                  {"type": "UnaryStatement", "operand": {"type": "StaticOperand", "value": True},
                   "operator": {"type": "(Boolean) is True"}}]}},
             {"type": DETECT, "name": "model", "images": "$inputs.image", "model_id": "m/1"},
             {"type": PROPERTY, "name": "reader", "data": "$steps.model.predictions", "operations": []}]
    run = executor(steps, {"reader": "$steps.reader.output", "all": "$steps.model.*"})

    closed, _ = run.run(frame(10))
    opened, _ = run.run(frame(10))

    assert closed == {"reader": None, "all": None}
    assert opened["reader"] == [10, 1] and opened["all"]["model_id"] == "m/1"


def test_a_block_that_accepts_empty_values_runs_on_nulls_and_merges_the_branches() -> None:
    # first_non_empty_or_default: the reference's accepts_empty_values. The gated model is skipped on every
    # other frame, and the block still runs: the first value that is not null, else its default.
    steps = [{"type": CONTINUE_IF, "name": "gate", "next_steps": ["$steps.gated"],
              "condition_statement": {"type": "StatementGroup", "statements": [
                  {"type": "UnaryStatement", "operand": {"type": "StaticOperand", "value": True},
                   "operator": {"type": "(Boolean) is True"}}]}},
             {"type": DETECT, "name": "gated", "images": "$inputs.image", "model_id": "m/1"},
             {"type": DETECT, "name": "always", "images": "$inputs.image", "model_id": "m/2"},
             {"type": FIRST_NON_EMPTY, "name": "first",
              "data": ["$steps.gated.predictions", "$steps.always.predictions"]},
             {"type": FIRST_NON_EMPTY, "name": "or_default", "data": ["$steps.gated.predictions"], "default": "none"},
             {"type": PROPERTY, "name": "reader", "data": "$steps.or_default.output", "operations": []}]
    run = executor(steps, {"first": "$steps.first.output", "or_default": "$steps.or_default.output",
                           "reader": "$steps.reader.output"})

    closed, errors = run.run(frame(10))
    opened, _ = run.run(frame(12))
    wide, _ = run.run(frame(30))  # both models give null: the first block's default is null, and so is its output

    assert not errors
    assert closed == {"first": [10, 1], "or_default": "none", "reader": "none"}  # the other branch, the default
    assert opened == {"first": [12, 1], "or_default": [12, 1], "reader": [12, 1]}  # the gated branch comes first
    assert wide == {"first": None, "or_default": "none", "reader": "none"}


def test_a_block_that_accepts_empty_values_runs_on_each_slice_including_the_null_ones() -> None:
    steps = [*slicing(), {"type": FIRST_NON_EMPTY, "name": "first", "data": ["$steps.a.predictions"],
                          "default": "no detection"}]
    run = executor(steps, {"first": "$steps.first.output"})

    outputs, _ = run.run(frame())

    # slice 10 px: a value; 20 px: the model failed; 30 px: it returned null. Both nulls take the default.
    assert outputs == {"first": [[10, 1], "no detection", "no detection"]}


@pytest.mark.parametrize("missing", [DETECT, SLICER])
def test_a_block_type_without_implementation_is_refused_at_construction(missing: str) -> None:
    plan = compile_workflow({"version": "1.0", "inputs": [IMAGE], "steps": slicing(), "outputs": []})
    registry = {name: block for name, block in REGISTRY.items() if name != missing}
    with pytest.raises(ValueError, match=f"no implementation for block type\\(s\\) {missing}"):
        WorkflowExecutor(plan, registry, BlockEnvironment(0, models=None, background=None))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- concurrent items

OPEN_AI = "roboflow_core/open_ai@v2"


class Asker:
    """Asks a 'remote model' about each slice: records how many calls run at once; the calls on the slices named in
    ``together`` wait for each other (a barrier), so they can only complete if they run at the same time."""

    concurrency_field: str | None = "max_concurrent_requests"
    together: tuple[int, ...] = ()
    active = peak = 0
    lock = threading.Lock()
    barrier: threading.Barrier | None = None

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, images: WorkflowImage, **_: Any) -> dict[str, Any]:
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        try:
            if images.width in cls.together:
                assert cls.barrier is not None
                cls.barrier.wait(timeout=10)
            if images.width == 20:
                raise ValueError("twenty is a bad width")
            return {"output": f"{images.width} px", "classes": None}
        finally:
            with cls.lock:
                cls.active -= 1


def asking(concurrency: Any, block: type = Asker, together: tuple[int, ...] = (10, 20, 30)) -> WorkflowExecutor:
    block.active = block.peak = 0
    block.together = together
    block.barrier = threading.Barrier(len(together)) if together else None
    plan = compile_workflow({"version": "1.0", "inputs": [IMAGE], "steps": [
        {"type": SLICER, "name": "slicer", "image": "$inputs.image"},
        {"type": OPEN_AI, "name": "ask", "images": "$steps.slicer.slices", "task_type": "ocr", "api_key": "k",
         "max_concurrent_requests": concurrency}],
        "outputs": [{"type": "JsonField", "name": "answers", "selector": "$steps.ask.output"}]})
    return WorkflowExecutor(plan, {SLICER: Slicer, OPEN_AI: block},
                            BlockEnvironment(0, models=None, background=None))  # type: ignore[arg-type]


@pytest.mark.parametrize("concurrency", [3, None])  # null: the reference's default, 8
def test_a_remote_block_asks_about_a_batch_s_items_at_once_and_keeps_their_order(concurrency: Any) -> None:
    outputs, errors = asking(concurrency).run(frame())  # the three slices wait for each other: all at once

    assert Asker.peak == 3
    assert outputs == {"answers": ["10 px", None, "30 px"]}
    assert [(e.step, e.error_message) for e in errors] == [("ask", "twenty is a bad width")]


def test_a_remote_block_asks_no_more_items_at_once_than_its_field_allows() -> None:
    outputs, errors = asking(2, together=(10, 20)).run(frame())  # the first two at once, the third after

    assert Asker.peak == 2
    assert outputs == {"answers": ["10 px", None, "30 px"]} and len(errors) == 1


class SequentialAsker(Asker):
    concurrency_field = None


def test_a_block_naming_no_concurrency_field_is_called_one_item_at_a_time() -> None:
    outputs, _ = asking(3, SequentialAsker, together=()).run(frame())

    assert SequentialAsker.peak == 1
    assert outputs == {"answers": ["10 px", None, "30 px"]}
