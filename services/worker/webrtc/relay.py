"""Results back to the peer: the pipeline's post thread hands rounds over, the session's loop sends them.

Theory of operation
-------------------
:meth:`WebRTCObserver.observe` runs on the pipeline's post thread and only keeps references: the newest
round's input image and prediction in a one-slot mailbox (a round not yet sent when a newer one arrives
is counted ``superseded``), and every round's prediction in a short queue for the data channel (one message
per processed frame; a full queue drops its oldest, ``data_backlog``). The first hand-off since the loop
last looked schedules :meth:`OutputRelay.wake` with ``call_soon_threadsafe``; nothing else crosses threads.

On the loop, ``wake`` sends the data messages (only while the client's data channel is open, ``data_output``
is set, and the channel's send buffer is below ``DATA_BUFFER_LIMIT``, else ``data_backlog``) and passes the
newest round to :class:`OutgoingVideoTrack`. aiortc's sender awaits the track's ``recv``: it waits for a
round (so the first frame goes out after the first result), picks the image in the loop's executor (the
``stream_output`` image, or the input frame; a JPEG is decoded only when the pixels did not travel with it)
and returns an ``av`` bgr24 frame stamped on a 90 kHz clock from the monotonic wall time.

``stream_output`` / ``data_output`` belong to the loop: the client switches them with a data channel
message (``outputs.parse_switch``); a refused name is answered with ``{"error": ...}`` on the channel.
"""

import asyncio
import contextlib
import fractions
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from aiortc import RTCDataChannel
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame as AVVideoFrame

from services.worker.engine.frames import VideoFrame
from services.worker.engine.results import RoundResult
from services.worker.webrtc.options import WebRTCOptions
from services.worker.webrtc.outputs import data_message, image_of, parse_switch

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
DATA_QUEUE = 64  # rounds waiting for the data channel at most
DATA_BUFFER_LIMIT = 4 * 1024 * 1024  # bytes queued in the channel (a slow peer) above which messages are dropped
DROP_SUPERSEDED = "superseded"
DROP_DATA_BACKLOG = "data_backlog"


