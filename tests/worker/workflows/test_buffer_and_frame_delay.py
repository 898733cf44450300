"""buffer@v1 and frame_delay@v1 (time_travel@v1): a source's recent values, built by the compiler from published
step definitions and run over frames."""

from typing import Any

import numpy as np
import pytest

from tests.worker.workflows.transformations_support import Step, as_frame, detector, step_of

PIXELS = np.zeros((4, 4, 3), np.uint8)
# A step whose output (any kind) feeds frame_delay's offset: checked on each frame, not at INIT.
OFFSET_STEP = {"type": "roboflow_core/property_definition@v1", "name": "offset", "data": "$steps.detect.predictions",
               "operations": [{"type": "SequenceLength"}]}


def buffer(**fields: Any) -> Step:
    return step_of({"type": "Buffer", "name": "buffer", "data": "$steps.detect.predictions", **fields})


def test_buffer_keeps_the_last_values_newest_first() -> None:
    step = buffer(length=3)
    assert step.step.type == "roboflow_core/buffer@v1" and step.step.params["pad"] is False
    outputs = [step.run(data=value)["output"] for value in (1, 2, 3, 4)]
    assert outputs == [[1], [2, 1], [3, 2, 1], [4, 3, 2]]


def test_buffer_pads_with_nulls_up_to_its_length() -> None:
    step = buffer(length=3, pad=True)
    assert [step.run(data=value)["output"] for value in ("a", "b", "c", "d")] == [
        ["a", None, None], ["b", "a", None], ["c", "b", "a"], ["d", "c", "b"]]


def test_a_buffer_output_is_not_changed_by_later_frames() -> None:
    step = buffer(length=2)
    first = step.run(data=1)["output"]
    step.run(data=2)
    assert first == [1]


def delay(offset: Any = -2, **fields: Any) -> Step:
    return step_of({"type": "roboflow_core/time_travel@v1", "name": "delay", "image": "$inputs.image",
                    "data": "$steps.detect.predictions", "offset": offset, **fields}, detector("detect"), OFFSET_STEP)


def run_delay(step: Step, frames: list[int], **values: Any) -> list[tuple[Any, bool, int]]:
    results = []
    for number in frames:
        result = step.run(image=as_frame(PIXELS, number), data=f"value of {number}", **values)
        results.append((result["output"], result["is_available"], result["reference_frame_number"]))
    return results


def test_frame_delay_gives_the_value_of_offset_frames_ago() -> None:
    step = delay(-2, default_value=0)
    assert step.step.type == "roboflow_core/frame_delay@v1"  # its legacy name
    assert run_delay(step, [1, 2, 3, 4]) == [(0, False, 1), (0, False, 2), ("value of 1", True, 3),
                                             ("value of 2", True, 4)]


def test_frame_delay_zero_is_this_frame_and_a_skipped_frame_is_not_available() -> None:
    assert run_delay(delay(0), [1, 2]) == [("value of 1", True, 1), ("value of 2", True, 2)]
    assert run_delay(delay(-1), [1, 2, 4, 5]) == [(None, False, 1), ("value of 1", True, 2), (None, False, 4),
                                                  ("value of 4", True, 5)]


def test_frame_delay_keeps_only_what_the_deepest_offset_can_reach() -> None:
    step = delay("$steps.offset.output")
    run_delay(step, list(range(1, 11)), offset=-3)
    assert len(step.block._frames) == 4  # frames 7..10
    assert run_delay(step, [11], offset=-1) == [("value of 10", True, 11)]
    assert run_delay(step, [12], offset=-3) == [("value of 9", True, 12)], "a shallower offset kept the depth"


def test_frame_delay_forgets_a_source_that_started_again() -> None:
    step = delay(-1)
    run_delay(step, [5, 6, 7])
    assert run_delay(step, [1, 2]) == [(None, False, 1), ("value of 1", True, 2)]


@pytest.mark.parametrize("offset", [1, -257, 1.5, "-1"])
def test_frame_delay_refuses_an_offset_a_selector_gives_out_of_range(offset: Any) -> None:
    step = delay("$steps.offset.output")
    with pytest.raises(ValueError, match="offset must be an integer between -256 and 0"):
        run_delay(step, [1], offset=offset)
