"""Flow-control blocks: continue_if, rate_limiter, delta_filter and switch_case.

Each returns a :class:`FlowDecision` for the steps it gates (``next_steps``; switch_case's cases and
default). Their state (the last time a branch ran, the last value seen) lives on the instance, so it
is per video source.
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.catalogue.flow import CONTINUE_IF, DELTA_FILTER, RATE_LIMITER, SWITCH_CASE
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory, FlowDecision
from services.worker.workflows.operations import evaluate_statement
from services.worker.workflows.values import WorkflowImage


class ContinueIf:
    """Lets ``next_steps`` run while the condition holds, and ``stop_delay`` seconds (wall clock) after."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._clock = env.clock
        self._last_true: float | None = None

    def run(self, condition_statement: dict[str, Any], evaluation_parameters: dict[str, Any],
            next_steps: list[str], stop_delay: float) -> FlowDecision:
        if not next_steps:
            return FlowDecision(False)
        if evaluate_statement(condition_statement, dict(evaluation_parameters)):
            if stop_delay > 0:
                self._last_true = self._clock()
            return FlowDecision(True)
        held = self._last_true is not None and self._clock() - self._last_true <= stop_delay
        return FlowDecision(held)


class RateLimiter:
    """Lets ``next_steps`` run at most once per ``cooldown_seconds``: of video time (frame number / fps)
    when ``video_reference_image`` is given and its video reports an fps, else of wall-clock time."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._clock = env.clock
        self._last_run: float | None = None

    def run(self, cooldown_seconds: float, depends_on: Any, next_steps: list[str],
            video_reference_image: WorkflowImage | None = None) -> FlowDecision:
        now = self._now(video_reference_image)
        if self._last_run is not None and now - self._last_run < cooldown_seconds:
            return FlowDecision(False)
        self._last_run = now
        return FlowDecision(True)

    def _now(self, image: WorkflowImage | None) -> float:
        if image is not None and image.video.fps:
            return image.video.frame_number / image.video.fps
        return self._clock()


_UNSEEN = object()


class DeltaFilter:
    """Lets ``next_steps`` run on the first frame and whenever ``value`` differs from the last frame's."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._last: Any = _UNSEEN

    def run(self, image: WorkflowImage, value: Any, next_steps: list[str]) -> FlowDecision:
        if self._last is not _UNSEEN and same(self._last, value):
            return FlowDecision(False)
        self._last = value
        return FlowDecision(True)


def same(old: Any, new: Any) -> bool:
    """Equality that also holds for numpy arrays and detections (whose ``==`` is element-wise)."""
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        return bool(np.array_equal(np.asarray(old, dtype=object), np.asarray(new, dtype=object)))
    if isinstance(old, sv.Detections) or isinstance(new, sv.Detections):
        return isinstance(old, sv.Detections) and isinstance(new, sv.Detections) and bool(old == new)
    try:
        return bool(old == new)
    except (TypeError, ValueError):  # values with no plain truth for ==: count as changed
        return False


class SwitchCase:
    """Lets through the step of the case that ``str(value)`` names (ignoring letter case when asked), else
    ``default_next_steps``; when neither, none of its steps."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, value: Any, cases: dict[str, str], case_insensitive: bool, default_next_steps: list[str]
            ) -> FlowDecision:
        key = str(value)
        if case_insensitive:
            key = key.lower()
            matched = next((target for case, target in cases.items() if case.lower() == key), None)
        else:
            matched = cases.get(key)
        if matched is not None:
            return FlowDecision(True, frozenset({matched}))
        return FlowDecision(bool(default_next_steps), frozenset(default_next_steps))


BLOCKS: dict[str, BlockFactory] = {CONTINUE_IF: ContinueIf, RATE_LIMITER: RateLimiter, DELTA_FILTER: DeltaFilter,
                                   SWITCH_CASE: SwitchCase}
