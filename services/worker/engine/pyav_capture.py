"""Decoding only the frames ``max_fps`` will use: a PyAV reader for live streams with ``max_fps``.

OpenCV's ``grab()`` decodes (it only skips the conversion to BGR), so a 30 fps camera at ``max_fps``
1 still costs 30 decodes a second. This reader demuxes every packet (frame ids, drop counters and
the connection stay exactly as with OpenCV) but decodes only what the frames it hands out need. It
implements OpenCV's :class:`~services.worker.engine.capture.Capture` calls plus those of
:class:`~services.worker.engine.capture.SelectiveCapture`, so the source keeps its pull loop
``grab`` -> decide -> ``retrieve``; :func:`services.worker.engine.capture.open_capture` chooses it.

Which frames are decoded (the rule)
-----------------------------------
A grabbed frame is a demuxed packet (in ``pyav-all`` a frame out of the decoder, as OpenCV's
grab); what it costs depends on the decode path:

- ``pyav-intra``: the codec is intra-only (MJPEG, JPEG 2000, ProRes, ...: FFmpeg's
  ``AV_CODEC_PROP_INTRA_ONLY``), so every packet decodes alone. A packet is decoded in
  ``retrieve()``, that is only when the source's pacing takes its frame: exactly the frames the
  OpenCV path would deliver, one decode each.
- ``pyav-all``: every packet is decoded in ``grab()`` (the decoder needs the references); only the
  frames taken are converted to BGR. This is OpenCV's cost, and where every inter-coded stream
  (H.264, H.265, MPEG-4, ...) starts.
- ``pyav-keyframes``: only keyframes are taken, each decoded alone (through a flushed decoder, so
  its picture is what a decoder joining the stream at that keyframe produces). Non-keyframes are
  demuxed and kept, never decoded. A stream moves from ``pyav-all`` to here only when all of:

  * the max_fps interval ``I`` is at least the keyframe interval: the last three intervals between
    keyframes, in stream time (pts), are each <= ``I`` (+1 ms of timestamp rounding);
  * a keyframe is a packet the container flags key whose own frame (matched by pts) came out of the
    decoder marked key and intra-coded: the flag alone is not trusted (MPEG-TS also flags the
    recovery points of intra refresh, which are P-frames);
  * timestamps rise strictly, packet after packet, over that window (no B-frame reordering, no
    discontinuity).

  At the switch the decoder is drained, so every packet read so far comes out decoded. Here the
  source takes a keyframe up to half a keyframe interval before its due time
  (:meth:`PyAVCapture.slack`): keyframes arriving once per ``I`` with a millisecond of network
  jitter would otherwise miss every other due time and halve the rate. The pacing stays drift-free
  (the next due time still advances by ``I``), so the long-run rate never exceeds ``max_fps``.
  Frames are taken when keyframes come: each comes up to a keyframe interval after the time the
  OpenCV path would have taken one, at the same rate.

  It goes back to ``pyav-all`` as soon as a non-keyframe comes ``I`` or more after the last
  keyframe, or a keyframe more than ``I`` after it (stream time: a longer GOP, a lost keyframe),
  when timestamps stop rising, or when the kept packets pass a bound. The decoder is flushed and
  replays the kept packets from the last keyframe, so the frame at hand is decoded with all its
  references and can be taken at once (a decoder with frame threads hands it out a few packets
  later): no due time goes by without a frame the stream had, and no frame is ever decoded without
  its references. A keyframe that, decoded alone, does not give one intra picture marked key is not
  delivered (a safety net: the observation above already checks this), and the connection stays on
  ``pyav-all`` for good.

In every path a frame FFmpeg flags corrupt is not delivered (``retrieve`` fails: the source counts
``decode_error``). The decoder has ``WORKER_DECODE_THREADS`` threads (default 0: FFmpeg's automatic
frame and slice threads, as OpenCV's): a packet decoded alone is drained out of it and the decoder
flushed, so no frame is held back by frame threads.

What stays with OpenCV
----------------------
Everything but live network streams with ``max_fps``: files (paced, every frame delivered), local
cameras, sources without ``max_fps``, sources with ``video_source_properties`` (OpenCV applies
them), every source when ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` is set (OpenCV's own options), MP4/MOV
served over HTTP (files whose display matrix OpenCV applies), and streams PyAV cannot open or
decode. Opening mirrors OpenCV: the first video stream, the same open/read timeouts, RTSP
``prefer_tcp``, ``fps`` from FFmpeg's guessed frame rate, BGR through swscale's bicubic.

Credentials: PyAV's exceptions carry the URL, so none is ever passed on; errors are rebuilt from
the redacted reference. PyAV leaves FFmpeg's log off unless ``av.logging`` is configured.
"""

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

