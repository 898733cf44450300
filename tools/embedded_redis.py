"""A redis-server child process on a free loopback port, for `make run` and the tests.

Used when no Redis is configured: the stack and the test suite start their own, in a temporary
directory, persisting nothing by default: a ``stop()``/``start()`` then comes back EMPTY, like a
Redis that lost its data. ``persistent=True`` keeps an append-only file in that directory, fsynced
on every write, so a restart (even after SIGKILL) comes back with everything it had.
"""

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A running redis-server process; ``stop``/``start`` simulate an outage on the same port."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    persistent: bool = False  # AOF in ``directory`` (appendfsync always): a restart keeps the data

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; `make setup` installs Debian's redis-server")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:  # the probe's connection is closed on every way out (a timeout is no ConnectionError)
            while time.monotonic() < deadline:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"redis-server did not start on port {self.port}: see {self.directory}/redis.log")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def running_redis(persistent: bool = False) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="vsim-redis-") as tmp:
        server = RedisServer(port=free_port(), directory=Path(tmp), persistent=persistent)
        server.start()
        try:
            yield server
        finally:
            server.stop()
