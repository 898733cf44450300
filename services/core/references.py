"""What a video reference may be: the checks INIT applies before anything is written.

A reference is a camera index (an ``int``), a URL with an allowed scheme (``rtsp://host/...``) or a file
path. Everything else is refused with ``invalid_payload`` naming the source index and the reason, never the
reference's credentials. The rules close what FFmpeg and OpenCV would otherwise do with a string:

- FFmpeg reads ``proto:rest`` as its protocol ``proto`` (``concat:``, ``subfile:``, ``pipe:``, ``file:``,
  ``async:``, ``tee:``, ``cache:``, ``crypto:``, ``data:``, ``gopher:`` ...): any scheme-like prefix that is
  not an allowed URL scheme is refused, as are URLs without ``//host``.
- OpenCV built with GStreamer reads a string it cannot open as a pipeline description (``videotestsrc !
  appsink``): ``!`` outside a URL's user:password and GStreamer element names are refused (the worker also
  always opens strings with the FFmpeg backend, so this is defence in depth).
- Control characters (newlines, NUL, ...), a leading ``-`` (option injection) and over-long strings.
- A file path must lie, after resolving ``..`` and symlinks, under one of the configured roots. Resolving
  touches the filesystem, so the caller (the manager) passes the resolver and the resolved roots; this
  module does no I/O.
"""

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from services.core.errors import InvalidPayloadError
from services.core.redaction import REDACTED, redact_reference, redact_text

DEFAULT_ALLOWED_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp")
MAX_REFERENCE_LENGTH = 2048
DEFAULT_MAX_SOURCES = 16

# How FFmpeg finds a protocol: a prefix of these characters followed by ':' (libavformat/avio.c).
_SCHEME_PREFIX = re.compile(r"^(?P<scheme>[A-Za-z0-9+.\-]+):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GSTREAMER = re.compile(
    r"\b(?:appsink|appsrc|videotestsrc|audiotestsrc|filesrc|fdsrc|multifilesrc|v4l2src|rtspsrc|souphttpsrc|"
    r"udpsrc|tcpclientsrc|shmsrc|uridecodebin3?|decodebin3?|playbin3?|videoconvert|gst-launch)\b",
    re.IGNORECASE,
)

Resolver = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class ReferencePolicy:
    """The manager's rules for video references (``MANAGER_ALLOWED_SCHEMES`` and friends).

    ``file_roots`` are absolute, already resolved directories; ``resolve`` turns a path into the absolute,
    symlink-free path it opens (``os.path.realpath``). With no ``resolve`` file paths are refused.
    """

    allowed_schemes: frozenset[str] = frozenset(DEFAULT_ALLOWED_SCHEMES)
    file_roots: tuple[str, ...] = ()
    allowed_cameras: frozenset[int] = frozenset()
    max_sources: int = DEFAULT_MAX_SOURCES
    max_length: int = MAX_REFERENCE_LENGTH
    resolve: Resolver | None = field(default=None, compare=False)


def check_references(references: Sequence[str | int], policy: ReferencePolicy) -> None:
    """Raises :class:`InvalidPayloadError` for the first reference (or count) the policy refuses."""
    if len(references) > policy.max_sources:
        raise InvalidPayloadError(
            f"field 'video_reference': {len(references)} sources; at most {policy.max_sources} per pipeline "
            "(limit MANAGER_MAX_SOURCES)"
        )
    for index, reference in enumerate(references):
        reason = refusal(reference, policy)
        if reason is not None:
            raise InvalidPayloadError(
                f"field 'video_reference' source {index} {_shown(reference)}: {reason}",
                f"Video reference of source {index} is not allowed: {reason}.",
            )


def refusal(reference: str | int, policy: ReferencePolicy) -> str | None:
    """Why ``policy`` refuses ``reference`` (a sentence without the reference), or None."""
    if isinstance(reference, bool):
        return "must be a string or a camera index"
    if isinstance(reference, int):
        return _camera_refusal(reference, policy)
    reason = syntax_refusal(reference, policy.max_length)
    if reason is not None:
        return reason
    scheme = scheme_of(reference)
    if scheme is not None:
        return _url_refusal(reference, scheme, policy)
    return _path_refusal(reference, policy)