import av
import av.error
import cv2
import numpy as np
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from services.core.redaction import redact_reference
from services.worker.engine.capture import CaptureOptions, DecodePath, SourceConnectionError

if TYPE_CHECKING:
    VideoPacket = Packet[VideoStream]  # generic in PyAV's stubs only
else:
    VideoPacket = Packet

TIMESTAMP_ROUNDING = 0.001  # seconds: millisecond time bases round 1/30 s to 33 or 34 ms
OBSERVED_INTERVALS = 3  # keyframe intervals that must fit max_fps before decoding keyframes only
MAX_DECODE_FAILURES = 64  # packets in a row that decode to nothing before grab() fails (OpenCV's limit)
MAX_KEPT = 2000  # a GOP kept for a replay never grows past this, whatever the timestamps say
FILE_FORMATS = frozenset({"mov", "mp4"})  # demuxer names of files served over HTTP: left to OpenCV
# Errors that mean the camera is unreachable (OpenCV would fail as well): reported, not retried
# through OpenCV, so a dead camera fails within one open timeout as before.
UNREACHABLE = (OSError, EOFError, av.error.ExitError, av.error.HTTPError, av.error.HTTPClientError)


def open_pyav(reference: str, options: CaptureOptions, interval: float) -> "PyAVCapture | None":
    """A reader of the live stream ``reference`` for a pacing interval (seconds), or None where
    PyAV cannot serve it as OpenCV would (the caller opens it with OpenCV). An unreachable stream
    raises :class:`SourceConnectionError` with the redacted reference only."""
    try:
        container = av.open(
            reference, "r", container_options={"rtsp_flags": "prefer_tcp"},
            timeout=(options.open_timeout, options.read_timeout),
        )  # fmt: skip
    except UNREACHABLE:
        raise SourceConnectionError(f"cannot open video source {redact_reference(reference)}") from None
    except av.error.FFmpegError:
        return None
    try:
        if FILE_FORMATS & set(container.format.name.split(",")) or not container.streams.video:
            raise LookupError("not a live video stream")
        stream = container.streams.video[0]
        if stream.codec_context.codec is None or not stream.codec_context.width:
            raise LookupError("no decoder")
        return PyAVCapture(container, stream, interval, options.decode_threads)
    except (LookupError, av.error.FFmpegError):
        container.close()
        return None


