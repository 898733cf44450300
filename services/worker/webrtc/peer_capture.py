"""The peer's video as a :class:`~services.worker.engine.capture.Capture`, read by the pipeline's source thread.

``grab`` takes the next received frame from the session's :class:`~.inbox.FrameInbox` (cheap: no
conversion); ``retrieve`` converts it to a BGR ``uint8`` array, so the frames the source skips for
``max_fps`` are never converted. ``grab`` returns False once the peer side ended (its reason in
``end_reason``), after ``peer_timeout`` s without a frame, once the session closed, or after ``interrupt``
(the source is terminating). The properties come from the first frame (size) and the declared or measured
frame rate; a peer has no frame count (0).
"""

import threading

import cv2
import numpy as np
from av import VideoFrame

from services.worker.webrtc.inbox import FrameInbox

CLOSED_REASON = "the WebRTC session was closed"
INTERRUPTED_REASON = "the capture was interrupted"


class PeerCapture:
    """One opened view of a session's received video (see the module docstring)."""

    def __init__(self, inbox: FrameInbox, fps: float) -> None:
        self._inbox = inbox
        self._fps = fps
        size = inbox.size
        self._width, self._height = size if size is not None else (0, 0)
        self._current: VideoFrame | None = None
        self._released = False
        self._interrupted = threading.Event()

    def isOpened(self) -> bool:
        return not self._released

    def grab(self) -> bool:
        self._current = None
        if self._released:
            return False
        self._current = self._inbox.take(self._interrupted.is_set)
        return self._current is not None

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        frame = self._current
        if frame is None:
            return False, None
        try:
            image = frame.to_ndarray(format="bgr24")
        except (ValueError, TypeError):  # a format swscale cannot convert: the source counts a decode error
            return False, None
        return True, np.ascontiguousarray(image, dtype=np.uint8)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.grab():
            return False, None
        return self.retrieve()

    def get(self, prop_id: int) -> float:
        if prop_id == cv2.CAP_PROP_FRAME_WIDTH:
            return float(self._width)
        if prop_id == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(self._height)
        if prop_id == cv2.CAP_PROP_FPS:
            return self._fps
        return 0.0  # CAP_PROP_FRAME_COUNT and the rest: a peer has none

    def release(self) -> None:
        self._released = True
        self._current = None
        self._interrupted.set()
        self._inbox.wake()

    # ----------------------------------------------------------------- PeerEndedCapture (engine/capture.py)

    @property
    def end_reason(self) -> str | None:
        """Why ``grab`` returned False: the peer side's reason, or the local one."""
        reason = self._inbox.end_reason
        if reason is not None:
            return reason
        if self._inbox.closed:
            return CLOSED_REASON
        if self._interrupted.is_set():
            return INTERRUPTED_REASON
        return None

    def interrupt(self) -> None:
        """Makes a waiting ``grab`` (and every later one) return False at once; called by a terminating source."""
        self._interrupted.set()
        self._inbox.wake()
