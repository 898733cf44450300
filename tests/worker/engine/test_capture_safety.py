"""Defence in depth where a string reaches FFmpeg: no FFmpeg protocol tricks or GStreamer pipelines are
opened, and native logging (which bypasses the redaction of Python's logs) is quiet by default."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.worker.engine.capture import CaptureOptions, SourceConnectionError, open_capture, unsafe_reason
from tests.support.streams import free_port

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "Sup3rSecretPw"


@pytest.mark.parametrize(
    ("reference", "reason"),
    [("concat:data/media/vtest.avi|data/media/vtest.avi", "FFmpeg protocol 'concat'"),
     ("file:data/media/vtest.avi", "FFmpeg protocol 'file'"), ("pipe:0", "FFmpeg protocol 'pipe'"),
     ("videotestsrc ! appsink", "GStreamer"), ("data/media/vtest.avi\n", "control characters"),
     ("-i", "starts with '-'")],
)
def test_unsafe_strings_never_reach_ffmpeg(reference: str, reason: str) -> None:
    assert reason in str(unsafe_reason(reference))
    with pytest.raises(SourceConnectionError, match="refusing to open video source"):
        open_capture(reference, CaptureOptions(open_timeout=1, read_timeout=1))


@pytest.mark.parametrize("reference", ["data/media/vtest.avi", "rtsp://u:p@cam/1", "udp://0.0.0.0:1234",
                                       "tcp://host:5000", "/abs/path with spaces.mp4"])
def test_streams_and_paths_are_fine(reference: str) -> None:
    assert unsafe_reason(reference) is None


PROBE = """
import os, sys
from services.worker.engine.capture import CaptureOptions, SourceConnectionError, open_capture
print("FFMPEG_LOGLEVEL", os.environ.get("OPENCV_FFMPEG_LOGLEVEL"), flush=True)
try:
    open_capture(sys.argv[1], CaptureOptions(open_timeout=1, read_timeout=1))
except SourceConnectionError as exc:
    print("refused:", exc, flush=True)
"""


def _probe(env: dict[str, str]) -> str:
    url = f"http://viewer:{PASSWORD}@127.0.0.1:{free_port()}/live.ts?token={PASSWORD}"
    result = subprocess.run([sys.executable, "-c", PROBE, url], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout + result.stderr


def test_a_failing_credentialed_open_prints_no_password_on_stderr() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPENCV_")}
    output = _probe(env)
    assert "FFMPEG_LOGLEVEL -8" in output and "refused: cannot open video source" in output
    assert PASSWORD not in output


def test_the_operator_can_turn_ffmpeg_logging_back_on_and_then_it_shows_the_url() -> None:
    # Why the default is quiet: FFmpeg's own lines are not redacted (documented in the README).
    env = {**os.environ, "OPENCV_FFMPEG_LOGLEVEL": "48"}
    assert PASSWORD in _probe(env)
