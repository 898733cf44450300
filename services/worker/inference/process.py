"""Starts, watches and stops the worker's inference service process, from the worker's main process.

The service is a separate program (``python -m services.worker.inference``), not a fork: the
worker's main process stays free of onnxruntime and CUDA, and the service holds the device's one
context. Its socket's path goes into the environment (``SOCKET_ENV``) before Celery forks the
pipeline processes, so they find it. If the service dies, it is started again (backoff 0.5 s
doubling to 10 s); pipelines wait for it on their next round (``client``).
"""

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from services.infra.os_threads import name_os_thread
from services.worker.inference import SOCKET_ENV

log = logging.getLogger(__name__)


def default_socket_path() -> Path:
    """A path only this user can reach, unique to this worker process (short enough for AF_UNIX)."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return base / f"vsim-{os.getuid()}" / f"inference-{os.getpid()}.sock"


class InferenceServiceProcess:
    def __init__(self, socket_path: Path | None = None, initial_backoff: float = 0.5,
                 max_backoff: float = 10.0) -> None:
        self.socket_path = socket_path or default_socket_path()
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="service-watch", daemon=True)
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self) -> None:
        """Start the service and publish its socket to the processes this one forks from now on."""
        os.environ[SOCKET_ENV] = str(self.socket_path)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join(timeout)
        os.environ.pop(SOCKET_ENV, None)

    def _supervise(self) -> None:
        name_os_thread()
        backoff = self._initial_backoff
        while not self._stopping.is_set():
            command = [sys.executable, "-m", "services.worker.inference", "--socket", str(self.socket_path),
                       "--parent", str(os.getpid())]
            started = time.monotonic()
            self._process = subprocess.Popen(command)
            self.starts += 1
            code = self._process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 30:
                backoff = self._initial_backoff  # it had been running fine: a fresh failure
            log.error("the inference service exited with code %s; starting it again in %.1f s", code, backoff)
            if self._stopping.wait(backoff):
                return
            backoff = min(self._max_backoff, backoff * 2)
