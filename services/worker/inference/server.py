"""The inference service's Unix socket: one thread per connection (each pipeline inference thread holds one).

Requests on a connection are answered in order, one at a time: a pipeline keeps several rounds in
flight by using several connections. Ops (headers, ``services.worker.inference.wire``):

- ``buffer`` {size} + a memfd: the connection's shared buffer from now on;
- ``load`` {model}: load the model if needed -> {providers};
- ``turn`` {model, timeout}: wait for a turn -> {turn} (a live pipeline, before it picks a frame);
- ``infer`` {model, shape, dtype, inline, deadline?, turn?}: the batch is in the buffer (or follows inline) -> the
  output's {shape, dtype, inline}, the output in the buffer (or following inline). The batch is a float32
  tensor, or a detector's letterboxed uint8 canvases (``detection.letterbox``), which the service
  converts into the batch it runs;
- ``stats`` {window?}: the service's counters, and the run times of the batches of the last ``window`` s (60).

Errors answer ``{"ok": false, "kind", "message"}`` and keep the connection; a broken connection
only ends its own thread. The socket lives in a directory only this user can enter.
"""

import contextlib
import logging
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import numpy as np

from services.infra.os_threads import name_os_thread
from services.worker.inference.service import (
    MAX_FRAMES_PER_REQUEST,
    BadRequestError,
    DeadlineMissedError,
    InferenceService,
)
from services.worker.inference.wire import Reader, SharedBuffer, WireError, send
from services.worker.models.errors import InferenceDeviceError, InvalidModelError, ModelNotFoundError

log = logging.getLogger(__name__)

MAX_BUFFER_BYTES = 1 << 30
# The longest the serving (main) thread stays in accept(): a SIGTERM the kernel delivers to another of the process's
# threads (onnxruntime's, a runner) does not interrupt accept(), and Python runs its handler only in the main thread,
# once it is back in the interpreter: without a wake-up the service never stopped (measured).
ACCEPT_WAKE = 0.5
_BATCH_DTYPES: dict[str, np.dtype[Any]] = {np.dtype(dtype).str: np.dtype(dtype) for dtype in (np.float32, np.uint8)}


def error_kind(exc: BaseException) -> str:
    """The wire name of an error (the client raises the matching type)."""
    if isinstance(exc, DeadlineMissedError):
        return "stale"
    if isinstance(exc, ModelNotFoundError):
        return "not_found"
    if isinstance(exc, InvalidModelError):
        return "invalid_model"
    if isinstance(exc, InferenceDeviceError):
        return "device"
    if isinstance(exc, (BadRequestError, ValueError)):
        return "bad_request"
    return "internal"


class InferenceServer:
    def __init__(self, service: InferenceService, path: Path) -> None:
        self._service = service
        self._path = path
        self._listener: socket.socket | None = None
        self._closed = threading.Event()

    def bind(self) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(self._path.parent.stat().st_mode) & 0o077:
            os.chmod(self._path.parent, 0o700)
        if self._path.is_socket():
            self._path.unlink()  # left by a service that died: our parent owns this name
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self._path))
        os.chmod(self._path, 0o600)
        listener.listen(128)
        self._listener = listener

    def serve_forever(self) -> None:
        assert self._listener is not None, "bind() first"
        self._listener.settimeout(ACCEPT_WAKE)  # the accepted connections stay blocking
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue  # back in the interpreter: a pending signal's handler runs now
            except OSError:
                if self._closed.is_set():
                    return
                raise
            threading.Thread(target=self._serve, args=(connection,), name="connection", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def _serve(self, connection: socket.socket) -> None:
        name_os_thread()
        reader, buffer = Reader(connection), None
        try:
            while True:
                header = reader.header()
                op = header.get("op")
                if op == "buffer":
                    buffer = self._adopt(reader, header, buffer)
                    continue  # no reply: the next request uses it
                try:
                    reply, payload = self._answer(op, header, reader, buffer)
                except (WireError, OSError):
                    raise
                except Exception as exc:
                    reply, payload = {"ok": False, "kind": error_kind(exc), "message": str(exc)}, None
                send(connection, reply, payload)
        except (WireError, OSError):
            pass  # the pipeline went away (ended, crashed): only its connection is affected
        except Exception:
            log.exception("inference connection failed")
        finally:
            reader.close()
            if buffer is not None:
                buffer.close()
            connection.close()

    def _adopt(self, reader: Reader, header: dict[str, Any], old: SharedBuffer | None) -> SharedBuffer:
        size = int(header.get("size", 0))
        fd = reader.take_fd()
        if not 0 < size <= MAX_BUFFER_BYTES or os.fstat(fd).st_size < size:
            os.close(fd)
            raise WireError(f"bad shared buffer of {size} bytes")
        if old is not None:
            old.close()
        return SharedBuffer(size, fd)

    def _answer(self, op: Any, header: dict[str, Any], reader: Reader,
                buffer: SharedBuffer | None) -> tuple[dict[str, Any], memoryview | None]:
        if op == "load":
            runner = self._service.load(str(header["model"]))
            return {"ok": True, "providers": runner.providers}, None
        if op == "stats":
            window = header.get("window", 60.0)
            if not isinstance(window, int | float) or window <= 0:
                raise BadRequestError(f"stats window must be a positive number of seconds, got {window!r}")
            return {"ok": True, "stats": self._service.stats(float(window))}, None
        if op == "turn":
            timeout = min(float(header.get("timeout", 10.0)), 60.0)
            return {"ok": True, "turn": self._service.take_turn(str(header["model"]), timeout)}, None
        if op != "infer":
            raise BadRequestError(f"unknown op {op!r}")
        batch = self._batch(header, reader, buffer)
        deadline, turn = header.get("deadline"), header.get("turn")
        output = np.ascontiguousarray(self._service.infer(
            str(header["model"]), batch, deadline=float(deadline) if isinstance(deadline, (int, float)) else None,
            turn=turn if isinstance(turn, str) else None))
        if buffer is not None and output.nbytes <= buffer.size:
            buffer.array(output.shape, output.dtype)[...] = output
            return {"ok": True, "shape": list(output.shape), "dtype": output.dtype.str, "inline": False}, None
        return ({"ok": True, "shape": list(output.shape), "dtype": output.dtype.str, "inline": True},
                output.data.cast("B"))

    def _batch(self, header: dict[str, Any], reader: Reader, buffer: SharedBuffer | None) -> np.ndarray:
        shape = tuple(int(size) for size in header.get("shape", ()))
        if len(shape) != 4 or not 1 <= shape[0] <= MAX_FRAMES_PER_REQUEST or min(shape) < 1:
            raise WireError(f"bad batch shape {list(shape)}")  # the payload's size is unknown: drop the connection
        dtype = _BATCH_DTYPES.get(str(header.get("dtype")))
        if dtype is None:
            raise WireError(f"batches are float32 tensors or uint8 canvases ({', '.join(_BATCH_DTYPES)}), "
                            f"got {header.get('dtype')!r}")
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > MAX_BUFFER_BYTES:
            raise WireError(f"a batch of shape {list(shape)} is over {MAX_BUFFER_BYTES} bytes")
        if header.get("inline"):
            batch = np.empty(shape, dtype)
            reader.payload_into(batch.data)
            return batch
        if buffer is None:
            raise BadRequestError("no shared buffer on this connection")
        return buffer.array(shape, dtype)
