"""The real stack as separate processes: `python -m services.manager` and Celery workers
(`python -m services.worker`, prefork pool), on the tests' redis-server."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from services.core import keys
from services.infra.redis_connect import sync_client
from tools.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]


def stop_process(process: "subprocess.Popen[Any]", sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Signals ``process`` (SIGTERM by default) and waits; SIGKILL if it is still there after ``timeout``."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Stack:
    def __init__(self, redis_url: str, log_dir: Path, devices: str = "cpu") -> None:
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.port = free_port()
        self.devices = devices
        self.manager: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.client = sync_client(redis_url)  # a plain or a Sentinel URL (tests/support/sentinel.py)
        self.apis: dict[str, subprocess.Popen[bytes]] = {}

    def _env(self, **extra: str) -> dict[str, str]:
        return dict(
            os.environ, MANAGER_REDIS_URL=self.redis_url, WORKER_REDIS_URL=self.redis_url,
            STREAM_MANAGER_HOST="127.0.0.1", STREAM_MANAGER_PORT=str(self.port), MANAGER_DEVICES=self.devices,
            WORKER_MODEL_REPOSITORY=str(ROOT / "data" / "models"), WORKER_INTRA_OP_THREADS="1", **extra,
        )

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_manager(self, **extra: str) -> None:
        """Spawns `python -m services.manager`; ``extra`` adds to its environment (e.g. ``MANAGER_INIT_TIMEOUT``)."""
        self.manager = self._spawn("manager", [sys.executable, "-m", "services.manager"], self._env(**extra))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            time.sleep(0.1)
        raise RuntimeError(f"manager did not listen on {self.port}; see {self.log_dir}/manager.log")

    def stop_manager(self, sig: int = signal.SIGTERM) -> None:
        if self.manager is not None:
            stop_process(self.manager, sig)

    def start_worker(self, name: str, queue: str, concurrency: int = 2, nice: int = 0) -> None:
        command = [sys.executable, "-m", "services.worker", "--queues", queue, "--concurrency", str(concurrency),
                   "--hostname", f"{name}@test"]
        if nice:  # a worker sharing its host with the manager: inference yields to the control plane
            command = ["nice", "-n", str(nice), *command]
        self.workers[name] = self._spawn(f"worker-{name}", command, self._env())
        self.wait_for_registration(f"{name}@test")

    def start_worker_with_env(self, name: str, queue: str, env: dict[str, str], concurrency: int = 2) -> None:
        """As :meth:`start_worker`, with ``env`` added to the worker's environment (e.g. a short
        ``WORKER_RECONNECT_INITIAL_DELAY`` / ``WORKER_RECONNECT_MAX_DELAY`` backoff for camera-fault tests)."""
        command = [sys.executable, "-m", "services.worker", "--queues", queue, "--concurrency", str(concurrency),
                   "--hostname", f"{name}@test"]
        self.workers[name] = self._spawn(f"worker-{name}", command, {**self._env(), **env})
        self.wait_for_registration(f"{name}@test")

    def registration(self, hostname: str) -> dict[str, object] | None:
        raw = self.client.get(keys.worker_registration(hostname))
        return None if raw is None else dict(json.loads(raw))

    def wait_for_registration(self, hostname: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.registration(hostname) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {hostname} did not register; see {self.log_dir}")
            time.sleep(0.2)

    def start_api(self, name: str = "api", **extra: str) -> str:
        """Spawns `python -m services.api` on a free port, pointed at this stack's manager (and its Redis for
        readiness); ``extra`` overrides its environment. Returns the base URL once /healthz answers."""
        port = free_port()
        env = self._env(STREAM_MANAGEMENT_API_HOST="127.0.0.1", STREAM_MANAGEMENT_API_PORT=str(port),
                        **{"API_REDIS_URL": self.redis_url, **extra})
        process = self.apis[name] = self._spawn(name, [sys.executable, "-m", "services.api"], env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            time.sleep(0.1)
        raise RuntimeError(f"API {name} did not answer on {port}; see {self.log_dir}/{name}.log")

    def stop_api(self, name: str = "api") -> None:
        """Stops the API ``name`` (SIGTERM, and its worker processes with it) and forgets it."""
        stop_process(self.apis.pop(name))

    def close(self) -> None:
        for process in self.apis.values():
            stop_process(process)
        for process in self.workers.values():
            stop_process(process)
        self.stop_manager()
        self.client.close()


@contextlib.contextmanager
def running_stack(redis_url: str, devices: str = "cpu") -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="vsim-stack-") as tmp:
        stack = Stack(redis_url, Path(tmp), devices)
        try:
            yield stack
        except BaseException:
            for log in sorted(Path(tmp).glob("*.log")):  # the processes' logs explain a failure
                sys.stderr.write(f"----- {log.name} -----\n{log.read_text(errors='replace')[-6000:]}\n")
            raise
        finally:
            stack.close()
