"""A pipeline's side of the inference service: one connection per calling thread, a runner per model.

:class:`RemoteRunner` is a :class:`~services.worker.detection.detector.ModelRunner`, so a
``Detector`` or ``Classifier`` built on it pre- and post-processes in the pipeline's process and
sends only ``session.run`` to the service. Each thread (a pipeline's inference threads) gets its
own connection and shared buffer, so a pipeline keeps as many rounds in flight as it has threads;
the connections of threads that ended are closed when the next one opens.

When the service is unreachable (restarting after a crash, say) a call waits up to
``connect_timeout`` for it, then raises :class:`InferenceUnavailableError`; a running pipeline
counts that round as failed and the next round tries again, with the model loaded again by the new
service on its first request. Service-side errors come back as the model layer's own types.
"""

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from services.worker.detection.letterbox import is_canvas
from services.worker.engine.staleness import StaleFrameError, current_deadline, current_turn
from services.worker.inference import SOCKET_ENV
from services.worker.inference.wire import Reader, SharedBuffer, WireError, send
from services.worker.models.errors import InferenceDeviceError, InvalidModelError, ModelNotFoundError

_MIB = 1 << 20


_SHARED: dict[str, "InferenceClient"] = {}
_SHARED_LOCK = threading.Lock()


class InferenceUnavailableError(InferenceDeviceError):
    """The inference service cannot be reached (or stopped answering)."""


_ERRORS: dict[str, type[Exception]] = {
    "not_found": ModelNotFoundError,
    "invalid_model": InvalidModelError,
    "device": InferenceDeviceError,
    "bad_request": ValueError,
    "stale": StaleFrameError,
}


class _Connection:
    def __init__(self, path: Path, timeout: float) -> None:
        self.owner = threading.current_thread()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self.reader = Reader(self.sock)
        self.buffer: SharedBuffer | None = None

    def ensure_buffer(self, nbytes: int) -> SharedBuffer:
        if self.buffer is None or self.buffer.size < nbytes:
            size = -(-max(nbytes, 4 * _MIB) // _MIB) * _MIB
            buffer = SharedBuffer(size)
            send(self.sock, {"op": "buffer", "size": size}, fd=buffer.fd)
            if self.buffer is not None:
                self.buffer.close()
            self.buffer = buffer
        return self.buffer

    def close(self) -> None:
        self.reader.close()
        if self.buffer is not None:
            self.buffer.close()
        self.sock.close()


def close_shared() -> None:
    """Closes the clients :meth:`InferenceClient.from_environment` handed out (a worker stopping whose
    solo pool ran its pipelines in its own process); the next call makes new ones."""
    with _SHARED_LOCK:
        clients = list(_SHARED.values())
        _SHARED.clear()
    for client in clients:
        client.close()


class InferenceClient:
    def __init__(self, path: Path, connect_timeout: float = 10.0, request_timeout: float = 60.0,
                 load_timeout: float = 600.0) -> None:
        self.path = path
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._load_timeout = load_timeout
        self._local = threading.local()
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> "InferenceClient | None":
        """The client of the service the worker started for this process (one per process and service),
        or None: models load in-process."""
        path = os.environ.get(SOCKET_ENV)
        if not path:
            return None
        with _SHARED_LOCK:
            client = _SHARED.get(path)
            if client is None:
                client = _SHARED[path] = cls(Path(path))
        return client

    def load(self, model_id: str) -> list[str]:
        """Load ``model_id`` in the service (if needed); its providers. Model errors raise their own types."""
        reply, _ = self._call({"op": "load", "model": model_id}, timeout=self._load_timeout)
        return [str(provider) for provider in reply["providers"]]

    def run(self, model_id: str, batch: np.ndarray) -> np.ndarray:
        """The raw output; StaleFrameError if the round's deadline (``engine.staleness``) passed in the queue."""
        # Canvases travel as they are (a quarter of the tensor's bytes; the service converts them), anything
        # else as the float32 tensor the model takes.
        batch = np.ascontiguousarray(batch, dtype=np.uint8 if is_canvas(batch) else np.float32)
        header: dict[str, Any] = {"op": "infer", "model": model_id, "shape": list(batch.shape),
                                  "dtype": batch.dtype.str}
        deadline, turn = current_deadline(), current_turn()
        if deadline is not None:
            header["deadline"] = deadline
        if isinstance(turn, str):
            header["turn"] = turn
        _, output = self._call(header, batch=batch)
        assert output is not None
        return output

    def turn(self, model_id: str, timeout: float = 10.0) -> str:
        """Wait for a turn to send ``model_id`` a request (see ``InferenceService.take_turn``); its token."""
        reply, _ = self._call({"op": "turn", "model": model_id, "timeout": timeout}, timeout=timeout + 5)
        return str(reply["turn"])

    def stats(self, window: float = 60.0) -> dict[str, Any]:
        """The service's counters; ``batch_ms`` over the batches of the last ``window`` seconds."""
        reply, _ = self._call({"op": "stats", "window": window})
        return dict(reply["stats"])

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.close()

    # ----------------------------------------------------------------- plumbing

    def _call(self, header: dict[str, Any], batch: np.ndarray | None = None,
              timeout: float | None = None) -> tuple[dict[str, Any], np.ndarray | None]:
        connection = self._connection()
        try:
            connection.sock.settimeout(timeout or self._request_timeout)
            if batch is not None:
                buffer = connection.ensure_buffer(batch.nbytes)
                buffer.array(batch.shape, batch.dtype)[...] = batch
                header["inline"] = False
            send(connection.sock, header)
            reply = connection.reader.header()
            output = self._output(connection, reply) if reply.get("ok") and "shape" in reply else None
        except (OSError, WireError) as exc:
            self._drop(connection)
            raise InferenceUnavailableError(f"the inference service at {self.path} stopped answering: {exc}") from exc
        if not reply.get("ok"):
            error = _ERRORS.get(str(reply.get("kind")), RuntimeError)
            raise error(str(reply.get("message", "inference failed")))
        return reply, output

    def _output(self, connection: _Connection, reply: dict[str, Any]) -> np.ndarray:
        shape, dtype = tuple(int(size) for size in reply["shape"]), np.dtype(str(reply["dtype"]))
        if reply.get("inline"):
            output = np.empty(shape, dtype)
            connection.reader.payload_into(output.data)
            return output
        assert connection.buffer is not None
        return connection.buffer.array(shape, dtype).copy()  # the buffer is reused by the next request

    def _connection(self) -> _Connection:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        deadline = time.monotonic() + self._connect_timeout
        while True:
            try:
                connection = _Connection(self.path, self._request_timeout)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise InferenceUnavailableError(
                        f"the inference service at {self.path} is not reachable: {exc}") from exc
                time.sleep(0.1)
        self._local.connection = connection
        with self._lock:
            gone = {c for c in self._connections if not c.owner.is_alive()}  # threads of pipelines that ended
            self._connections -= gone
            self._connections.add(connection)
        for stale in gone:
            stale.close()
        return connection

    def _drop(self, connection: _Connection) -> None:
        self._local.connection = None
        with self._lock:
            self._connections.discard(connection)
        connection.close()


class RemoteRunner:
    """A model run by the service (loaded there by :meth:`InferenceClient.load` first)."""

    def __init__(self, client: InferenceClient, model_id: str, providers: list[str]) -> None:
        self._client = client
        self._model_id = model_id
        self._providers = providers

    @property
    def providers(self) -> list[str]:
        return list(self._providers)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._client.run(self._model_id, batch)

    def take_turn(self) -> str:
        return self._client.turn(self._model_id, timeout=1.0)
