"""Line counter v1/v2: counts tracked objects crossing a line, with supervision's ``LineZone``.

A crossing counts on the first frame the anchor is seen on the new side ("in" = from the right of
start→end to its left, supervision's convention); a track missing for two frames loses its side
history. v1's anchor defaults to CENTER; v2 without an anchor uses the four box corners (all must
change side; frames where the box straddles the line are ignored). The line and anchor are those of
the source's first frame (as the reference).
"""

from typing import Any

import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.tracked import anchor, points, require_tracked, subset
from services.worker.workflows.values import VideoMetadata, WorkflowImage


class _LineCounter:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._block = step.type
        self._zone: sv.LineZone | None = None

    def _trigger(self, detections: sv.Detections, line_segment: Any, triggering_anchor: str | None
                 ) -> tuple[Any, Any]:
        require_tracked(detections, self._block)
        if self._zone is None:
            self._zone = self._line_zone(line_segment, triggering_anchor)
        return self._zone.trigger(detections)  # empty detections (no ids needed) age the history

    def _line_zone(self, line_segment: Any, triggering_anchor: str | None) -> sv.LineZone:
        line = points(line_segment, 2, "line_segment", self._block)
        if len(line) != 2 or (line[0] == line[1]).all():
            raise ValueError(f"{self._block}: line_segment must be two distinct points, got {line_segment!r}")
        start, end = sv.Point(*line[0].tolist()), sv.Point(*line[1].tolist())
        if triggering_anchor is None:
            return sv.LineZone(start=start, end=end)  # the four corners
        return sv.LineZone(start=start, end=end, triggering_anchors=[anchor(triggering_anchor, self._block)])

    def _counts(self) -> dict[str, Any]:
        assert self._zone is not None
        return {"count_in": self._zone.in_count, "count_out": self._zone.out_count}


class LineCounterV1(_LineCounter):
    def run(self, metadata: VideoMetadata, detections: sv.Detections, line_segment: Any,
            triggering_anchor: str = "CENTER") -> dict[str, Any]:
        self._trigger(detections, line_segment, triggering_anchor)
        return self._counts()


class LineCounterV2(_LineCounter):
    def run(self, image: WorkflowImage, detections: sv.Detections, line_segment: Any,
            triggering_anchor: str | None = None) -> dict[str, Any]:
        crossed_in, crossed_out = self._trigger(detections, line_segment, triggering_anchor)
        return {**self._counts(), "detections_in": subset(detections, crossed_in.nonzero()[0]),
                "detections_out": subset(detections, crossed_out.nonzero()[0])}
