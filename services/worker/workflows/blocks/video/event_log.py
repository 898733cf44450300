"""Detection event log v1: when each tracked object was first and last seen, once it has stayed a while.

Frames are counted by the block itself (1 on the first frame it runs). An object is "pending" until
it has been seen on ``frame_threshold`` frames, then "logged". Every ``flush_interval`` frames,
objects not seen for more than ``stale_frames`` frames are dropped; the logged ones among them are
reported once in ``complete_events``. Absolute times are the frames' capture timestamps (Unix
seconds); ``*_relative`` times count from the first frame's timestamp (as the reference; a frame
always has a timestamp here, so ``fallback_fps`` is accepted but never needed).

Detections without tracker ids are passed through and log nothing, as the reference does (its own
tests require it), rather than failing the step.
"""

from dataclasses import asdict, dataclass
from typing import Any

import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import CLASS_NAME, WorkflowImage


@dataclass(slots=True)
class DetectionEvent:
    """One tracked object's record (field order = the reference's serialised order)."""

    tracker_id: int
    class_name: str
    first_seen_frame: int
    first_seen_timestamp: float
    last_seen_frame: int
    last_seen_timestamp: float
    first_seen_relative: float
    last_seen_relative: float
    frame_count: int = 1

    def seen(self, frame: int, timestamp: float, relative: float) -> None:
        self.last_seen_frame, self.last_seen_timestamp, self.last_seen_relative = frame, timestamp, relative
        self.frame_count += 1


def _class_names(detections: sv.Detections) -> list[str]:
    if CLASS_NAME in detections.data:
        return [str(name) for name in detections.data[CLASS_NAME]]
    if detections.class_id is not None:
        return [f"class_{class_id}" for class_id in detections.class_id.tolist()]
    return ["unknown"] * len(detections)


class DetectionEventLogV1:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._block = step.type
        self._events: dict[int, DetectionEvent] = {}
        self._frame = 0
        self._last_flush = 0
        self._start: float | None = None  # the first frame's timestamp

    def run(self, image: WorkflowImage, detections: sv.Detections, frame_threshold: int = 30,
            flush_interval: int = 30, stale_frames: int = 300, **_: Any) -> dict[str, Any]:
        tracker_ids = [] if detections.tracker_id is None else detections.tracker_id.tolist()
        self._frame += 1
        timestamp = image.video.frame_timestamp.timestamp()
        if self._start is None:
            self._start, self._last_flush = timestamp, self._frame
        complete = self._flush(flush_interval, stale_frames, frame_threshold)
        for tracker_id, class_name in zip(tracker_ids, _class_names(detections), strict=False):
            self._record(int(tracker_id), class_name, timestamp)
        logged = {str(k): asdict(e) for k, e in self._events.items() if e.frame_count >= frame_threshold}
        pending = {str(k): asdict(e) for k, e in self._events.items() if e.frame_count < frame_threshold}
        return {
            "event_log": {"logged": logged, "pending": pending},
            "detections": detections,
            "total_logged": len(logged),
            "total_pending": len(pending),
            "complete_events": {str(event.tracker_id): asdict(event) for event in complete},
        }

    def _record(self, tracker_id: int, class_name: str, timestamp: float) -> None:
        assert self._start is not None
        relative = timestamp - self._start
        event = self._events.get(tracker_id)
        if event is None:
            self._events[tracker_id] = DetectionEvent(tracker_id, class_name, self._frame, timestamp, self._frame,
                                                      timestamp, relative, relative)
        else:
            event.seen(self._frame, timestamp, relative)

    def _flush(self, flush_interval: int, stale_frames: int, frame_threshold: int) -> list[DetectionEvent]:
        """Every ``flush_interval`` frames: drop stale events; the logged ones among them are complete."""
        if self._frame - self._last_flush < flush_interval:
            return []
        self._last_flush = self._frame
        stale = [k for k, e in self._events.items() if self._frame - e.last_seen_frame > stale_frames]
        dropped = [self._events.pop(k) for k in stale]
        return [event for event in dropped if event.frame_count >= frame_threshold]