def syntax_refusal(reference: str, max_length: int = MAX_REFERENCE_LENGTH) -> str | None:
    """The checks that need no configuration (also applied by the worker before it opens a string)."""
    if not reference:
        return "is empty"
    if len(reference) > max_length:
        return f"is {len(reference)} characters long; at most {max_length}"
    if _CONTROL.search(reference):
        return "contains control characters (newline, NUL, ...)"
    if reference != reference.strip():
        return "has leading or trailing whitespace"
    if reference.startswith("-"):
        return "starts with '-'"
    outside_credentials = _without_userinfo(reference)
    if "!" in outside_credentials or _GSTREAMER.search(outside_credentials):
        return "looks like a GStreamer pipeline ('!' or an element name); only URLs and file paths are accepted"
    return None


def scheme_of(reference: str) -> str | None:
    """The protocol FFmpeg would read ``reference`` with (lower case), or None for a plain path."""
    match = _SCHEME_PREFIX.match(reference)
    return match["scheme"].lower() if match else None


def _url_refusal(reference: str, scheme: str, policy: ReferencePolicy) -> str | None:
    allowed = ", ".join(sorted(policy.allowed_schemes)) or "none"
    if scheme not in policy.allowed_schemes:
        hint = " (give a file as a plain path)" if scheme == "file" else ""
        return f"scheme {scheme!r} is not allowed{hint}; allowed: {allowed} (MANAGER_ALLOWED_SCHEMES)"
    if not reference[len(scheme) + 1:].startswith("//"):
        return f"a {scheme} URL must be '{scheme}://host/...'"
    try:
        parts = urlsplit(reference)
        _ = parts.port  # raises for a port that is not a number in 0-65535
    except ValueError:
        return "is not a valid URL (host or port)"
    if not parts.hostname:
        return f"a {scheme} URL needs a host"
    if any(char.isspace() for char in reference):
        return "a URL may not contain whitespace"
    return None


def _camera_refusal(index: int, policy: ReferencePolicy) -> str | None:
    if index < 0:
        return "a camera index must be >= 0"
    if index not in policy.allowed_cameras:
        allowed = ", ".join(str(camera) for camera in sorted(policy.allowed_cameras)) or "none"
        return f"camera {index} is not allowed; allowed: {allowed} (MANAGER_ALLOWED_CAMERAS)"
    return None


def _path_refusal(path: str, policy: ReferencePolicy) -> str | None:
    roots = ", ".join(policy.file_roots) or "none"
    if policy.resolve is None or not policy.file_roots:
        return f"file paths are not allowed; allowed roots: {roots} (MANAGER_FILE_ROOTS)"
    resolved = policy.resolve(path)
    if not any(_is_within(resolved, root) for root in policy.file_roots):
        return f"the file is outside the allowed roots: {roots} (MANAGER_FILE_ROOTS)"
    return None


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(posixpath.sep) + posixpath.sep)


def _without_userinfo(reference: str) -> str:
    """``reference`` without a URL's ``user:password@`` (where '!' and any word are legitimate)."""
    scheme = scheme_of(reference)
    rest = reference[len(scheme) + 1:] if scheme else ""
    if not rest.startswith("//"):
        return reference
    authority_end = len(rest)
    for separator in "/?#":
        position = rest.find(separator, 2)
        if position != -1:
            authority_end = min(authority_end, position)
    authority = rest[2:authority_end]
    if "@" not in authority:
        return reference
    host = authority.rsplit("@", 1)[1]
    return f"{scheme}://{host}{rest[authority_end:]}"


def _shown(reference: str | int) -> str:
    """The reference as an error may show it: credentials redacted (also in malformed URLs such as
    ``rtsp:user:pass@host``), control characters escaped, bounded."""
    if isinstance(reference, int):
        return str(reference)
    shown = redact_text(str(redact_reference(reference)))
    if "@" in shown:
        before, host = shown.rsplit("@", 1)
        if not before.endswith(REDACTED):
            scheme = scheme_of(shown)
            shown = f"{scheme}://{REDACTED}@{host}" if scheme else f"{REDACTED}@{host}"
    text = ascii(shown)
    return text if len(text) <= 120 else text[:117] + "..."