class OutgoingVideoTrack(MediaStreamTrack):
    """The video track sent to the peer: each ``recv`` returns the newest round's image (module docstring)."""

    kind = "video"

    def __init__(self, relay: "OutputRelay") -> None:
        super().__init__()
        self._relay = relay
        self._ready = asyncio.Event()
        self._round: tuple[np.ndarray, Mapping[str, Any]] | None = None
        self._start: float | None = None
        self._last_pts = -1

    def offer(self, image: np.ndarray, prediction: Mapping[str, Any]) -> None:
        """The newest round (loop thread); replaces one not yet taken."""
        if self._round is not None:
            self._relay.count_drop(DROP_SUPERSEDED)
        self._round = (image, prediction)
        self._ready.set()

    async def recv(self) -> AVVideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._round is not None:
                break
            self._ready.clear()
            await self._ready.wait()
        image, prediction = self._round
        self._round = None
        stream_output = self._relay.stream_output
        loop = asyncio.get_running_loop()
        frame = await loop.run_in_executor(None, _video_frame, image, prediction, stream_output)
        now = time.monotonic()
        if self._start is None:
            self._start = now
        pts = max(int((now - self._start) * VIDEO_CLOCK), self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = TIME_BASE
        self._relay.frames_sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._ready.set()  # a waiting recv sees the track ended


def _video_frame(image: np.ndarray, prediction: Mapping[str, Any], stream_output: str | None) -> AVVideoFrame:
    """The frame to send (runs in the loop's executor): the chosen output's image, else the input image."""
    try:
        chosen = image_of(prediction, stream_output)
    except Exception:  # a malformed output must not stop the video: the input frame goes instead
        log.exception("webrtc: cannot read the image of output %r; sending the input frame", stream_output)
        chosen = None
    return AVVideoFrame.from_ndarray(np.ascontiguousarray(chosen if chosen is not None else image),
                                     format="bgr24")


class OutputRelay:
    """The loop's side of the results (module docstring); created on any thread, used on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, options: WebRTCOptions) -> None:
        self._loop = loop
        self._known = options.output_names
        self.stream_output = options.stream_output
        self.data_output = options.data_output
        self.track = OutgoingVideoTrack(self)
        self.channel: RTCDataChannel | None = None
        self.frames_sent = 0
        self.data_messages_sent = 0
        self._dropped: Counter[str] = Counter()
        self._lock = threading.Lock()  # guards the hand-off below and the drop counter
        self._latest: tuple[np.ndarray, Mapping[str, Any]] | None = None
        self._data: deque[Mapping[str, Any]] = deque()
        self._wake_scheduled = False
        self._closed = False
        self._seen_names: frozenset[str] | None = None  # the last round's output names (no output_names given)

    # ----------------------------------------------------------------- the post thread's side

    def submit(self, image: np.ndarray, prediction: Mapping[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            if self._latest is not None:
                self._dropped[DROP_SUPERSEDED] += 1
            self._latest = (image, prediction)
            if len(self._data) >= DATA_QUEUE:
                self._data.popleft()
                self._dropped[DROP_DATA_BACKLOG] += 1
            self._data.append(prediction)
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop already closed: the session is gone
            self._loop.call_soon_threadsafe(self.wake)

    def count_drop(self, cause: str) -> None:
        with self._lock:
            self._dropped[cause] += 1

    def dropped(self) -> dict[str, int]:
        with self._lock:
            return dict(self._dropped)

    # ----------------------------------------------------------------- the loop's side

    def wake(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
            rounds = list(self._data)
            self._data.clear()
            self._wake_scheduled = False
        for prediction in rounds:
            if self._known is None:
                self._seen_names = frozenset(prediction)
            self._send_data(prediction)
        if latest is not None and self.track.readyState == "live":
            self.track.offer(*latest)

    def _send_data(self, prediction: Mapping[str, Any]) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open" or not self.data_output:
            return
        try:
            message = data_message(prediction, self.data_output)
        except (TypeError, ValueError) as exc:
            log.warning("webrtc: output %r cannot be sent as JSON: %s", self.data_output, exc)
            return
        if message is None:
            return
        if channel.bufferedAmount > DATA_BUFFER_LIMIT:
            self.count_drop(DROP_DATA_BACKLOG)
            return
        channel.send(message)
        self.data_messages_sent += 1

    def attach(self, channel: RTCDataChannel) -> None:
        """Keeps the client's data channel (any label) and listens for output switches on it."""
        self.channel = channel
        channel.on("message", self._on_message)

    def _on_message(self, message: str | bytes) -> None:
        known = self._known if self._known is not None else self._seen_names
        switch = parse_switch(message, known)
        if switch is None:
            log.info("webrtc: ignored a data channel message that is not an output switch (%d characters)",
                     len(message))
            return
        for key, value in switch.changes.items():
            setattr(self, key, value)
            log.info("webrtc: the client switched %s to %r", key, value)
        if switch.errors:
            self._reply({"error": "; ".join(switch.errors)})

    def _reply(self, payload: dict[str, Any]) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(json.dumps(payload))

    def close(self) -> None:
        """Stops the track (a waiting ``recv`` ends) and refuses further rounds (loop thread)."""
        with self._lock:
            self._closed = True
            self._latest = None
            self._data.clear()
        self.track.stop()


class WebRTCObserver:
    """The pipeline's :class:`~services.worker.engine.pipeline.RoundObserver` of a WebRTC session."""

    def __init__(self, relay: OutputRelay) -> None:
        self._relay = relay

    def observe(self, frames: Sequence[VideoFrame], result: RoundResult) -> None:
        for slot in result.present():
            frame = next((f for f in frames if f.source_id == slot.source_id), None)
            if frame is not None:
                self._relay.submit(frame.image, slot.prediction)
                return

    def close(self) -> None:
        """The pipeline's sinks closed; the session (closed by its owner) holds the rest."""
