"""stabilize_detections@v1: tracked boxes steadied from frame to frame, and a track the detector misses for a
frame or two kept where its velocity takes it (less flicker in drawn boxes, labels and counts).

As the reference (``transformations/stabilize_detections/v1.py``), per video source (one block instance per
source), with ``alpha`` the ``bbox_smoothing_coefficient``:

* a track seen before is output at ``alpha * box + (1 - alpha) * previous box``, the previous box being the
  track's box as it came on its last frame (or as filled in, when it was missing then); a new track's box is
  output as it is;
* each track's velocity, its box centre's displacement since that previous box, goes through a Kalman filter
  of the mean of its last ``smoothing_window_size`` displacements (:class:`VelocityFilter`);
* a track missing from a frame is output at its previous box moved by ``alpha`` times that velocity (the same
  average, of the previous box and the previous box moved by the velocity): it is the track's last detection,
  every field kept (detection id, class, confidence, lineage, the fields blocks added), with only its box moved
  (a mask stays where it was, as in the reference). Each missing frame takes a displacement out of the track's
  history and the track is dropped once none is left, i.e. it is filled in for as many frames as it had
  displacements (at most the window); a track seen on one frame only has none and is not filled in;
* the output is the frame's detections in their order, then the filled-in tracks in the order their
  velocities were first measured.

The filter's window is the one of the source's first frame (later changes are ignored, as in the reference).
Unlike the reference, the velocity is the box centre's (the reference measures ``x1 + |x2 - x1|``, i.e. the
right and bottom edges, which move otherwise than the centre when a box grows or shrinks), and the input
detections are left alone (the reference gives empty ones an empty ``tracker_id``).
"""

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.blocks import is_int, is_unit
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.tracked import require_tracked, subset
from services.worker.workflows.values import WorkflowImage

# The reference filter's noise. Its covariances are these times the identity, and with an identity state
# transition its error covariance stays a multiple of the identity too: one variance per track is all of it.
PROCESS_NOISE = 0.001
MEASUREMENT_NOISE = 0.01
INITIAL_VARIANCE = 1.0


@dataclass(slots=True)
class _TrackVelocity:
    velocity: np.ndarray  # (vx, vy): pixels per frame
    variance: float  # of the velocity estimate
    history: deque[np.ndarray]  # the latest displacements, newest first


class VelocityFilter:
    """Each track's velocity: the mean of its last ``window`` displacements, through a Kalman filter."""

    def __init__(self, window: int) -> None:
        self._window = window
        self._tracks: dict[int, _TrackVelocity] = {}  # in the order their velocities were first measured

    def __contains__(self, tracker_id: int) -> bool:
        return tracker_id in self._tracks

    def update(self, displacements: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Every track's velocity after this frame's ``displacements`` (a new track's is its first one).

        A track with none this frame loses its newest displacement, as the reference's filter does, and is
        dropped once it has none left; its velocity is still part of this frame's answer.
        """
        for tracker_id, displacement in displacements.items():
            track = self._tracks.get(tracker_id)
            if track is None:
                history = deque([displacement], maxlen=self._window)
                self._tracks[tracker_id] = _TrackVelocity(displacement.copy(), INITIAL_VARIANCE, history)
                continue
            track.history.appendleft(displacement)
            gain = track.variance / (track.variance + MEASUREMENT_NOISE)
            track.velocity = track.velocity + gain * (np.mean(track.history, axis=0) - track.velocity)
            track.variance -= gain * track.variance
        velocities: dict[int, np.ndarray] = {}
        for tracker_id, track in self._tracks.items():
            track.variance += PROCESS_NOISE
            velocities[tracker_id] = track.velocity.copy()
        for tracker_id in [i for i in self._tracks if i not in displacements]:
            history = self._tracks[tracker_id].history
            history.popleft()
            if not history:
                del self._tracks[tracker_id]
        return velocities


@dataclass(slots=True)
class _LastSeen:
    """A track's last detection: row ``row`` of ``frame`` (a private copy of that frame's detections), at ``box``
    (its box as it came, or as filled in since)."""

    frame: sv.Detections
    row: int
    box: np.ndarray


def centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def smoothed(previous: np.ndarray, current: np.ndarray, alpha: float) -> np.ndarray:
    """The exponential moving average's step: ``alpha`` of the current box, the rest of the previous one."""
    average: np.ndarray = alpha * current + (1 - alpha) * previous
    return average


class StabilizeDetections:
    """``roboflow_core/stabilize_detections@v1`` for one video source."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del env
        self._block = step.type
        self._last: dict[int, _LastSeen] = {}
        self._velocities: VelocityFilter | None = None

    def run(self, image: WorkflowImage, detections: sv.Detections, smoothing_window_size: int,
            bbox_smoothing_coefficient: float) -> dict[str, Any]:
        del image  # the source is this block instance's
        self._check(smoothing_window_size, bbox_smoothing_coefficient)
        alpha = float(bbox_smoothing_coefficient)
        tracker_ids = require_tracked(detections, self._block).tolist()
        if self._velocities is None:
            self._velocities = VelocityFilter(smoothing_window_size)
        frame = subset(detections, np.arange(len(detections)))  # kept for gap filling: the input feeds other steps
        boxes = np.asarray(frame.xyxy, dtype=np.float64)
        previous = {i: self._last[i].box for i in tracker_ids if i in self._last}
        velocities = self._velocities.update(
            {i: centre(box) - centre(previous[i]) for i, box in zip(tracker_ids, boxes, strict=True) if i in previous})

        output = subset(frame, np.arange(len(frame)))
        output.xyxy = np.array([smoothed(previous[i], box, alpha) if i in previous else box
                                for i, box in zip(tracker_ids, boxes, strict=True)],
                               dtype=frame.xyxy.dtype).reshape(-1, 4)
        output.tracker_id = np.asarray(tracker_ids, dtype=np.int64)
        for row, tracker_id in enumerate(tracker_ids):
            self._last[tracker_id] = _LastSeen(frame, row, boxes[row])
        present = set(tracker_ids)
        missing = [i for i in velocities if i not in present]  # every track with a velocity is in self._last
        filled = [self._filled_in(i, velocities[i], alpha, output.metadata) for i in missing]
        kept = present.union(missing)
        for tracker_id in [i for i in self._last if i not in self._velocities and i not in kept]:
            del self._last[tracker_id]
        return {"tracked_detections": sv.Detections.merge([output, *filled]) if filled else output}

    def _filled_in(self, tracker_id: int, velocity: np.ndarray, alpha: float,
                   metadata: dict[str, Any]) -> sv.Detections:
        """The missing track's last detection at its previous box moved by its velocity (and remembered there)."""
        last = self._last[tracker_id]
        last.box = smoothed(last.box, last.box + np.tile(velocity, 2), alpha)
        detection = subset(last.frame, [last.row])
        detection.xyxy = last.box.astype(last.frame.xyxy.dtype).reshape(1, 4)
        detection.metadata = dict(metadata)  # this frame's (its image size): merged with this frame's detections
        return detection

    def _check(self, window: Any, coefficient: Any) -> None:
        """The manifest's bounds, checked again for values that came from another step at run time."""
        if not is_int(window) or window < 1:
            raise ValueError(f"{self._block}: smoothing_window_size must be a positive integer, got {window!r}")
        if not is_unit(coefficient):
            raise ValueError(f"{self._block}: bbox_smoothing_coefficient must be between 0 and 1, got {coefficient!r}")
