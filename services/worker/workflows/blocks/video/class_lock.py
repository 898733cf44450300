"""track_class_lock@v1: each track's class decided by vote and then held, so labels and per-class counts
do not flicker with the model's frame-to-frame doubts (a van read as a truck one frame in five).

As the reference's manifest describes it, per video source (one block instance per source):

* before a track is locked, every frame whose confidence reaches ``vote_confidence`` is a vote for its
  class; the track locks to the leading class once it has ``min_votes`` and leads the runner-up by
  ``lead_margin``;
* once locked, the track's detections carry the locked class, its class id, and the mean confidence of
  the votes that won; another class takes the lock only after ``switch_after`` consecutive qualifying
  frames of that same class (any other frame resets the streak), and then starts with that streak's
  votes;
* a new tracker id appearing within ``reattach_window`` frames where a locked track was lost (box IoU at
  least ``reattach_iou``, the best such) inherits that track's lock and votes: a tracker's id switch
  after a short gap does not reset the class;
* tracks unseen for more than ``state_ttl`` frames are forgotten.

Each output detection says whether its class is locked in the ``class_locked`` data field (not part of
the serialised prediction, as in the reference).
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.tracked import subset
from services.worker.workflows.values import WorkflowImage

CLASS_LOCKED = "class_locked"


@dataclass(frozen=True, slots=True)
class LockRules:
    min_votes: int
    vote_confidence: float
    lead_margin: int
    switch_after: int
    state_ttl: int
    reattach_window: int
    reattach_iou: float

    def __post_init__(self) -> None:
        """The manifest's bounds, checked again for values that came from another step at run time."""
        problems = [
            f"{name} must be {bound}, got {value!r}" for name, value, ok, bound in (
                ("min_votes", self.min_votes, self.min_votes >= 1, ">= 1"),
                ("vote_confidence", self.vote_confidence, 0 <= self.vote_confidence <= 1, "between 0 and 1"),
                ("lead_margin", self.lead_margin, self.lead_margin >= 0, ">= 0"),
                ("switch_after", self.switch_after, self.switch_after >= 1, ">= 1"),
                ("state_ttl", self.state_ttl, self.state_ttl >= 1, ">= 1"),
                ("reattach_window", self.reattach_window, 0 <= self.reattach_window <= self.state_ttl,
                 f"between 0 and state_ttl ({self.state_ttl})"),
                ("reattach_iou", self.reattach_iou, 0 <= self.reattach_iou <= 1, "between 0 and 1"),
            ) if not ok
        ]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(slots=True)
class _Track:
    """One track's votes and lock."""

    last_seen: int
    last_box: np.ndarray
    votes: Counter[str] = field(default_factory=Counter)  # qualifying frames per class (the lock's evidence)
    confidence_sums: dict[str, float] = field(default_factory=dict)
    class_ids: dict[str, int] = field(default_factory=dict)
    locked: str | None = None
    challenger: str | None = None
    streak: int = 0
    streak_confidence: float = 0.0

    def observe(self, name: str, class_id: int | None, confidence: float, rules: LockRules) -> None:
        """One frame's class and confidence for this track."""
        qualifying = confidence >= rules.vote_confidence
        if self.locked is None:
            if qualifying:
                self.votes[name] += 1
                self.confidence_sums[name] = self.confidence_sums.get(name, 0.0) + confidence
                self._learn(name, class_id)
            ranked = self.votes.most_common(2)  # ties: the class voted for first leads
            if ranked:
                leader, lead = ranked[0]
                runner_up = ranked[1][1] if len(ranked) > 1 else 0
                if lead >= rules.min_votes and lead - runner_up >= rules.lead_margin:
                    self.locked = leader
            return
        if not qualifying or name == self.locked:
            self._reset_streak()
            return
        if name == self.challenger:
            self.streak += 1
            self.streak_confidence += confidence
        else:
            self.challenger, self.streak, self.streak_confidence = name, 1, confidence
            self._learn(name, class_id)
        if self.streak >= rules.switch_after:
            self.locked = name
            self.votes = Counter({name: self.streak})
            self.confidence_sums = {name: self.streak_confidence}
            self._reset_streak()

    def locked_confidence(self) -> float:
        assert self.locked is not None
        return min(1.0, self.confidence_sums.get(self.locked, 0.0) / max(self.votes[self.locked], 1))

    def _learn(self, name: str, class_id: int | None) -> None:
        if class_id is not None:
            self.class_ids[name] = class_id

    def _reset_streak(self) -> None:
        self.challenger, self.streak, self.streak_confidence = None, 0, 0.0


