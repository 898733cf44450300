"""Length-prefixed framing of the TCP protocol: bytes in, complete frame bodies out. No I/O.

Theory of operation: a frame is a 4-byte unsigned big-endian length followed by exactly that many
body bytes (UTF-8 JSON). TCP delivers a byte stream, so one read may hold half a header, several
frames, or a frame cut anywhere. The socket code hands every read to :meth:`FrameDecoder.feed`,
which appends it to a buffer and returns every frame now complete, keeping the remainder. The
length is checked against a cap as soon as the header is complete, before any body arrives, so a
hostile header cannot make us buffer gigabytes; after that error the decoder refuses further
input, because the stream can no longer be resynchronised and the connection must be closed.
"""

import json
from datetime import date, datetime
from enum import Enum
from typing import Any

from services.core.errors import InvalidPayloadError

HEADER_SIZE = 4
MAX_ENCODABLE = 2 ** (8 * HEADER_SIZE) - 1
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024


class FrameTooLargeError(InvalidPayloadError):
    """A frame announced (or asked to carry) more bytes than the cap allows."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(
            f"frame of {size} bytes exceeds the maximum frame size of {cap} bytes",
            f"The message is too large ({size} bytes; the limit is {cap} bytes).",
        )
        self.size = size
        self.cap = cap


def encode_frame(payload: bytes) -> bytes:
    """``payload`` behind its 4-byte big-endian length header."""
    if len(payload) > MAX_ENCODABLE:
        raise FrameTooLargeError(len(payload), MAX_ENCODABLE)
    return len(payload).to_bytes(HEADER_SIZE, "big") + payload


def encode_message(obj: dict[str, Any]) -> bytes:
    """``obj`` as one frame, serialised like the reference (``json.dumps`` defaults, UTF-8)."""
    return encode_frame(encode_json(obj))


def encode_json(obj: Any) -> bytes:
    """``obj`` serialised like the reference (``json.dumps`` defaults, UTF-8), without a frame header."""
    return _ENCODER.encode(obj).encode("utf-8")


def _json_default(obj: object) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return obj.value
    raise TypeError(f"Type {type(obj)} not serializable")


# json.dumps's defaults, made once: json.dumps builds a new encoder on every call given a ``default``.
_ENCODER = json.JSONEncoder(default=_json_default)


class FrameDecoder:
    """Reassembles frame bodies from arbitrarily split or merged reads of one connection."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not 0 <= max_frame_size <= MAX_ENCODABLE:
            raise ValueError(f"max_frame_size must be within 0..{MAX_ENCODABLE}, got {max_frame_size}")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._failure: FrameTooLargeError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete frame (header bytes included)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Every frame body completed by ``data``, in order (empty bodies included).

        Raises :class:`FrameTooLargeError` when a header announces more than ``max_frame_size``
        (frames completed earlier in the same ``data`` are discarded with the connection); from
        then on every call raises it again.
        """
        if self._failure is not None:
            raise self._failure
        if not self._buffer and len(data) >= HEADER_SIZE:  # the usual read: exactly one whole frame
            size = int.from_bytes(data[:HEADER_SIZE], "big")
            if len(data) == HEADER_SIZE + size and size <= self.max_frame_size:
                return [bytes(data[HEADER_SIZE:])]
        self._buffer += data
        frames: list[bytes] = []
        offset = 0  # consumed bytes; the buffer is compacted once per feed, not once per frame
        try:
            while (found := self._frame_at(offset)) is not None:
                body, offset = found
                frames.append(body)
        finally:
            del self._buffer[: len(self._buffer) if self._failure else offset]
        return frames

    def _frame_at(self, offset: int) -> tuple[bytes, int] | None:
        """The frame body starting at ``offset`` and the offset after it, if complete."""
        if len(self._buffer) - offset < HEADER_SIZE:
            return None
        end = offset + HEADER_SIZE + self._read_header(offset)
        if len(self._buffer) < end:
            return None
        return bytes(self._buffer[offset + HEADER_SIZE : end]), end

    def _read_header(self, offset: int) -> int:
        size = int.from_bytes(self._buffer[offset : offset + HEADER_SIZE], "big")
        if size > self.max_frame_size:
            self._failure = FrameTooLargeError(size, self.max_frame_size)
            raise self._failure
        return size
