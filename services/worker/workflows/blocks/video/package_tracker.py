"""The roboflow ``trackers`` package's trackers as the tracker blocks run them, one per video source.

Every tracker of the package (ByteTrack, SORT, OC-SORT, BoT-SORT) has the same step,
``update(detections, frame=None, timestamp=None)``, and marks a detection it has not confirmed yet
with tracker id -1. :func:`track_step` runs one step on a probe (boxes and confidences only, plus
each detection's row) and :func:`confirmed` maps the result back onto the input detections, so a
tracked detection keeps the model's own box and every data field (detection id, class, lineage)
whatever the tracker does to its copy. :class:`PackageTracker` adds the source's clock (frame counts
or timestamps, :class:`~services.worker.workflows.blocks.video.timing.TrackerClock`) and, for
BoT-SORT's camera motion compensation, the frame's pixels.
"""

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import numpy as np
import supervision as sv

from services.worker.workflows.blocks.video.timing import TrackerClock
from services.worker.workflows.blocks.video.tracked import subset
from services.worker.workflows.values import VideoMetadata

_ROW = "_row"  # data key of the probe: which input row a tracked detection is


class Tracker(Protocol):
    def update(self, detections: sv.Detections, frame: np.ndarray | None = None,
               timestamp: float | None = None) -> sv.Detections: ...


def confidences(detections: sv.Detections) -> np.ndarray:
    """The detections' confidences (1 for each where the model gave none)."""
    if detections.confidence is None:
        return np.ones(len(detections), dtype=np.float32)
    return np.asarray(detections.confidence, dtype=np.float32)


def track_step(tracker: Tracker, detections: sv.Detections, timestamp: float | None,
               frame: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One tracker step: (input rows, tracker ids) of what it returned (ids -1 for unconfirmed)."""
    probe = sv.Detections(xyxy=np.asarray(detections.xyxy, dtype=np.float32).reshape(-1, 4),
                          confidence=confidences(detections),
                          data={_ROW: np.arange(len(detections), dtype=np.int64)})
    result = tracker.update(probe, frame=frame, timestamp=timestamp)
    if len(result) == 0 or result.tracker_id is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.asarray(result.data[_ROW], dtype=np.int64), np.asarray(result.tracker_id, dtype=np.int64)


def confirmed(detections: sv.Detections, rows: np.ndarray, ids: np.ndarray, offset: int) -> sv.Detections:
    """The input detections the tracker confirmed, in input order, with ``tracker_id`` = id + offset."""
    keep = ids >= 0
    rows, ids = rows[keep], ids[keep]
    order = np.argsort(rows, kind="stable")
    tracked = subset(detections, rows[order])
    tracked.tracker_id = ids[order] + offset
    return tracked


class PackageTracker:
    """One of the package's trackers for one source, as the ``trackers_*`` blocks run it: the package
    as it is (ids from 0, a track confirmed after its ``minimum_consecutive_frames``).

    ``make(frame_rate)`` builds the tracker; ``wants_frame``: the tracker is given each frame's pixels
    (BoT-SORT with camera motion compensation).
    """

    def __init__(self, first: VideoMetadata, make: Callable[[float], Tracker], wants_frame: bool = False) -> None:
        self._clock = TrackerClock(first)
        self._tracker = make(self._clock.frame_rate)
        self._wants_frame = wants_frame

    def update(self, video: VideoMetadata, detections: sv.Detections, frame: np.ndarray | None) -> sv.Detections:
        rows, ids = track_step(self._tracker, detections, self._clock.timestamp(video),
                               frame if self._wants_frame else None)
        return confirmed(detections, rows, ids, offset=0)


class InstanceCache:
    """The last ``size`` track ids seen, oldest forgotten first: tells first appearances apart."""

    def __init__(self, size: int) -> None:
        self._size = max(1, int(size))
        self._seen: OrderedDict[int, None] = OrderedDict()

    def first_sighting(self, tracker_id: int) -> bool:
        """True the first time an id is recorded (or again once it has been forgotten)."""
        if tracker_id in self._seen:
            return False
        self._seen[tracker_id] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True

    def split(self, tracked: sv.Detections) -> tuple[sv.Detections, sv.Detections]:
        """(first appearances, already seen) among ``tracked``, recording every id."""
        ids = [] if tracked.tracker_id is None else tracked.tracker_id.tolist()
        new = np.array([self.first_sighting(int(i)) for i in ids], dtype=bool)
        return subset(tracked, np.flatnonzero(new)), subset(tracked, np.flatnonzero(~new))

