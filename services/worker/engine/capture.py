"""Opening a video reference with OpenCV: what kind it is, how it is opened, what it reports.

A reference is a local camera (an ``int``), a network stream (a URL with a streaming scheme) or a
file path. Streams and files go through the FFMPEG backend with open/read timeouts, so an
unreachable camera fails within seconds instead of blocking its thread.

Strings always go to the FFMPEG backend, never ``CAP_ANY``: OpenCV built with GStreamer would read a
string it cannot open as a GStreamer pipeline. Before a string reaches FFmpeg it must pass the
configuration-free checks of ``services.core.references`` and, when FFmpeg would read it as
``protocol:...``, name a streaming scheme (never ``concat:``, ``pipe:``, ``file:``, ...): defence in depth
behind the manager's INIT validation.

A ``webrtc:`` reference names a WebRTC peer's video: live but not reconnectable (a peer that went away
does not come back), and opened only by its session's opener (``services.worker.webrtc``); ``open_capture``
refuses it.

A live stream with ``max_fps`` (and no ``video_source_properties``) is first offered to PyAV
(``services.worker.engine.pyav_capture``), which decodes only the frames the pacing takes where the
stream allows it; whatever PyAV cannot serve as OpenCV would opens here as before. Such a reader is
a :class:`SelectiveCapture`: the source asks it which grabbed frames are cheap to retrieve.

Native logging bypasses the redaction of Python's logs (FFmpeg prints to stderr, at debug level with
the URL and its password), so importing this module quiets it: FFmpeg's log is off
(``OPENCV_FFMPEG_LOGLEVEL=-8``) and OpenCV's own shows errors only, unless the operator set
``OPENCV_FFMPEG_LOGLEVEL`` / ``OPENCV_LOG_LEVEL`` (for debugging: those lines are not redacted).
"""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import cv2
import numpy as np

from services.core.redaction import redact_reference
from services.core.references import scheme_of, syntax_refusal

AV_LOG_QUIET = -8

STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp"})
WEBRTC_SCHEME = "webrtc"

# video_source_properties names -> cv2.CAP_PROP_* ids, e.g. "frame_width" -> CAP_PROP_FRAME_WIDTH.
# Only the generic properties (ids 0-99); backend-specific ones (XI_, OPENNI_, ...) are left out.
CAPTURE_PROPERTIES: Mapping[str, int] = {
    name.removeprefix("CAP_PROP_").lower(): value
    for name in dir(cv2)
    if name.startswith("CAP_PROP_")
    and not name.startswith("CAP_PROP_DC1394")
    and isinstance(value := getattr(cv2, name), int)
    and 0 <= value < 100
}


