"""Velocity v1: each tracked object's velocity and speed between its last two sightings.

Positions are box centres, times video time (:func:`~services.worker.workflows.blocks.video.timing.video_seconds`);
velocity = displacement / elapsed seconds (0 on a track's first frame or when no time passed),
smoothed by an exponential moving average (``smoothing_alpha`` weighs the newest), both divided by
``pixels_per_meter``. Output detections carry ``velocity`` and ``smoothed_velocity`` ([vx, vy]) and
``speed`` and ``smoothed_speed`` data fields. Unlike the reference, the input detections are not
modified (it writes the fields into them, which other steps reading them would see).
"""

from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.video.timing import video_seconds
from services.worker.workflows.blocks.video.tracked import require_tracked, with_fields
from services.worker.workflows.values import SMOOTHED_SPEED, SMOOTHED_VELOCITY, SPEED, VELOCITY, WorkflowImage


class VelocityV1:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._block = step.type
        self._last: dict[int, tuple[np.ndarray, float]] = {}  # tracker id -> (centre, seconds)
        self._smoothed: dict[int, np.ndarray] = {}  # tracker id -> smoothed velocity (pixels/s)

    def run(self, image: WorkflowImage, detections: sv.Detections, smoothing_alpha: float = 0.5,
            pixels_per_meter: float = 1.0) -> dict[str, Any]:
        if not 0 < smoothing_alpha <= 1:
            raise ValueError(f"{self._block}: smoothing_alpha must be in (0, 1], got {smoothing_alpha!r}")
        if not pixels_per_meter > 0:
            raise ValueError(f"{self._block}: pixels_per_meter must be > 0, got {pixels_per_meter!r}")
        tracker_ids = require_tracked(detections, self._block)
        now = video_seconds(image.video)
        centres = detections.get_anchors_coordinates(sv.Position.CENTER) if len(detections) else np.zeros((0, 2))
        velocity = np.zeros((len(detections), 2), dtype=np.float64)
        smoothed = np.zeros((len(detections), 2), dtype=np.float64)
        for i, (tracker_id, centre) in enumerate(zip(tracker_ids.tolist(), centres, strict=True)):
            velocity[i] = self._velocity(tracker_id, np.asarray(centre, dtype=np.float64), now)
            previous = self._smoothed.get(tracker_id)
            smoothed[i] = velocity[i] if previous is None else smoothing_alpha * velocity[i] + (
                1 - smoothing_alpha) * previous
            self._smoothed[tracker_id] = smoothed[i].copy()
        velocity /= pixels_per_meter
        smoothed /= pixels_per_meter
        fields = {VELOCITY: velocity, SPEED: np.linalg.norm(velocity, axis=1),
                  SMOOTHED_VELOCITY: smoothed, SMOOTHED_SPEED: np.linalg.norm(smoothed, axis=1)}
        return {"velocity_detections": with_fields(detections, **fields)}

    def _velocity(self, tracker_id: int, centre: np.ndarray, now: float) -> np.ndarray:
        """Pixels per second since the track's last sighting (recording this one)."""
        last = self._last.get(tracker_id)
        self._last[tracker_id] = (centre, now)
        if last is None or now <= last[1]:
            return np.zeros(2, dtype=np.float64)
        velocity: np.ndarray = (centre - last[0]) / (now - last[1])
        return velocity
