"""Raw TCP servers that misbehave on purpose: what a client must survive from a broken manager.

A :class:`ScriptedServer` accepts connections on a free loopback port, reads one request frame
from each (recording its body), and lets a script answer with whatever bytes it likes.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

from services.core.framing import FrameDecoder

Script = Callable[[socket.socket], None]


class ScriptedServer:
    def __init__(self, script: Script, port: int = 0) -> None:
        self._script = script
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.requests: list[bytes] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="scripted-server")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with contextlib.suppress(OSError):
                    self.requests.append(_read_frame(conn))
                    self._script(conn)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()


def _read_frame(conn: socket.socket) -> bytes:
    decoder = FrameDecoder()
    while True:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("the client closed before sending a whole request")
        if frames := decoder.feed(data):
            return frames[0]


@contextlib.contextmanager
def scripted_server(script: Script) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    try:
        yield server
    finally:
        server.close()


def replies(data: bytes) -> Script:
    """Sends ``data`` and closes the connection."""
    return lambda conn: conn.sendall(data)


def replies_then_waits(data: bytes) -> Script:
    """Sends ``data`` and keeps the connection open until the client closes it."""
    def script(conn: socket.socket) -> None:
        conn.sendall(data)
        while conn.recv(65536):
            pass
    return script


def replies_in_pieces(data: bytes, cuts: tuple[int, ...]) -> Script:
    """Sends ``data`` cut at ``cuts``, pausing between pieces so that each arrives on its own."""
    def script(conn: socket.socket) -> None:
        start = 0
        for end in (*cuts, len(data)):
            conn.sendall(data[start:end])
            start = end
            time.sleep(0.05)
    return script


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port whose listener accepts connections (the kernel's backlog does) and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]
