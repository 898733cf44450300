"""A decoded video frame and the metadata that travels with it."""

from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One decoded frame of one source.

    ``image`` is BGR ``uint8`` HxWx3 as OpenCV decodes it. ``frame_timestamp`` is wall-clock
    (UTC, timezone-aware) time of decoding, reported to users; ``decoded_at`` is
    ``time.monotonic()`` at the same moment, used for latency arithmetic. ``fps`` is the source's
    declared frame rate when it has one; ``from_file`` whether the source is a video file.
    """

    image: np.ndarray
    frame_id: int
    source_id: int
    frame_timestamp: datetime
    decoded_at: float
    fps: float | None = None
    from_file: bool | None = None