def quiet_native_logs() -> None:
    """FFmpeg quiet and OpenCV at errors only, unless the environment chose (read at the first open)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", str(AV_LOG_QUIET))
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


quiet_native_logs()


class SourceKind(StrEnum):
    CAMERA = "camera"
    STREAM = "stream"
    FILE = "file"
    # A WebRTC peer's video (``webrtc:<name>``): opened only by its session's opener, never by FFmpeg.
    WEBRTC = "webrtc"

    @property
    def is_live(self) -> bool:
        return self is not SourceKind.FILE

    @property
    def is_reconnectable(self) -> bool:
        """A live source worth reopening when it fails; a WebRTC peer that went away does not come back."""
        return self in (SourceKind.CAMERA, SourceKind.STREAM)


class SourceConnectionError(Exception):
    """A reference could not be opened. Its message carries only the redacted reference."""


class SourceReadError(Exception):
    """An opened live source stopped delivering frames."""


class DecodePath(StrEnum):
    """How a source's frames are decoded (``SourceStats.decode_path``); see ``pyav_capture``."""

    OPENCV = "opencv"  # grab() decodes every frame, retrieve() converts it
    PYAV_INTRA = "pyav-intra"  # every packet decodes alone: only the frames taken are decoded
    PYAV_KEYFRAMES = "pyav-keyframes"  # keyframes satisfy max_fps: only they are decoded, alone
    PYAV_ALL = "pyav-all"  # every packet decoded (references), only the frames taken converted


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a source uses; tests substitute fakes."""

    def isOpened(self) -> bool: ...
    def grab(self) -> bool: ...
    def retrieve(self) -> tuple[bool, np.ndarray | None]: ...
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop_id: int) -> float: ...
    def release(self) -> None: ...


@runtime_checkable
class SelectiveCapture(Capture, Protocol):
    """A capture that decodes only what is retrieved, where it can (``pyav_capture.PyAVCapture``).

    ``frames_decoded`` counts the frames its decoder produced (OpenCV's grab decodes every frame).
    """

    frames_decoded: int

    def retrievable(self) -> bool:
        """Whether the grabbed frame can be retrieved without decoding more than itself; the pacing
        skips the others (counted as ``max_fps`` drops)."""
        ...

    def slack(self) -> float:
        """Seconds before its due time a retrievable frame may be taken (keyframes arrive once per
        interval: without it, jitter would make every other one a little early and skipped)."""
        ...

    def decode_path(self) -> DecodePath: ...


@runtime_checkable
class PeerEndedCapture(Capture, Protocol):
    """A capture fed by a remote peer (``services.worker.webrtc``): once ``grab`` returns False the peer is gone
    for good, and ``end_reason`` says why; ``interrupt`` makes a waiting ``grab`` return False at once (the
    source is terminating)."""

    @property
    def end_reason(self) -> str | None: ...

    def interrupt(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CaptureOptions:
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    properties: Mapping[str, float] = field(default_factory=dict)
    # Set for live streams paced by max_fps: they may be read by PyAV, decoding only what is taken.
    max_fps: float | None = None
    decode_threads: int = 0  # FFmpeg's decoding threads (0: its automatic count; cameras: not applied)


Opener = Callable[[str | int, CaptureOptions], Capture]


@dataclass(frozen=True, slots=True)
class SourceProperties:
    width: int
    height: int
    total_frames: int | None
    fps: float
    is_file: bool
    is_reconnectable: bool
    timestamp_created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "total_frames": self.total_frames,
            "is_file": self.is_file,
            "fps": self.fps,
            "is_reconnectable": self.is_reconnectable,
            "timestamp_created": self.timestamp_created.isoformat(),
        }


def classify(reference: str | int) -> SourceKind:
    if isinstance(reference, int):
        return SourceKind.CAMERA
    try:
        scheme = urlsplit(reference).scheme.lower()
    except ValueError:
        return SourceKind.FILE
    if scheme == WEBRTC_SCHEME:
        return SourceKind.WEBRTC
    return SourceKind.STREAM if scheme in STREAM_SCHEMES else SourceKind.FILE


def unsafe_reason(reference: str) -> str | None:
    """Why a string must not reach FFmpeg, or None: a protocol other than a stream's, a GStreamer-like
    pipeline, control characters, a leading '-'."""
    reason = syntax_refusal(reference)
    if reason is not None:
        return reason
    scheme = scheme_of(reference)
    if scheme is not None and scheme not in STREAM_SCHEMES:
        return f"FFmpeg protocol {scheme!r} is not a video stream"
    return None


def property_ids(properties: Mapping[str, float]) -> dict[int, float]:
    """``{"frame_width": 1280}`` -> ``{cv2.CAP_PROP_FRAME_WIDTH: 1280.0}``; unknown names raise."""
    unknown = sorted(name for name in properties if name.lower() not in CAPTURE_PROPERTIES)
    if unknown:
        raise ValueError(
            f"unknown video_source_properties {unknown}; known: {', '.join(sorted(CAPTURE_PROPERTIES))}"
        )
    return {CAPTURE_PROPERTIES[name.lower()]: float(value) for name, value in properties.items()}


def open_capture(reference: str | int, options: CaptureOptions) -> Capture:
    """An opened capture with ``options.properties`` applied, or :class:`SourceConnectionError`."""
    props = property_ids(options.properties)
    kind = classify(reference)
    if kind is SourceKind.WEBRTC:  # only its session opens it (a source given the session's opener)
        raise SourceConnectionError(
            f"refusing to open video source {redact_reference(reference)}: a WebRTC peer's video is opened "
            "only by its session"
        )
    if kind is SourceKind.CAMERA:
        capture = cv2.VideoCapture(reference)
    else:
        reason = unsafe_reason(str(reference))
        if reason is not None:
            raise SourceConnectionError(f"refusing to open video source {redact_reference(reference)}: {reason}")
        selective = _open_selective(str(reference), options)
        if selective is not None:
            return selective
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(options.open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(options.read_timeout * 1000),
        ]
        if options.decode_threads > 0:
            params += [cv2.CAP_PROP_N_THREADS, options.decode_threads]
        capture = cv2.VideoCapture(str(reference), cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise SourceConnectionError(f"cannot open video source {redact_reference(reference)}")
    for prop_id, value in props.items():
        capture.set(prop_id, value)  # unsupported properties are ignored, as the reference does
    return capture


def _open_selective(reference: str, options: CaptureOptions) -> Capture | None:
    """The PyAV reader where it applies (see the module docstring), else None."""
    if (not options.max_fps or options.properties or classify(reference) is not SourceKind.STREAM
            or "OPENCV_FFMPEG_CAPTURE_OPTIONS" in os.environ):
        return None
    from services.worker.engine.pyav_capture import open_pyav  # imports capture: loaded on first use

    return open_pyav(reference, options, 1.0 / options.max_fps)


def read_properties(capture: Capture, kind: SourceKind) -> SourceProperties:
    is_file = kind is SourceKind.FILE
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return SourceProperties(
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        total_frames=frames if is_file and frames > 0 else None,
        fps=float(capture.get(cv2.CAP_PROP_FPS)),
        is_file=is_file,
        is_reconnectable=kind.is_reconnectable,
    )