class TrackClassLock:
    """``roboflow_core/track_class_lock@v1`` for one video source."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env
        self._tracks: dict[int, _Track] = {}
        self._frame = 0

    def run(self, image: WorkflowImage, detections: sv.Detections, **rules: Any) -> dict[str, Any]:
        checked = LockRules(**rules)
        if len(detections) and detections.tracker_id is None:
            raise ValueError("track_class_lock needs tracked detections: feed it a tracker's tracked_detections")
        self._frame += 1
        output = subset(detections, np.arange(len(detections)))  # a copy: the input feeds other steps too
        count = len(output)
        if output.confidence is None:
            output.confidence = np.ones(count, dtype=np.float32)
        names = output.data.get(values.CLASS_NAME)
        if names is not None:
            names = output.data[values.CLASS_NAME] = np.asarray(names).astype(object)  # any name length fits
        locked = np.zeros(count, dtype=bool)
        track_ids = [] if output.tracker_id is None else [int(i) for i in output.tracker_id]
        active = {i for i in track_ids if i >= 0}
        for row, track_id in enumerate(track_ids):
            if track_id < 0:
                continue
            track = self._track(track_id, np.array(output.xyxy[row], dtype=np.float64), active, checked)
            class_id = None if output.class_id is None else int(output.class_id[row])
            name = str(names[row]) if names is not None else None if class_id is None else str(class_id)
            if name is None:
                continue
            track.observe(name, class_id, float(output.confidence[row]), checked)
            if track.locked is not None:
                if names is not None:
                    names[row] = track.locked
                if output.class_id is not None and track.locked in track.class_ids:
                    output.class_id[row] = track.class_ids[track.locked]
                output.confidence[row] = track.locked_confidence()
                locked[row] = True
        output.data[CLASS_LOCKED] = locked
        self._forget(checked.state_ttl)
        return {"tracked_detections": output}

    def _track(self, track_id: int, box: np.ndarray, active: set[int], rules: LockRules) -> _Track:
        """The track of ``track_id`` (a lost locked track's, re-attached, when it is new), seen now at ``box``."""
        track = self._tracks.get(track_id)
        if track is None:
            lost = self._lost_lock_at(box, active, rules)
            track = self._tracks.pop(lost) if lost is not None else _Track(self._frame, box)
            self._tracks[track_id] = track
        track.last_seen, track.last_box = self._frame, box
        return track

    def _lost_lock_at(self, box: np.ndarray, active: set[int], rules: LockRules) -> int | None:
        """The locked track lost within the re-attach window whose last box overlaps ``box`` most."""
        best, best_iou = None, 0.0
        for track_id, track in self._tracks.items():
            gap = self._frame - track.last_seen
            if track_id in active or track.locked is None or not 1 <= gap <= rules.reattach_window:
                continue
            iou = float(sv.box_iou_batch(box[None, :], track.last_box[None, :])[0, 0])
            if iou >= rules.reattach_iou and iou > best_iou:
                best, best_iou = track_id, iou
        return best

    def _forget(self, state_ttl: int) -> None:
        for track_id in [i for i, track in self._tracks.items() if self._frame - track.last_seen > state_ttl]:
            del self._tracks[track_id]
