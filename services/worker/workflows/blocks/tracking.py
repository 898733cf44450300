"""Tracking blocks: ``byte_tracker`` v1/v2/v3 and the trackers package's ``trackers_bytetrack``,
``trackers_sort``, ``trackers_ocsort`` and ``trackers_botsort`` v1; ``track_class_lock`` v1 (see
``video/class_lock.py``).

One tracker per block instance, i.e. per video source, created on the source's first frame with that
frame's tuning (as the reference: later changes of a tuning value are ignored). Trackers run on
frame counts when the source declares its fps and on the frames' timestamps when it does not
(:class:`~services.worker.workflows.blocks.video.timing.TrackerClock`); the reference uses an fps of
0 there (v2, v3: every lost track is dropped at once), fails (v1) or assumes 30 (the ``trackers_*`` blocks).
"""

from collections.abc import Callable
from typing import Any

import supervision as sv
from trackers import BoTSORTTracker, ByteTrackTracker, OCSORTTracker, SORTTracker

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory
from services.worker.workflows.blocks.video.bytetrack import SupervisionByteTrack
from services.worker.workflows.blocks.video.class_lock import TrackClassLock
from services.worker.workflows.blocks.video.package_tracker import InstanceCache, PackageTracker, Tracker
from services.worker.workflows.blocks.video.stabilize import StabilizeDetections
from services.worker.workflows.values import VideoMetadata, WorkflowImage

TRACKED = "tracked_detections"


class _ByteTracker:
    """sv.ByteTrack-style tracking of one source (byte_tracker v1-v3)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._tracker: SupervisionByteTrack | None = None

    def _track(self, video: VideoMetadata, detections: sv.Detections, tuning: dict[str, Any]) -> sv.Detections:
        if self._tracker is None:
            self._tracker = SupervisionByteTrack(video, **tuning)
        return self._tracker.update(video, detections)


class ByteTrackerV1(_ByteTracker):
    """v1: the video metadata comes in its own ``metadata`` input."""

    def run(self, metadata: VideoMetadata, detections: sv.Detections, **tuning: Any) -> dict[str, Any]:
        return {TRACKED: self._track(metadata, detections, tuning)}


class ByteTrackerV2(_ByteTracker):
    """v2: the video metadata is the image's."""

    def run(self, image: WorkflowImage, detections: sv.Detections, **tuning: Any) -> dict[str, Any]:
        return {TRACKED: self._track(image.video, detections, tuning)}


class _FirstSightings:
    """Splits tracked detections into ids seen for the first time and ids seen before."""

    def __init__(self) -> None:
        self._cache: InstanceCache | None = None

    def outputs(self, tracked: sv.Detections, cache_size: int) -> dict[str, Any]:
        if self._cache is None:
            self._cache = InstanceCache(cache_size)
        new, seen = self._cache.split(tracked)
        return {TRACKED: tracked, "new_instances": new, "already_seen_instances": seen}


class ByteTrackerV3(_ByteTracker):
    """v3: v2 plus ``new_instances`` (an id's first frame) and ``already_seen_instances``."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        super().__init__(step, env)
        self._sightings = _FirstSightings()

    def run(self, image: WorkflowImage, detections: sv.Detections, instances_cache_size: int,
            **tuning: Any) -> dict[str, Any]:
        return self._sightings.outputs(self._track(image.video, detections, tuning), instances_cache_size)


# Tuning fields of the trackers_* blocks that the package takes as integers or flags (the rest: floats).
_INTEGERS = frozenset({"lost_track_buffer", "minimum_consecutive_frames", "delta_t", "cmc_downscale"})
_FLAGS = frozenset({"enable_cmc", "instant_first_frame_activation"})


def _typed(name: str, value: Any) -> Any:
    if name in _INTEGERS:
        return int(value)
    if name in _FLAGS:
        return bool(value)
    return value if isinstance(value, str) else float(value)


class _PackageTrackerBlock:
    """A ``trackers_*@v1`` block: one tracker of the package per source, built on the source's first
    frame with that frame's tuning, and its confirmed detections split into first and later sightings."""

    tracker_class: Callable[..., Tracker]

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._tracker: PackageTracker | None = None
        self._sightings = _FirstSightings()

    def run(self, image: WorkflowImage, detections: sv.Detections, instances_cache_size: int,
            **tuning: Any) -> dict[str, Any]:
        if self._tracker is None:
            options = {name: _typed(name, value) for name, value in tuning.items()}
            self._tracker = PackageTracker(image.video, lambda rate: self.tracker_class(frame_rate=rate, **options),
                                           wants_frame=options.get("enable_cmc", False))
        tracked = self._tracker.update(image.video, detections, image.image)
        return self._sightings.outputs(tracked, instances_cache_size)


class TrackersByteTrackV1(_PackageTrackerBlock):
    """trackers_bytetrack@v1: ByteTrack (two association rounds, high- then low-confidence detections)."""

    tracker_class = ByteTrackTracker


class TrackersSortV1(_PackageTrackerBlock):
    """trackers_sort@v1: SORT (a Kalman filter and one IoU assignment)."""

    tracker_class = SORTTracker


class TrackersOcSortV1(_PackageTrackerBlock):
    """trackers_ocsort@v1: OC-SORT (observation-centric re-update, direction consistency)."""

    tracker_class = OCSORTTracker


class TrackersBotSortV1(_PackageTrackerBlock):
    """trackers_botsort@v1: BoT-SORT; with ``enable_cmc`` it is given each frame to compensate camera motion."""

    tracker_class = BoTSORTTracker


BLOCKS: dict[str, BlockFactory] = {
    "roboflow_core/byte_tracker@v1": ByteTrackerV1,
    "roboflow_core/byte_tracker@v2": ByteTrackerV2,
    "roboflow_core/byte_tracker@v3": ByteTrackerV3,
    "roboflow_core/trackers_bytetrack@v1": TrackersByteTrackV1,
    "roboflow_core/trackers_sort@v1": TrackersSortV1,
    "roboflow_core/trackers_ocsort@v1": TrackersOcSortV1,
    "roboflow_core/trackers_botsort@v1": TrackersBotSortV1,
    "roboflow_core/track_class_lock@v1": TrackClassLock,
    "roboflow_core/stabilize_detections@v1": StabilizeDetections,
}
