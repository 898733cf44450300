"""A video source: one decode thread per reference feeding a bounded frame buffer.

Theory of operation
-------------------
``start()`` moves the source to INITIALISING and spawns a daemon thread ``source-<id>``; it never
touches the network itself. The thread opens the capture (with OpenCV open/read timeouts), goes
RUNNING (or MUTED), then loops ``grab`` -> decide -> ``retrieve`` -> ``FrameBuffer.put``. Frames
skipped for ``max_fps`` (live sources) or while muted are grabbed but never retrieved, which keeps
a live connection current at little cost; files are paced instead, so no frame is lost.

A live stream with ``max_fps`` may be read by PyAV instead (``capture.open_capture`` decides, see
``pyav_capture``): its ``grab`` only demuxes where the stream allows, so frames skipped for
``max_fps`` are never decoded. Such a :class:`~services.worker.engine.capture.SelectiveCapture`
also says which grabbed frames can be retrieved alone (in keyframes-only decoding, the keyframes):
the pacing takes the first of those due, up to its ``slack`` early. Frame ids, drop reasons and
states are the same on both paths; ``stats()`` tells the decode path and how many frames the
decoder produced (``decoder_frames``; OpenCV's grab decodes every frame).

The consumer calls ``read(timeout)``; the buffer applies the filling strategy on the producer
side and the consumption strategy on the consumer side, and counts every dropped frame (the
consumer adds its own drops with ``count_drop``). A processing mode names a pair of strategies:
``every_frame`` is WAIT/LAZY, ``freshest`` DROP_OLDEST/EAGER (its ``max_staleness`` is the
pipeline's rule).

States (the reference's): NOT_STARTED -> INITIALISING -> RUNNING <-> MUTED. A live source whose
open or read fails goes RESTARTING and retries forever with jittered exponential backoff, until
terminated. A file that ends goes ENDED; a file that cannot be opened or decodes no frame goes
ERROR. A WebRTC peer's video (``webrtc:`` references, opened by the session's opener) is live but not
reconnectable: when the peer is gone (``grab`` False) the source goes ENDED with the capture's
``end_reason`` in its log line and VIDEO_CONSUMPTION_FINISHED event; when it cannot be opened, ERROR.
``terminate()`` works from every state: it sets the stop event (every sleep is an
``Event.wait``), closes the buffer (unblocking a producer waiting for room) and joins the thread
for at most ``timeout``; TERMINATING -> ENDED. A thread still inside a blocking OpenCV call
releases its capture when that call returns (bounded by the open/read timeout) and reports nothing
more: no error, no offline time, no reconnect attempt for a source that was terminated. A peer's
capture waiting in ``grab`` (WebRTC) is interrupted instead, so it returns at once.

Only the redacted reference ever reaches an event, a log line or the metadata.
"""

import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from services.core.redaction import redact_reference, redact_text
from services.core.states import BufferConsumptionStrategy, BufferFillingStrategy, ProcessingMode, StreamState
from services.infra.os_threads import name_os_thread
from services.worker.engine.capture import (
    Capture,
    CaptureOptions,
    DecodePath,
    Opener,
    PeerEndedCapture,
    SelectiveCapture,
    SourceConnectionError,
    SourceKind,
    SourceProperties,
    SourceReadError,
    classify,
    open_capture,
    property_ids,
    read_properties,
)
from services.worker.engine.events import (
    CONTEXT_CONSUMER,
    CONTEXT_SOURCE,
    SOURCE_ERROR,
    SOURCE_RECONNECT_SCHEDULED,
    SOURCE_STATE_UPDATE,
    VIDEO_CONSUMPTION_FINISHED,
    VIDEO_CONSUMPTION_STARTED,
    StatusHandler,
    StatusUpdate,
)
from services.worker.engine.frame_buffer import FrameBuffer
from services.worker.engine.frames import VideoFrame
from services.worker.engine.reconnect import Backoff, BackoffPolicy

logger = logging.getLogger(__name__)

DROP_MAX_FPS = "max_fps"
DROP_MUTED = "muted"
DROP_DECODE_ERROR = "decode_error"
DROP_TERMINATED = "terminated"
ERROR_CONTEXT = "stream_consumer_thread"
# A file that WAITs never drops a frame: its buffer only sets how far decoding runs ahead of
# inference, so a larger ``buffer_size`` would only hold memory (64 decoded 768x576 frames: 81 MiB
# per pipeline). Decoding is far faster than inference, so a few frames ahead keep it fed.
FILE_READ_AHEAD = 4


