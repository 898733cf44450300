"""The rules for video references at INIT (services.core.references), table-driven.

File paths are resolved with a fake resolver (the core does no I/O): ``/srv/media`` is the one root,
relative paths are taken from ``/srv``, and ``/srv/media/link.avi`` is a symlink to ``/etc/shadow``.
"""

import posixpath

import pytest

from services.core.errors import InvalidPayloadError
from services.core.references import ReferencePolicy, check_references, refusal, scheme_of

PASSWORD = "Sup3rSecretPw"
LINKS = {"/srv/media/link.avi": "/etc/shadow"}


def fake_realpath(path: str) -> str:
    resolved = posixpath.normpath(posixpath.join("/srv", path))
    return LINKS.get(resolved, resolved)


POLICY = ReferencePolicy(file_roots=("/srv/media",), allowed_cameras=frozenset({0}), resolve=fake_realpath)


@pytest.mark.parametrize(
    "reference",
    [
        "rtsp://cam.local:554/stream1",
        f"rtsp://viewer:{PASSWORD}@127.0.0.1:8554/live",
        "RTSPS://cam/1",
        "http://127.0.0.1:8000/live.ts",
        "https://host/live.m3u8?token=abc&x=1",
        "rtmp://host/app/key",
        "rtsp://user:p!ss@cam/1",  # '!' in a password is no pipeline
        "rtsp://[::1]:8554/live",
        "media/vtest.avi",
        "media/sub/../bikes.mp4",
        "/srv/media/clip with spaces.avi",
        "/srv/media",
        0,
    ],
)
def test_accepted(reference: str | int) -> None:
    assert refusal(reference, POLICY) is None


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        # FFmpeg protocols and unknown schemes
        ("file:///srv/media/vtest.avi", "scheme 'file' is not allowed (give a file as a plain path)"),
        ("concat:media/a.avi|/etc/passwd", "scheme 'concat' is not allowed"),
        ("subfile:,start,0,end,0,:/etc/passwd", "scheme 'subfile' is not allowed"),
        ("pipe:0", "scheme 'pipe' is not allowed"),
        ("async:http://host/x", "scheme 'async' is not allowed"),
        ("tee:rtsp://host/x", "scheme 'tee' is not allowed"),
        ("cache:http://host/x", "scheme 'cache' is not allowed"),
        ("crypto:media/a.avi", "scheme 'crypto' is not allowed"),
        ("data:video/mp4;base64,AAAA", "scheme 'data' is not allowed"),
        ("gopher://host/1", "scheme 'gopher' is not allowed"),
        ("udp://0.0.0.0:1234", "scheme 'udp' is not allowed"),
        ("media:vtest.avi", "scheme 'media' is not allowed"),
        ("rtsp:cam/1", "a rtsp URL must be 'rtsp://host/...'"),
        ("rtsp://", "a rtsp URL needs a host"),
        ("http://host:99999/x", "is not a valid URL (host or port)"),
        ("http://host/a b", "a URL may not contain whitespace"),
        # injection
        ("media/a.avi\nrtsp://evil/", "contains control characters"),
        ("media/a.avi\x00.mp4", "contains control characters"),
        ("-i", "starts with '-'"),
        (" media/a.avi", "has leading or trailing whitespace"),
        ("videotestsrc ! videoconvert ! appsink", "looks like a GStreamer pipeline"),
        ("videotestsrc", "looks like a GStreamer pipeline"),
        ("rtsp://cam/x!y", "looks like a GStreamer pipeline"),
        ("x" * 2049, "is 2049 characters long; at most 2048"),
        ("", "is empty"),
        # files outside the roots
        ("/etc/passwd", "outside the allowed roots: /srv/media (MANAGER_FILE_ROOTS)"),
        ("media/../../etc/passwd", "outside the allowed roots"),
        ("vtest.avi", "outside the allowed roots"),
        ("/srv/media-other/a.avi", "outside the allowed roots"),  # a prefix is not a parent
        ("/srv/media/link.avi", "outside the allowed roots"),  # a symlink out of the root
        # cameras
        (1, "camera 1 is not allowed; allowed: 0 (MANAGER_ALLOWED_CAMERAS)"),
        (-1, "a camera index must be >= 0"),
        (True, "must be a string or a camera index"),
    ],
)
def test_refused(reference: str | int, reason: str) -> None:
    refused = refusal(reference, POLICY)
    assert refused is not None and reason in refused


def test_without_roots_or_resolver_files_are_refused_and_cameras_by_default() -> None:
    assert "file paths are not allowed; allowed roots: none" in str(refusal("/srv/media/a.avi", ReferencePolicy()))
    assert "file paths are not allowed" in str(refusal("/srv/media/a.avi", ReferencePolicy(file_roots=("/srv",))))
    assert "camera 0 is not allowed; allowed: none" in str(refusal(0, ReferencePolicy()))


def test_schemes_are_configurable() -> None:
    policy = ReferencePolicy(allowed_schemes=frozenset({"rtsp", "udp"}))
    assert refusal("udp://0.0.0.0:1234", policy) is None
    assert "allowed: rtsp, udp (MANAGER_ALLOWED_SCHEMES)" in str(refusal("http://host/x", policy))


@pytest.mark.parametrize(
    ("reference", "scheme"),
    [("rtsp://a", "rtsp"), ("HTTP://a", "http"), ("hls+http://a", "hls+http"), ("a/b:c", None), ("/x:y", None),
     ("vtest.avi", None), ("c:x", "c")],
)
def test_scheme_is_what_ffmpeg_would_read(reference: str, scheme: str | None) -> None:
    assert scheme_of(reference) == scheme


def test_the_error_names_the_source_and_the_reason_never_the_password() -> None:
    references: list[str | int] = ["media/vtest.avi", f"gopher://viewer:{PASSWORD}@host/?token={PASSWORD}"]
    with pytest.raises(InvalidPayloadError) as error:
        check_references(references, POLICY)
    message, public = error.value.args[0], error.value.public_message
    assert message.startswith("field 'video_reference' source 1 'gopher://***@host/?token=***': scheme 'gopher'")
    assert public.startswith("Video reference of source 1 is not allowed: scheme 'gopher' is not allowed")
    assert PASSWORD not in message and PASSWORD not in public


@pytest.mark.parametrize(
    "reference",
    [f"rtsp:viewer:{PASSWORD}@cam/1", f"rtsp://viewer:{PASSWORD}@cam/x!y", f"rtsp://viewer:{PASSWORD}@cam:99999/",
     f"concat:rtsp://viewer:{PASSWORD}@cam/1|x", f"rtsp://viewer:{PASSWORD}@cam/a\nb"],
)
def test_malformed_credentialed_references_are_redacted_too(reference: str) -> None:
    with pytest.raises(InvalidPayloadError) as error:
        check_references([reference], POLICY)
    assert PASSWORD not in str(error.value.args[0]) and PASSWORD not in error.value.public_message


def test_too_many_sources_names_the_limit() -> None:
    policy = ReferencePolicy(allowed_schemes=frozenset({"rtsp"}), max_sources=2)
    check_references(["rtsp://a/1", "rtsp://a/2"], policy)
    with pytest.raises(InvalidPayloadError, match=r"3 sources; at most 2 per pipeline \(limit MANAGER_MAX_SOURCES\)"):
        check_references(["rtsp://a/1", "rtsp://a/2", "rtsp://a/3"], policy)
