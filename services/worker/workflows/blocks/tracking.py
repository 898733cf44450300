"""Tracking blocks: ``byte_tracker`` v1/v2/v3 and ``trackers_bytetrack`` v1.

One tracker per block instance, i.e. per video source, created on the source's first frame with that
frame's tuning (as the reference: later changes of a tuning value are ignored). Trackers run on
frame counts when the source declares its fps and on the frames' timestamps when it does not
(:class:`~services.worker.workflows.blocks.video.timing.TrackerClock`); the reference uses an fps of
0 there (v2, v3: every lost track is dropped at once), fails (v1) or assumes 30 (trackers_bytetrack).
"""

from typing import Any

import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory
from services.worker.workflows.blocks.video.bytetrack import InstanceCache, SupervisionByteTrack, TrackersByteTrack
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


class TrackersByteTrackV1:
    """trackers_bytetrack@v1: the trackers package's ByteTrack (ids from 0, none on the first frame)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._tracker: TrackersByteTrack | None = None
        self._sightings = _FirstSightings()

    def run(self, image: WorkflowImage, detections: sv.Detections, instances_cache_size: int,
            **tuning: Any) -> dict[str, Any]:
        if self._tracker is None:
            self._tracker = TrackersByteTrack(image.video, **tuning)
        return self._sightings.outputs(self._tracker.update(image.video, detections), instances_cache_size)


BLOCKS: dict[str, BlockFactory] = {
    "roboflow_core/byte_tracker@v1": ByteTrackerV1,
    "roboflow_core/byte_tracker@v2": ByteTrackerV2,
    "roboflow_core/byte_tracker@v3": ByteTrackerV3,
    "roboflow_core/trackers_bytetrack@v1": TrackersByteTrackV1,
}
