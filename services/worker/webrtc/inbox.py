"""The frames received from the peer, waiting for the pipeline's source thread, and how the peer side ended.

Theory of operation
-------------------
The session's event loop puts every decoded frame of the peer's video here (:meth:`FrameInbox.put`: a lock,
an append, a notify; never a wait, so the loop is never blocked). The source thread takes them one at a time
(:meth:`FrameInbox.take`), waiting at most until ``peer_timeout`` seconds after the last frame arrived.

The inbox holds at most ``capacity`` frames; a frame arriving when it is full pushes out the oldest, counted
under the inbox's drop cause (``realtime``: a small inbox so the pipeline always gets the freshest frames;
``backlog``: the bounded memory of a session that otherwise keeps every frame).

Ends: :meth:`end` records why the peer side ended (the first reason stays); the frames already waiting are
still taken, then ``take`` returns None. :meth:`close` (the session closed locally) ends at once. The first
frames' timestamps give the measured frame rate (:meth:`measured_fps`).
"""

import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from av import VideoFrame

FPS_PROBE_FRAMES = 10  # the first frames whose timestamps measure the peer's frame rate


class FrameInbox:
    def __init__(self, capacity: int, drop_cause: str, peer_timeout: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._drop_cause = drop_cause
        self._peer_timeout = peer_timeout
        self._cond = threading.Condition()
        self._frames: deque[VideoFrame] = deque()
        self._dropped: Counter[str] = Counter()
        self._received = 0
        self._last_arrival = time.monotonic()  # the session's start counts as the last sign of the peer
        self._stamps: list[float] = []  # of the first FPS_PROBE_FRAMES frames (seconds)
        self._size: tuple[int, int] | None = None  # width, height of the first frame
        self._end_reason: str | None = None
        self._closed = False

    # ----------------------------------------------------------------- the loop's side

    def put(self, frame: VideoFrame, stamp: float) -> None:
        """Adds a received frame (``stamp``: its presentation time in seconds); never blocks."""
        with self._cond:
            if self._closed:
                return
            self._received += 1
            self._last_arrival = time.monotonic()
            if self._size is None:
                self._size = (frame.width, frame.height)
            if len(self._stamps) < FPS_PROBE_FRAMES:
                self._stamps.append(stamp)
            if len(self._frames) >= self._capacity:
                self._frames.popleft()
                self._dropped[self._drop_cause] += 1
            self._frames.append(frame)
            self._cond.notify_all()

    def end(self, reason: str) -> None:
        """The peer side ended (the first reason is kept); waiting frames may still be taken."""
        with self._cond:
            if self._end_reason is None and not self._closed:
                self._end_reason = reason
            self._cond.notify_all()

    def close(self) -> None:
        """Ends at once (the session closed): waiting frames are discarded."""
        with self._cond:
            self._closed = True
            self._frames.clear()
            self._cond.notify_all()

    # ----------------------------------------------------------------- the source thread's side

    def take(self, cancelled: Callable[[], bool]) -> VideoFrame | None:
        """The next frame; None once ended (or closed, or ``cancelled()``), or after ``peer_timeout`` s without
        a frame, which ends the inbox with that reason."""
        with self._cond:
            while True:
                if self._closed or cancelled():
                    return None
                if self._frames:
                    return self._frames.popleft()
                if self._end_reason is not None:
                    return None
                remaining = self._last_arrival + self._peer_timeout - time.monotonic()
                if remaining <= 0:
                    self._end_reason = f"no video from the peer for {self._peer_timeout:g} s"
                    return None
                self._cond.wait(remaining)

    def wait_for_frames(self, count: int, timeout: float) -> int:
        """Waits until ``count`` frames were received, the inbox ended or ``timeout`` passed; the frames received."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._received < count and self._end_reason is None and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._received

    def wake(self) -> None:
        """Wakes a waiting ``take`` so it looks at its ``cancelled`` again."""
        with self._cond:
            self._cond.notify_all()

    def expire_if_silent(self) -> None:
        """Ends the inbox when no frame came for ``peer_timeout`` s (for an open that waits for the first)."""
        with self._cond:
            if self._end_reason is None and time.monotonic() - self._last_arrival >= self._peer_timeout:
                self._end_reason = f"no video from the peer for {self._peer_timeout:g} s"
                self._cond.notify_all()

    # ----------------------------------------------------------------- reports

    @property
    def end_reason(self) -> str | None:
        with self._cond:
            return self._end_reason

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    @property
    def received(self) -> int:
        with self._cond:
            return self._received

    @property
    def size(self) -> tuple[int, int] | None:
        with self._cond:
            return self._size

    def dropped(self) -> dict[str, int]:
        with self._cond:
            return dict(self._dropped)

    def measured_fps(self) -> float | None:
        """Frames per second over the first frames' timestamps; None before two frames (or no time between)."""
        with self._cond:
            stamps = list(self._stamps)
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return None
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])
