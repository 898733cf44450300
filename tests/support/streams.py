"""Live video streams for tests, served by real local processes.

``http_live_stream`` runs ffmpeg as a one-client HTTP server of an endless MPEG-TS stream;
``rtsp_live_stream`` runs GStreamer's RTSP server (system Python, see ``rtsp_server.py``).
Both yield the URL; use :class:`LiveStream` directly for a server whose ``stop()``/``start()``
simulate a camera dropping and coming back on the same port. ``silent_camera`` yields the URL of a
camera that accepts connections and never answers. A missing ffmpeg or GStreamer is an error,
never a skip.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")
_LISTEN_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_serving(port: int) -> bool:
    """Whether ``port`` listens or has a client, read from /proc so no connection is consumed.

    A client counts too: ffmpeg ``-listen 1`` stops listening once a client (a reconnecting
    source) has connected, which can happen before the first poll here.
    """
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] in ("0A", "01"):  # LISTEN, ESTABLISHED
                return True
    return False


class LiveStream:
    """A restartable stream server process; ``url`` stays the same across restarts.

    ``with LiveStream.http(video) as stream:`` starts it and kills it on exit; inside, ``stop()``
    and ``start()`` simulate the camera dropping and coming back on the same port.
    """

    def __init__(self, command: list[str], port: int, url: str) -> None:
        self.command = command
        self.port = port
        self.url = url
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def http(cls, video_path: str | Path, port: int | None = None) -> "LiveStream":
        """An endless, real-time (``-re``) MPEG-TS stream of ``video_path``; ffmpeg serves one client."""
        port = port or free_port()
        url = f"http://127.0.0.1:{port}/live.ts"
        command = [
            _require("ffmpeg"), "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", str(video_path), "-c:v", "mpeg4", "-an", "-f", "mpegts", "-listen", "1", url,
        ]  # fmt: skip
        return cls(command, port, url)

    @classmethod
    def rtsp(cls, video_path: str | Path | None = None, port: int | None = None) -> "LiveStream":
        """A live H.264 camera at ``rtsp://127.0.0.1:PORT/live`` (a test pattern unless a file is given)."""
        if not Path(SYSTEM_PYTHON).exists():
            raise RuntimeError(f"{SYSTEM_PYTHON} with python3-gi is required for RTSP tests")
        port = port or free_port()
        command = [SYSTEM_PYTHON, str(RTSP_SERVER), str(port)]
        if video_path is not None:
            command.append(str(video_path))
        return cls(command, port, f"rtsp://127.0.0.1:{port}/live")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty server never blocks
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors
            )
            deadline = time.monotonic() + _LISTEN_TIMEOUT
            while not is_serving(self.port):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    errors.seek(0)
                    raise RuntimeError(
                        f"stream server did not listen on port {self.port}: {self.command}\n"
                        + errors.read()[-2000:].decode(errors="replace")
                    )
                time.sleep(0.05)

    def stop(self) -> None:
        """Kills the server at once, like a camera losing power."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> "LiveStream":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _require(executable: str) -> str:
    path = shutil.which(executable)
    if path is None:
        raise RuntimeError(f"{executable} is required for live-stream tests (see the Makefile's deps)")
    return path


@contextmanager
def http_live_stream(video_path: str | Path, port: int | None = None) -> Iterator[str]:
    """The URL of a live HTTP stream of ``video_path`` (see :meth:`LiveStream.http`)."""
    with LiveStream.http(video_path, port) as stream:
        yield stream.url


@contextmanager
def rtsp_live_stream(video_path: str | Path | None = None, port: int | None = None) -> Iterator[str]:
    """The URL of a live RTSP camera (see :meth:`LiveStream.rtsp`)."""
    with LiveStream.rtsp(video_path, port) as stream:
        yield stream.url


@contextmanager
def silent_camera(scheme: str = "http") -> Iterator[str]:
    """The URL of a camera that hangs: its port accepts TCP connections (the kernel completes them
    from the listen backlog) but nothing ever answers, so opening it blocks for the whole open
    timeout, as with a camera whose network is up and whose firmware is stuck."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/live"
