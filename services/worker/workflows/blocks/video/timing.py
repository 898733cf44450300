"""Video time: how the video blocks measure seconds between frames.

A file with a known fps runs on video time, ``frame_number / fps``, so results do not depend on how
fast the worker decodes. A live stream, or any source whose fps is unknown (None or 0), runs on the
frames' capture timestamps (wall clock). This is the reference's rule, except that the reference
divides by a missing fps (an error) where we fall back to the timestamps.
"""

from services.worker.workflows.values import VideoMetadata

# The frame rate ByteTrack's lost_track_buffer is expressed in (frames "at 30 fps").
NOMINAL_FPS = 30.0


def known_fps(video: VideoMetadata) -> float | None:
    """The source's declared frame rate, or None when it is missing or not positive."""
    return float(video.fps) if video.fps is not None and video.fps > 0 else None


def video_seconds(video: VideoMetadata) -> float:
    """Seconds of this frame: frame_number / fps for a file with a known fps, else its timestamp."""
    fps = known_fps(video)
    if video.comes_from_video_file and fps is not None:
        return video.frame_number / fps
    return video.frame_timestamp.timestamp()


class TrackerClock:
    """Paces a tracker of the ``trackers`` package for one source.

    With a known fps the tracker counts frames (fixed-rate mode, ``frame_rate`` = fps); without one
    it gets each frame's timestamp, so a lost track is dropped after ``lost_track_buffer / 30``
    seconds of wall clock. Timestamps are made strictly increasing, as the tracker skips (and warns
    about) a frame whose timestamp does not advance.
    """

    _STEP = 1e-6

    def __init__(self, first: VideoMetadata) -> None:
        fps = known_fps(first)
        self.frame_rate = fps if fps is not None else NOMINAL_FPS
        self.uses_timestamps = fps is None
        self._last: float | None = None

    def timestamp(self, video: VideoMetadata) -> float | None:
        if not self.uses_timestamps:
            return None
        stamp = video.frame_timestamp.timestamp()
        if self._last is not None and stamp <= self._last:
            stamp = self._last + self._STEP
        self._last = stamp
        return stamp
