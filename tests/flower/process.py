"""A real Flower process started by the project's launcher, `python -m services.worker.flower`.

Flower runs as a subprocess, never in the tests' interpreter: tornado and Flower emit deprecation
warnings that the suite's ``filterwarnings = error`` would turn into failures, and a subprocess is
what the stacks run anyway.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from tests.support.stack import stop_process
from tools.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = [sys.executable, "-m", "services.worker.flower"]


def flower_env(**settings: str) -> dict[str, str]:
    """The tests' environment without any ``FLOWER_*`` variable of the caller's, plus ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLOWER_")}
    return {**env, **settings}


@dataclass
class Flower:
    url: str
    auth: tuple[str, str] | None
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, auth: bool = True, **params: str) -> httpx.Response:
        """GET ``path``, with the basic auth Flower was started with unless ``auth`` is false."""
        return httpx.get(f"{self.url}{path}", params=params, auth=self.auth if auth else None, timeout=10)

    def json(self, path: str, **params: str) -> dict[str, object]:
        response = self.get(path, **params)
        response.raise_for_status()
        return dict(response.json())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def running_flower(redis_url: str, log: Path, basic_auth: str | None, **settings: str) -> Iterator[Flower]:
    """Flower on a free loopback port, yielded once ``/healthcheck`` answers; stopped with SIGTERM."""
    port = free_port()
    env = flower_env(FLOWER_REDIS_URL=redis_url, FLOWER_PORT=str(port), **settings)
    if basic_auth is not None:
        env["FLOWER_BASIC_AUTH"] = basic_auth
    first = basic_auth.split(",")[0].split(":", 1) if basic_auth else None
    with open(log, "ab") as output:  # the child keeps its own descriptor
        process = subprocess.Popen(LAUNCHER, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    flower = Flower(f"http://127.0.0.1:{port}", (first[0], first[1]) if first else None, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if flower.get("/healthcheck", auth=False).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Flower did not answer on {port}:\n{flower.log_text()}")
            time.sleep(0.1)
        yield flower
    finally:
        stop_process(process, timeout=15)


@contextlib.contextmanager
def password_redis(password: str) -> Iterator[str]:
    """The URL (password included) of a redis-server of its own that requires ``password``, as the
    compose stacks run it: what Flower shows must not reveal the broker's password either."""
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; `make setup` installs Debian's redis-server")
    with tempfile.TemporaryDirectory(prefix="vsim-flower-redis-") as directory:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password, "--save", "",
             "--appendonly", "no", "--dir", directory, "--logfile", str(Path(directory) / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server with a password did not start on {port}")
                time.sleep(0.05)
            yield url
        finally:
            client.close()
            process.kill()
            process.wait()