class PyAVCapture:
    """One opened stream read packet by packet; see the module docstring for what is decoded."""

    def __init__(self, container: InputContainer, stream: VideoStream, interval: float, threads: int = 0) -> None:
        self._container = container
        self._stream = stream
        self._context = stream.codec_context
        self._context.thread_type = "AUTO"  # frame and slice threads, as OpenCV's ...
        if threads > 0:
            self._context.thread_count = threads  # ... as many as WORKER_DECODE_THREADS (0: FFmpeg's count)
        self._time_base = float(stream.time_base) if stream.time_base else 0.0
        self._interval = interval
        self._intra = bool(self._context.codec.intra_only)
        self._path = DecodePath.PYAV_INTRA if self._intra else DecodePath.PYAV_ALL
        self._packets: Iterator[VideoPacket] = container.demux(stream)
        self._opened = True
        self.frames_decoded = 0  # frames that came out of the decoder
        self._grabbed = 0
        # The grabbed frame: a packet not decoded yet (intra, keyframes) or a decoded frame (all).
        self._current: VideoPacket | VideoFrame | None = None
        self._ready: deque[VideoFrame] = deque()  # decoded, not handed out by grab() yet
        self._owed = 0  # decoder outputs to discard after a replay: their frames were grabbed already
        self._failures = 0
        self._drained = False
        self._last_time: float | None = None
        # The packets from the last keyframe packet on (it first): what a replay decodes.
        self._since_key: list[VideoPacket] = []
        # pyav-all: keyframe packets whose frame has not come out yet (pts -> time), checked keyframe times.
        self._key_times: dict[int, float] = {}
        self._keys: deque[float] = deque(maxlen=OBSERVED_INTERVALS + 1)
        self._keyframes_usable = True
        # pyav-keyframes: the last keyframe's time, the last keyframe interval, a replay to do.
        self._anchor_time = 0.0
        self._key_interval = 0.0
        self._replay_pending = False

    # ----------------------------------------------------------------- the Capture calls

    def isOpened(self) -> bool:
        return self._opened

    def grab(self) -> bool:
        self._current = None
        if not self._opened:
            return False
        try:
            if self._replay_pending:
                self._replay(owed=len(self._since_key))
            if self._ready or self._path is DecodePath.PYAV_ALL:
                self._current = self._next_decoded()
            else:
                packet = self._next_packet()
                self._current = None if packet is None else self._take_packet(packet)
        except (av.error.FFmpegError, OSError, EOFError):  # read errors and timeouts: the stream is lost
            return False
        if self._current is None:
            return False
        self._grabbed += 1
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        current, self._current = self._current, None
        try:
            if isinstance(current, Packet):
                current = self._decode_alone(current)
            if current is None or current.is_corrupt:
                return False, None
            return True, current.to_ndarray(format="bgr24", interpolation="BICUBIC")
        except (av.error.FFmpegError, ValueError):  # a frame swscale cannot convert: OpenCV fails it too
            return False, None

    def read(self) -> tuple[bool, np.ndarray | None]:
        return self.retrieve() if self.grab() else (False, None)

    def get(self, prop_id: int) -> float:
        if prop_id == cv2.CAP_PROP_FRAME_WIDTH:
            return float(self._context.width)
        if prop_id == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(self._context.height)
        if prop_id == cv2.CAP_PROP_FPS:  # OpenCV's get_fps(): av_guess_frame_rate
            return float(self._stream.guessed_rate or 0)
        if prop_id == cv2.CAP_PROP_FRAME_COUNT:
            return float(self._stream.frames)
        if prop_id == cv2.CAP_PROP_POS_FRAMES:
            return float(self._grabbed)
        return 0.0

    def release(self) -> None:
        if self._opened:
            self._opened = False
            self._since_key.clear()
            self._ready.clear()
            self._container.close()

    # ----------------------------------------------------------------- the SelectiveCapture calls

    def retrievable(self) -> bool:
        """Whether the grabbed frame can be retrieved without decoding anything but itself."""
        current = self._current
        return current is not None and (not isinstance(current, Packet) or self._intra or current.is_keyframe)

    def slack(self) -> float:
        """How long before its due time a retrievable frame may be taken (keyframes only)."""
        return self._key_interval / 2 if self._path is DecodePath.PYAV_KEYFRAMES else 0.0

    def decode_path(self) -> DecodePath:
        return self._path

    # ----------------------------------------------------------------- packets

    def _next_packet(self) -> VideoPacket | None:
        for packet in self._packets:
            if packet.size:  # the empty packets at the end only flush a decoder
                return packet
        return None

    def _time_of(self, packet: VideoPacket) -> float | None:
        stamp = packet.pts if packet.pts is not None else packet.dts
        return stamp * self._time_base if stamp is not None and self._time_base else None

    def _rising(self, packet: VideoPacket) -> tuple[bool, float | None]:
        """Whether the packet's time comes after the previous packet's; its time."""
        time = self._time_of(packet)
        rising = time is not None and self._last_time is not None and time > self._last_time
        self._last_time = time
        return rising, time

    def _take_packet(self, packet: VideoPacket) -> VideoPacket | VideoFrame | None:
        """The grabbed frame of ``packet`` (None: the stream ended). Keyframes only: keeps the packet
        for a replay, or goes back to decoding everything once keyframes stop satisfying max_fps."""
        if self._path is DecodePath.PYAV_INTRA:
            return packet
        rising, time = self._rising(packet)
        if rising and time is not None and packet.is_keyframe:
            since, self._since_key, self._anchor_time = time - self._anchor_time, [packet], time
            if since <= self._interval + TIMESTAMP_ROUNDING:
                self._key_interval = since
                return packet
        else:
            # A frame a whole interval after the last keyframe: the next keyframe is not there in time.
            self._since_key.append(packet)
            in_time = time is not None and time - self._anchor_time < self._interval - TIMESTAMP_ROUNDING
            if rising and in_time and len(self._since_key) <= MAX_KEPT:
                return packet
        self._replay(owed=len(self._since_key) - 1)
        return self._next_decoded()

    def _note(self, packet: VideoPacket) -> None:
        """pyav-all: keeps the packets since the last keyframe and notes the keyframes to check."""
        rising, time = self._rising(packet)
        if not rising:  # reordering (B-frames) or a discontinuity: start the observation over
            self._keys.clear()
            self._key_times.clear()
        if packet.is_keyframe:
            self._since_key = [packet]
            if rising and time is not None and packet.pts is not None:
                self._key_times[packet.pts] = time
        elif self._since_key:
            self._since_key.append(packet)
            if len(self._since_key) > MAX_KEPT:
                self._since_key = []  # no replay from there: no keyframes only until the next keyframe
        if len(self._key_times) > OBSERVED_INTERVALS + 1:  # frames that never came out
            self._key_times.clear()

    # ----------------------------------------------------------------- decoding

    def _decode(self, packet: VideoPacket | None) -> list[VideoFrame]:
        try:
            frames = self._context.decode(packet)
        except av.error.FFmpegError:  # a damaged packet: no frame, as OpenCV's grab skips it
            frames = []
        self.frames_decoded += len(frames)
        return frames

    def _decode_alone(self, packet: VideoPacket) -> VideoFrame | None:
        """One packet through a flushed decoder, drained: an intra-only packet, or a keyframe (checked)."""
        if not self._intra:
            self._context.flush_buffers()
        frames = self._decode(packet)
        if not frames:  # a decoder with frame threads holds it back: drain, then accept packets again
            frames = self._decode(None)
            self._context.flush_buffers()
        if self._intra:
            return frames[0] if len(frames) == 1 else None
        if len(frames) == 1 and _stands_alone(frames[0]):
            return frames[0]
        # Not a picture that stands alone: never again keyframes only on this connection.
        self._keyframes_usable = False
        self._replay_pending = True
        return None

    def _replay(self, owed: int) -> None:
        """Back to decoding everything: a flushed decoder replays the packets since the last keyframe;
        the first ``owed`` frames it gives were grabbed already (as packets left undecoded)."""
        self._replay_pending = False
        self._context.flush_buffers()
        self._path, self._owed = DecodePath.PYAV_ALL, owed
        self._keys.clear()
        self._key_times.clear()
        self._ready.clear()
        for packet in self._since_key:
            self._ready.extend(self._decode(packet))

    def _next_decoded(self) -> VideoFrame | None:
        """The next frame out of the decoder (pyav-all), reading and decoding packets as needed: OpenCV's
        grab. Also hands out the frames decoded before a switch to keyframes only."""
        while True:
            while self._ready:
                frame = self._ready.popleft()
                if self._owed:
                    self._owed -= 1
                    continue
                return frame
            if self._path is not DecodePath.PYAV_ALL:
                return None  # not reached: grab() reads the other paths' packets itself
            packet = self._next_packet()
            if packet is None:
                if self._drained:
                    return None
                self._drained = True  # the frames a decoder with delay still holds, as OpenCV drains
                self._ready.extend(self._decode(None))
                continue
            self._note(packet)
            frames = self._decode(packet)
            self._failures = 0 if frames else self._failures + 1
            if self._failures > MAX_DECODE_FAILURES:
                return None
            self._ready.extend(frames)
            for frame in frames:
                self._check(frame)

    def _check(self, frame: VideoFrame) -> None:
        """pyav-all: records a keyframe's time once its frame proved to stand alone, and moves to
        keyframes only when the rule of the module docstring holds."""
        time = self._key_times.pop(frame.pts, None) if frame.pts is not None else None
        if time is None or self._path is not DecodePath.PYAV_ALL:
            return
        if not (_stands_alone(frame) and self._keyframes_usable):
            self._keys.clear()
            return
        self._keys.append(time)
        if len(self._keys) <= OBSERVED_INTERVALS or not self._since_key or self._since_key[0].pts != frame.pts:
            return
        intervals = [later - earlier for earlier, later in zip(self._keys, list(self._keys)[1:], strict=False)]
        if max(intervals) > self._interval + TIMESTAMP_ROUNDING:
            return
        # Every packet read so far is decoded (drained into ready); from here on only keyframes are.
        self._ready.extend(self._decode(None))
        self._context.flush_buffers()
        self._path, self._key_interval, self._anchor_time = DecodePath.PYAV_KEYFRAMES, max(intervals), time


def _stands_alone(frame: VideoFrame) -> bool:
    """A frame the decoder marks key and intra-coded (a recovery point of intra refresh is neither)."""
    return bool(frame.key_frame) and frame.pict_type == PictureType.I