@dataclass(frozen=True, slots=True)
class SourceConfig:
    buffer_size: int = 64  # the reference's decoding_buffer_size
    # Unset strategies come from the processing mode, else: WAIT/LAZY for files, DROP_OLDEST/EAGER for live.
    filling: BufferFillingStrategy | None = None
    consumption: BufferConsumptionStrategy | None = None
    processing_mode: ProcessingMode | None = None
    # Freshest mode only: the pipeline never processes a frame older than this (seconds since decoding).
    max_staleness: float | None = None
    max_fps: float | None = None
    properties: Mapping[str, float] = field(default_factory=dict)  # video_source_properties
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    decode_threads: int = 0  # FFmpeg's decoding threads (0: its automatic count)

    def __post_init__(self) -> None:
        if self.buffer_size < 1:
            raise ValueError("buffer_size must be >= 1")
        if self.decode_threads < 0:
            raise ValueError("decode_threads must be >= 0")
        if self.max_fps is not None and self.max_fps <= 0:
            raise ValueError("max_fps must be > 0")
        self._check_mode()
        if self.open_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("open and read timeouts must be > 0")
        property_ids(self.properties)  # unknown names fail here, not in the thread

    def _check_mode(self) -> None:
        mode = self.processing_mode
        if self.max_staleness is not None and (mode is not ProcessingMode.FRESHEST or self.max_staleness <= 0):
            raise ValueError("max_staleness must be > 0 and needs processing_mode freshest")
        if mode is not None and (self.filling not in (None, mode.filling)
                                 or self.consumption not in (None, mode.consumption)):
            raise ValueError(f"processing_mode {mode.value} contradicts the buffer strategies given")

    def strategies(self, live: bool) -> tuple[BufferFillingStrategy, BufferConsumptionStrategy]:
        """The strategies a source uses: given ones, else its mode's, else its kind's default."""
        default = self.processing_mode or (ProcessingMode.FRESHEST if live else ProcessingMode.EVERY_FRAME)
        return self.filling or default.filling, self.consumption or default.consumption


@dataclass(frozen=True, slots=True)
class SourceStats:
    frames_decoded: int  # frames grabbed (the reference's name): the last frame id
    frames_dropped: Mapping[str, int]
    reconnects: int
    decoder_frames: int = 0  # frames the video decoder produced, all connections together
    decode_path: DecodePath = DecodePath.OPENCV  # of the current (or last) connection


class _Outcome(Enum):
    STOPPED = "stopped"
    ENDED = "ended"
    LOST = "lost"
    FAILED = "failed"


