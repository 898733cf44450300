"""The inference service's wire format on its Unix socket: a 4-byte length, a JSON header, maybe raw bytes.

Tensors do not travel on the socket: each connection owns a shared-memory buffer (a ``memfd`` the
client creates and passes once with ``SCM_RIGHTS``), the client writes its batch there, the service
reads it in place and writes the model's output back into the same buffer. Only a header crosses
the socket per request (``inline`` carries the bytes on the socket instead, for an output larger
than the buffer). No names on disk, nothing to clean up: the memory goes when both ends close.
"""

import array
import json
import mmap
import os
import socket
import struct
from typing import Any

import numpy as np

_LENGTH = struct.Struct("!I")
MAX_HEADER_BYTES = 64 * 1024
_FD_SPACE = socket.CMSG_SPACE(array.array("i", [0]).itemsize * 4)


class WireError(ConnectionError):
    """The peer closed the connection or broke the framing."""


def send(sock: socket.socket, header: dict[str, Any], payload: memoryview | bytes | None = None,
         fd: int | None = None) -> None:
    body = json.dumps(header, separators=(",", ":")).encode()
    data = _LENGTH.pack(len(body)) + body
    if fd is None:
        sock.sendall(data)
    else:
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        if sent < len(data):
            sock.sendall(data[sent:])
    if payload is not None:
        sock.sendall(payload)


class Reader:
    """Reads headers (collecting any file descriptor sent with them) and payloads from one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.fds: list[int] = []

    def header(self) -> dict[str, Any]:
        (length,) = _LENGTH.unpack(self._exact(_LENGTH.size))
        if length > MAX_HEADER_BYTES:
            raise WireError(f"header of {length} bytes (limit {MAX_HEADER_BYTES})")
        decoded = json.loads(self._exact(length))
        if not isinstance(decoded, dict):
            raise WireError("a header must be a JSON object")
        return decoded

    def payload_into(self, target: memoryview) -> None:
        view, got = target.cast("B"), 0
        while got < len(view):
            count = self._sock.recv_into(view[got:])
            if count == 0:
                raise WireError("the peer closed the connection mid-payload")
            got += count

    def take_fd(self) -> int:
        if not self.fds:
            raise WireError("expected a file descriptor with this message")
        return self.fds.pop(0)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def _exact(self, size: int) -> bytes:
        chunks, got = [], 0
        while got < size:
            data, ancillary, _flags, _address = self._sock.recvmsg(size - got, _FD_SPACE)
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(raw[: len(raw) - len(raw) % fds.itemsize])
                    self.fds.extend(fds)
            if not data:
                raise WireError("the peer closed the connection")
            chunks.append(data)
            got += len(data)
        return b"".join(chunks)


class SharedBuffer:
    """A memfd mapped in this process: created by the client, or adopted from a received descriptor."""

    def __init__(self, size: int, fd: int | None = None) -> None:
        if fd is None:
            fd = os.memfd_create("vsim-inference", os.MFD_CLOEXEC)
            os.ftruncate(fd, size)
        self.fd = fd
        self.size = size
        self._map = mmap.mmap(fd, size)

    def array(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """A view of the buffer's start as an array (no copy); ValueError if it does not fit."""
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize > self.size:
            raise ValueError(f"{count * dtype.itemsize} bytes do not fit the {self.size}-byte buffer")
        return np.frombuffer(self._map, dtype=dtype, count=count).reshape(shape)

    def close(self) -> None:
        """Let go of the descriptor; the mapping goes when the last array viewing it does."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
