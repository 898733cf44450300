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

import redis

from services.core import keys
from tools.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> None:
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
        self.client = redis.Redis.from_url(redis_url)

    def _env(self, **extra: str) -> dict[str, str]:
        return dict(
            os.environ, MANAGER_REDIS_URL=self.redis_url, WORKER_REDIS_URL=self.redis_url,
            STREAM_MANAGER_HOST="127.0.0.1", STREAM_MANAGER_PORT=str(self.port), MANAGER_DEVICES=self.devices,
            WORKER_MODEL_REPOSITORY=str(ROOT / "data" / "models"), WORKER_INTRA_OP_THREADS="1", **extra,
        )

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_manager(self) -> None:
        self.manager = self._spawn("manager", [sys.executable, "-m", "services.manager"], self._env())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            time.sleep(0.1)
        raise RuntimeError(f"manager did not listen on {self.port}; see {self.log_dir}/manager.log")

    def stop_manager(self, sig: int = signal.SIGTERM) -> None:
        if self.manager is not None:
            _stop(self.manager, sig)

    def start_worker(self, name: str, queue: str, concurrency: int = 2, nice: int = 0) -> None:
        command = [sys.executable, "-m", "services.worker", "--queues", queue, "--concurrency", str(concurrency),
                   "--hostname", f"{name}@test"]
        if nice:  # a worker sharing its host with the manager: inference yields to the control plane
            command = ["nice", "-n", str(nice), *command]
        self.workers[name] = self._spawn(f"worker-{name}", command, self._env())
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

    def close(self) -> None:
        for process in self.workers.values():
            _stop(process)
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
