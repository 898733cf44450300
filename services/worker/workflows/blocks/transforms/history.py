"""Values from earlier frames of the same source: ``buffer@v1`` (the last N values as a list) and
``frame_delay@v1`` (a value as it was N frames ago; ``time_travel@v1`` is its legacy name).

A block is built per video source, so each source has its own history (the reference's frame_delay keys its
buffers by video identifier inside one block instead). A frame on which the step is skipped (its data is null)
adds nothing: buffer holds the last N values it was given, frame_delay finds nothing for that frame.
"""

from collections import OrderedDict, deque
from typing import Any

from services.core.workflows.blocks import is_int
from services.core.workflows.catalogue.transformations import MAX_HISTORY, is_frame_offset
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import WorkflowImage


class Buffer:
    """The newest value first, then older ones, at most ``length``; ``pad`` fills the list up to ``length``
    with nulls. ``length`` is a literal (checked at INIT), so the deque's bound is fixed when it is built."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._values: deque[Any] = deque(maxlen=int(step.params["length"]))

    def run(self, data: Any, length: int, pad: bool = False) -> dict[str, Any]:
        self._values.appendleft(data)
        output = list(self._values)
        if pad:
            output += [None] * (length - len(output))
        return {"output": output}


class FrameDelay:
    """``data`` as it was on frame ``N + offset`` (``offset <= 0``), with whether that frame was seen, and N.

    Keeps the frames the deepest offset asked for so far can still reach (an offset fed by a selector may
    change between frames); a frame number lower than the last one (the source started again) forgets them.
    """

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._frames: OrderedDict[int, Any] = OrderedDict()  # frame number -> data, oldest first
        self._depth = 0  # the largest |offset| asked for since the history was last cleared

    def run(self, image: WorkflowImage, data: Any, offset: Any, default_value: Any = None) -> dict[str, Any]:
        if not is_frame_offset(offset):  # a literal was checked at INIT; a selector's value is checked here
            shown = offset if is_int(offset) else type(offset).__name__
            raise ValueError(f"offset must be an integer between -{MAX_HISTORY} and 0, got {shown}")
        frame = image.video.frame_number
        if self._frames and frame < next(reversed(self._frames)):
            self._frames.clear()
            self._depth = 0
        self._depth = max(self._depth, -offset)
        self._frames[frame] = data
        self._frames.move_to_end(frame)
        while next(iter(self._frames)) < frame - self._depth:
            self._frames.popitem(last=False)
        target = frame + offset
        available = target in self._frames
        return {"output": self._frames[target] if available else default_value, "is_available": available,
                "reference_frame_number": frame}
