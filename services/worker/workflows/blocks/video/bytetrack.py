"""ByteTrack for the tracker blocks, on the roboflow ``trackers`` package's ``ByteTrackTracker``.

Theory of operation. The reference's ``byte_tracker`` v1-v3 run ``sv.ByteTrack`` (supervision
< 0.30); supervision 0.31 no longer has it and delegates tracking to the ``trackers`` package, whose
ByteTrack has other conventions. :class:`SupervisionByteTrack` maps the block's tuning onto it so the
observable behaviour is sv.ByteTrack's:

* detections at or below 0.1 confidence are ignored; above ``track_activation_threshold`` they are
  "high" (first association round), the rest "low" (second round);
* an unmatched high detection starts a track only from ``track_activation_threshold + 0.1``; the track
  is confirmed (gets an id) on its ``minimum_consecutive_frames``-th matched frame after that (the
  trackers package counts the first frame too, hence ``+ 1``), except on the very first frame, where
  sv.ByteTrack confirms every new track at once (with ``minimum_consecutive_frames`` 1);
* association uses IoU >= ``1 - minimum_matching_threshold`` (sv.ByteTrack's distance threshold; it
  also weighs IoU by the detection's score, which the trackers package does not: an approximation);
* ids start at 1; only detections matched to a confirmed track are output, with the model's own boxes
  and every data field (detection ids included).

Unconfirmed detections (id -1) are dropped. The ``trackers_*`` blocks run the package as it is
(:mod:`~services.worker.workflows.blocks.video.package_tracker`).
"""

from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from services.worker.workflows.blocks.video.package_tracker import confidences, confirmed, track_step
from services.worker.workflows.blocks.video.timing import TrackerClock
from services.worker.workflows.blocks.video.tracked import subset
from services.worker.workflows.values import VideoMetadata

_LOW_CONFIDENCE_FLOOR = 0.1  # sv.ByteTrack ignores detections at or below this confidence
_ACTIVATION_MARGIN = 0.1  # sv.ByteTrack starts tracks from track_activation_threshold + this


class SupervisionByteTrack:
    """sv.ByteTrack's behaviour for one source (see the module's docstring)."""

    def __init__(self, first: VideoMetadata, *, track_activation_threshold: float, lost_track_buffer: int,
                 minimum_matching_threshold: float, minimum_consecutive_frames: int) -> None:
        self._clock = TrackerClock(first)
        self._spawn_threshold = float(track_activation_threshold) + _ACTIVATION_MARGIN
        self._confirm_first_frame = int(minimum_consecutive_frames) == 1
        self._first_frame = True
        self._tracker = ByteTrackTracker(
            lost_track_buffer=int(lost_track_buffer),
            frame_rate=self._clock.frame_rate,
            track_activation_threshold=self._spawn_threshold,
            minimum_consecutive_frames=int(minimum_consecutive_frames) + 1,
            minimum_iou_threshold=1.0 - float(minimum_matching_threshold),
            high_conf_det_threshold=float(track_activation_threshold),
        )

    def update(self, video: VideoMetadata, detections: sv.Detections) -> sv.Detections:
        usable = np.flatnonzero(confidences(detections) > _LOW_CONFIDENCE_FLOOR)
        candidates = subset(detections, usable) if len(usable) < len(detections) else detections
        rows, ids = track_step(self._tracker, candidates, self._clock.timestamp(video))
        if self._first_frame and self._confirm_first_frame:
            self._confirm_new_tracks(confidences(candidates), rows, ids)
        self._first_frame = False
        return confirmed(detections, usable[rows], ids, offset=1)

    def _confirm_new_tracks(self, scores: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> None:
        """sv.ByteTrack confirms the tracks started on the first frame at once; give them ids now.

        The tracker started one track per unconfirmed row that cleared the spawn threshold, in the
        order it returned those rows.
        """
        spawned = [i for i, row in enumerate(rows.tolist())
                   if ids[i] == -1 and float(scores[row]) >= self._spawn_threshold]
        new_tracks: list[Any] = [track for track in self._tracker.tracks if track.tracker_id == -1]
        if len(spawned) != len(new_tracks):  # not the tracker we know: leave it to its own rules
            return
        for i, track in zip(spawned, new_tracks, strict=True):
            track.tracker_id = self._tracker._allocate_tracker_id()
            ids[i] = track.tracker_id