class VideoSource:
    """One video reference decoded on its own thread; see the module docstring."""

    def __init__(
        self,
        reference: str | int,
        source_id: int,
        config: SourceConfig,
        on_update: StatusHandler,
        opener: Opener = open_capture,
        rng: random.Random | None = None,
        skip_frames: int = 0,
    ) -> None:
        self.source_id = source_id
        # A file resumed after its pipeline was restarted: the first ``skip_frames`` frames were
        # processed (and their results written) by the previous task, so they are only grabbed
        # (no retrieve, no inference) and frame ids continue where that task stopped.
        self._skip_frames = skip_frames if classify(reference) is SourceKind.FILE else 0
        self._reference = reference
        self._redacted = redact_reference(reference)
        self._secrets = _secrets_of(reference)
        self._kind = classify(reference)
        self._config = config
        # Only live streams may decode fewer frames for max_fps: files deliver every frame (paced).
        paced = config.max_fps if self._kind is SourceKind.STREAM else None
        self._options = CaptureOptions(config.open_timeout, config.read_timeout, dict(config.properties), paced,
                                       config.decode_threads)
        self._filling, self._consumption = config.strategies(self._kind.is_live)
        self._buffer: FrameBuffer[VideoFrame] = FrameBuffer(
            self._capacity(config), self._filling, self._consumption
        )
        self._backoff = Backoff(config.backoff, rng)
        self._opener = opener
        self._on_update = on_update
        self._lock = threading.Lock()  # guards the fields below
        self._transitions = threading.RLock()  # keeps state changes and their events in order
        self._state = StreamState.NOT_STARTED
        self._muted = False
        self._properties: SourceProperties | None = None
        self._frames_decoded = 0
        self._decoder_frames = 0
        self._decoder_seen = 0  # the current capture's frames_decoded already added to the above
        self._decode_path = DecodePath.OPENCV
        self._reconnects = 0
        self._offline_since: datetime | None = None
        self._consumption_started = False
        self._capture: Capture | None = None  # the open capture, for terminate to interrupt a peer's wait
        self._end_reason: str | None = None  # why a peer ended (non-reconnectable sources)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- public API

    @property
    def state(self) -> StreamState:
        with self._lock:
            return self._state

    @property
    def finished(self) -> bool:
        return self.state.is_final and len(self._buffer) == 0

    @property
    def is_file(self) -> bool:
        return self._kind is SourceKind.FILE

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._state is not StreamState.NOT_STARTED:
                raise RuntimeError(f"source {self.source_id} was already started")
            self._thread = threading.Thread(target=self._run, name=f"source-{self.source_id}", daemon=True)
        self._transition(StreamState.INITIALISING)
        self._thread.start()

    def read(self, timeout: float) -> VideoFrame | None:
        """The next frame by the consumption strategy; None on timeout or once finished and drained."""
        return self._buffer.get(timeout)

    def wake_on_change(self, event: threading.Event) -> None:
        """Sets ``event`` whenever a frame arrives or the source finishes (its buffer closes)."""
        self._buffer.wake_on_change(event)

    def mute(self) -> None:
        """Keeps decoding (the connection stays up, files progress) but discards every frame."""
        with self._lock:
            self._muted = True
        self._transition(StreamState.MUTED, only_from=StreamState.RUNNING)

    def resume(self) -> None:
        with self._lock:
            self._muted = False
        self._transition(StreamState.RUNNING, only_from=StreamState.MUTED)

    def terminate(self, timeout: float = 2.0) -> None:
        """Stops from any state within ``timeout``; buffered frames are dropped ('terminated'). Idempotent."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        with self._lock:
            capture = self._capture
        if isinstance(capture, PeerEndedCapture):  # its grab may wait for the peer: wake it
            capture.interrupt()
        self._transition(StreamState.TERMINATING)
        self._buffer.close()
        self._buffer.clear(DROP_TERMINATED)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning(
                    "source %s: decode thread still inside OpenCV; it releases the capture on return",
                    self.source_id,
                )
        self._transition(StreamState.ENDED)

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            properties = self._properties
            offline_since = self._offline_since
            state, decoded, reconnects = self._state, self._frames_decoded, self._reconnects
        mode = ProcessingMode.of(self._filling, self._consumption)
        return {
            "source_properties": properties.to_dict() if properties else None,
            "source_reference": self._redacted,
            "buffer_size": self._config.buffer_size,
            "state": state.value,
            "buffer_filling_strategy": self._filling.value,
            "buffer_consumption_strategy": self._consumption.value,
            # Ours: the mode the strategies amount to (None for another pair), and its staleness limit.
            "processing_mode": mode.value if mode is not None else None,
            "max_staleness": self._config.max_staleness,
            "source_id": self.source_id,
            "reconnect_attempts": reconnects,
            "offline_since": offline_since.isoformat() if offline_since else None,
            "frames_decoded": decoded,
            "frames_dropped": self._buffer.dropped(),
        }

    def count_drop(self, reason: str, count: int = 1) -> None:
        """Counts frames the consumer dropped after reading them (e.g. the pipeline's ``stale``)."""
        self._buffer.count_drop(reason, count)

    def _capacity(self, config: SourceConfig) -> int:
        """The buffer's size: ``buffer_size``, but at most FILE_READ_AHEAD for a file that WAITs."""
        if not self._kind.is_live and self._filling is BufferFillingStrategy.WAIT:
            return min(config.buffer_size, FILE_READ_AHEAD)
        return config.buffer_size

    def stats(self) -> SourceStats:
        with self._lock:
            decoded, reconnects = self._frames_decoded, self._reconnects
            decoder, path = self._decoder_frames, self._decode_path
        return SourceStats(decoded, self._buffer.dropped(), reconnects, decoder, path)

    # ----------------------------------------------------------------- decode thread

    def _run(self) -> None:
        name_os_thread()
        try:
            self._decode_loop()
        except Exception as exc:  # a bug or an unexpected OpenCV error must still end visibly
            self._report_error(exc, logging.ERROR)
            self._transition(StreamState.ERROR)
        finally:
            self._buffer.close()

    def _decode_loop(self) -> None:
        while not self._stop.is_set():
            capture = self._open()
            if capture is None:
                if not self._kind.is_reconnectable or self._stop.is_set():
                    return
                self._wait_before_reconnect()
                continue
            try:
                outcome = self._skip(capture) if self._skip_frames else None
                outcome = outcome or self._pump(capture)
            finally:
                with self._lock:
                    self._capture = None
                capture.release()
            if outcome is _Outcome.ENDED:
                payload: dict[str, Any] = {"source_id": self.source_id}
                if self._end_reason is not None:
                    payload["reason"] = self._end_reason
                self._emit(VIDEO_CONSUMPTION_FINISHED, payload, context=CONTEXT_CONSUMER)
                self._transition(StreamState.ENDED)
            if outcome is not _Outcome.LOST or self._stop.is_set():
                return
            self._go_offline(SourceReadError(f"video source {self._redacted} stopped delivering frames"))
            self._wait_before_reconnect()

    def _open(self) -> Capture | None:
        try:
            capture = self._opener(self._reference, self._options)
        except SourceConnectionError as exc:
            if self._stop.is_set():  # terminated while OpenCV was opening: nothing to report any more
                return None
            if self._kind.is_reconnectable:
                self._go_offline(exc)
            else:
                self._report_error(exc, logging.ERROR)
                self._transition(StreamState.ERROR)
            return None
        properties = read_properties(capture, self._kind)
        with self._lock:
            self._capture = capture
            self._properties = properties
            self._offline_since = None
            self._decoder_seen = 0
            muted = self._muted
        self._backoff.connected(time.monotonic())
        self._transition(StreamState.MUTED if muted else StreamState.RUNNING)
        return capture

    def _pump(self, capture: Capture) -> _Outcome:
        interval = 1.0 / self._config.max_fps if self._config.max_fps else 0.0
        selective = capture if isinstance(capture, SelectiveCapture) else None
        next_due = time.monotonic()
        while not self._stop.is_set():
            if interval and not self._kind.is_live and self._stop.wait(max(0.0, next_due - time.monotonic())):
                return _Outcome.STOPPED
            if not capture.grab():
                return self._read_failed(capture)
            now = time.monotonic()
            frame_id = self._count_decoded(now, selective)
            if interval:  # paced before the mute check, so a muted file still advances at max_fps
                # Only live sources get here early (files were paced above); a selective capture's
                # frames that cannot be retrieved alone are skipped, the next one is taken instead.
                slack = selective.slack() if selective is not None else 0.0
                if now < next_due - slack or (selective is not None and not selective.retrievable()):
                    self._buffer.count_drop(DROP_MAX_FPS)
                    continue
                next_due = max(next_due + interval, now)
            if self._is_muted():
                self._buffer.count_drop(DROP_MUTED)
                continue
            self._deliver(capture, frame_id, selective)
        return _Outcome.STOPPED

    def _deliver(self, capture: Capture, frame_id: int, selective: SelectiveCapture | None = None) -> None:
        ok, image = capture.retrieve()
        if selective is not None:  # retrieving may decode (intra-only and keyframe packets)
            self._count_decoder(selective)
        if not ok or image is None:
            self._buffer.count_drop(DROP_DECODE_ERROR)
            return
        fps = self._properties.fps if self._properties is not None else None
        frame = VideoFrame(image, frame_id, self.source_id, datetime.now(UTC), time.monotonic(), fps or None,
                           self.is_file)
        if not self._consumption_started:
            self._consumption_started = True
            self._emit(VIDEO_CONSUMPTION_STARTED, {"source_id": self.source_id}, context=CONTEXT_CONSUMER)
        self._buffer.put(frame)

    def _read_failed(self, capture: Capture) -> _Outcome:
        if self._stop.is_set():
            return _Outcome.STOPPED
        if self._kind.is_reconnectable:
            return _Outcome.LOST
        if self._kind.is_live:  # a peer that went away (WebRTC): the source ends, it is not reopened
            reason = capture.end_reason if isinstance(capture, PeerEndedCapture) else None
            self._end_reason = reason or "the peer stopped sending video"
            logger.info("source %s (%s): the peer ended: %s", self.source_id, self._redacted, self._end_reason)
            return _Outcome.ENDED
        with self._lock:
            decoded = self._frames_decoded
        if decoded == 0:
            self._report_error(SourceReadError(f"no decodable frame in {self._redacted}"), logging.ERROR)
            self._transition(StreamState.ERROR)
            return _Outcome.FAILED
        return _Outcome.ENDED

    def _skip(self, capture: Capture) -> "_Outcome | None":
        """Grabs the frames a previous task already processed; None when the file goes on after them."""
        skip, self._skip_frames = self._skip_frames, 0
        for _ in range(skip):
            if self._stop.is_set():
                return _Outcome.STOPPED
            if not capture.grab():
                return _Outcome.ENDED  # the file ended within them: nothing left to process
            with self._lock:
                self._frames_decoded += 1
                self._decoder_frames += 1  # files are read by OpenCV, whose grab decodes
        logger.info("source %d: resumed after frame %d", self.source_id, skip)
        return None

    def _count_decoded(self, now: float, selective: SelectiveCapture | None) -> int:
        self._backoff.healthy(now)
        if selective is not None:
            self._count_decoder(selective)
        with self._lock:
            self._frames_decoded += 1
            if selective is None:  # OpenCV's grab decodes the frame
                self._decoder_frames += 1
                self._decode_path = DecodePath.OPENCV
            return self._frames_decoded

    def _count_decoder(self, selective: SelectiveCapture) -> None:
        """Adds what the capture's decoder produced since the last call; notes its decode path."""
        total, path = selective.frames_decoded, selective.decode_path()
        with self._lock:
            self._decoder_frames += total - self._decoder_seen
            self._decoder_seen = total
            self._decode_path = path

    def _is_muted(self) -> bool:
        with self._lock:
            return self._muted

    def _go_offline(self, error: Exception) -> None:
        with self._lock:
            if self._offline_since is None:
                self._offline_since = datetime.now(UTC)
        self._report_error(error, logging.WARNING)
        self._transition(StreamState.RESTARTING)

    def _wait_before_reconnect(self) -> None:
        delay = self._backoff.next_delay()
        with self._lock:
            self._reconnects += 1
            attempt = self._reconnects
        logger.info(
            "source %s: reconnect attempt %d to %s in %.2fs", self.source_id, attempt, self._redacted, delay
        )
        payload = {"source_id": self.source_id, "attempt": attempt, "delay": round(delay, 3)}
        self._emit(SOURCE_RECONNECT_SCHEDULED, payload)
        self._stop.wait(delay)

    # ----------------------------------------------------------------- states and events

    def _transition(self, new: StreamState, only_from: StreamState | None = None) -> None:
        with self._transitions:
            with self._lock:
                old = self._state
                if not _allowed(old, new) or (only_from is not None and old is not only_from):
                    return
                self._state = new
            logger.info("source %s (%s): %s -> %s", self.source_id, self._redacted, old.value, new.value)
            payload = {"previous_state": old.value, "new_state": new.value, "source_id": self.source_id}
            self._emit(SOURCE_STATE_UPDATE, payload)

    def _report_error(self, error: Exception, severity: int) -> None:
        message = redact_text(str(error), self._secrets)
        logger.log(
            severity, "source %s (%s): %s: %s", self.source_id, self._redacted, type(error).__name__, message
        )
        payload = {
            "source_id": self.source_id,
            "error_type": type(error).__name__,
            "error_message": message,
            "error_context": ERROR_CONTEXT,
        }
        self._emit(SOURCE_ERROR, payload, severity)

    def _emit(
        self,
        event_type: str,
        payload: dict[str, Any],
        severity: int = logging.INFO,
        context: str = CONTEXT_SOURCE,
    ) -> None:
        update = StatusUpdate(event_type=event_type, context=context, payload=payload, severity=severity)
        try:
            self._on_update(update)
        except Exception as exc:  # a broken handler must not kill the decode thread
            logger.warning(
                "source %s: status handler failed on %s: %s", self.source_id, event_type, type(exc).__name__
            )


def _allowed(old: StreamState, new: StreamState) -> bool:
    if old is new or old.is_final:
        return False
    return old is not StreamState.TERMINATING or new is StreamState.ENDED


def _secrets_of(reference: str | int) -> tuple[str, ...]:
    if isinstance(reference, int):
        return ()
    try:
        password = urlsplit(reference).password
    except ValueError:
        return ()
    return (password,) if password else ()
