"""Time in zone v1/v2/v3: how long each tracked object has been inside a polygon zone.

Membership is supervision's ``PolygonZone`` (the triggering anchor inside the polygon; v3 accepts
several polygons and an object is inside when it is inside any). Time is video time
(:func:`~services.worker.workflows.blocks.video.timing.video_seconds`): 0.0 on the first frame an
object is seen inside, then seconds since that frame. An object missing from a frame keeps its entry
time; one seen outside loses it when ``reset_out_of_zone_detections`` (the default). The output keeps
only the detections inside unless ``remove_out_of_zone_detections`` is false (then those outside are
output with 0.0), each with a ``time_in_zone`` data field.

Differences from the reference: it also forgets the entry time of an object seen outside when both
flags are false (contrary to its manifest's description of ``reset_out_of_zone_detections``); ours
keeps it, so the time is cumulative as documented. v1/v2 use the zone of the source's first frame (as
the reference); v3 follows the zone given on each frame.
"""

from collections import OrderedDict
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.timing import video_seconds
from services.worker.workflows.blocks.video.tracked import anchor, points, require_tracked, subset
from services.worker.workflows.values import TIME_IN_ZONE, VideoMetadata, WorkflowImage

_ZONE_CACHE_SIZE = 64  # v3: polygon zones kept for zones that change from frame to frame


def _is_list_of_polygons(zone: Any) -> bool:
    try:
        return bool(np.ndim(zone[0][0]) >= 1)
    except (TypeError, IndexError, KeyError, ValueError):
        return False


class _TimeInZone:
    def __init__(self, step: PlanStep, env: BlockEnvironment, several_zones: bool = False) -> None:
        self._block = step.type
        self._several = several_zones
        self._zones: OrderedDict[str, list[sv.PolygonZone]] = OrderedDict()
        self._entered: dict[int, float] = {}  # tracker id -> video time it was first seen inside

    def _timed(self, video: VideoMetadata, detections: sv.Detections, zone: Any, triggering_anchor: str,
               remove_out_of_zone_detections: bool, reset_out_of_zone_detections: bool) -> dict[str, Any]:
        tracker_ids = require_tracked(detections, self._block)
        inside = self._inside(detections, zone, triggering_anchor)
        now = video_seconds(video)
        rows: list[int] = []
        times: list[float] = []
        for row, (tracker_id, is_inside) in enumerate(zip(tracker_ids.tolist(), inside.tolist(), strict=True)):
            if is_inside:
                rows.append(row)
                times.append(now - self._entered.setdefault(tracker_id, now))
                continue
            if reset_out_of_zone_detections:
                self._entered.pop(tracker_id, None)
            if not remove_out_of_zone_detections:
                rows.append(row)
                times.append(0.0)
        timed = subset(detections, rows)
        timed.data[TIME_IN_ZONE] = np.array(times, dtype=np.float64)
        return {"timed_detections": timed}

    def _inside(self, detections: sv.Detections, zone: Any, triggering_anchor: str) -> np.ndarray:
        zones = self._polygon_zones(zone, triggering_anchor)
        if len(detections) == 0:
            return np.zeros(0, dtype=bool)
        inside: np.ndarray = np.any([polygon_zone.trigger(detections) for polygon_zone in zones], axis=0)
        return inside

    def _polygon_zones(self, zone: Any, triggering_anchor: str) -> list[sv.PolygonZone]:
        key = repr((zone, triggering_anchor)) if self._several else ""
        if key not in self._zones:
            position = anchor(triggering_anchor, self._block)
            polygons = zone if self._several and _is_list_of_polygons(zone) else [zone]
            self._zones[key] = [
                sv.PolygonZone(np.rint(points(polygon, 3, "zone", self._block)).astype(np.int64),
                               triggering_anchors=(position,))
                for polygon in polygons
            ]
            if len(self._zones) > _ZONE_CACHE_SIZE:
                self._zones.popitem(last=False)
        return self._zones[key]


class TimeInZoneV1(_TimeInZone):
    """v1: the video metadata comes in its own ``metadata`` input."""

    def run(self, image: WorkflowImage, metadata: VideoMetadata, detections: sv.Detections,
            **params: Any) -> dict[str, Any]:
        return self._timed(metadata, detections, **params)


class TimeInZoneV2(_TimeInZone):
    """v2: the video metadata is the image's."""

    def run(self, image: WorkflowImage, detections: sv.Detections, **params: Any) -> dict[str, Any]:
        return self._timed(image.video, detections, **params)


class TimeInZoneV3(_TimeInZone):
    """v3: as v2, with one polygon or a list of polygons, read on every frame."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        super().__init__(step, env, several_zones=True)

    def run(self, image: WorkflowImage, detections: sv.Detections, **params: Any) -> dict[str, Any]:
        return self._timed(image.video, detections, **params)
