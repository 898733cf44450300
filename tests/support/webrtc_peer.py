"""A real aiortc client peer for tests and benchmarks: it streams frames of data/media/vtest.avi to a WebRTC
pipeline (or a bare session) and records what comes back.

The client runs on its own asyncio loop in a thread, as a browser would be another process: it offers a
sendrecv video track (and, unless told otherwise, a data channel, created before the offer as the
reference's client does), sends the frames at ``fps`` with their index drawn into them as a row of
black/white blocks (:func:`mark`, read back by :func:`index_of`, robust to the VP8 compression), and keeps
the size, index and arrival time of every frame and every data channel message it receives. ``sent_at``
holds when each index left the track: a frame that comes back is matched with the one sent by its index,
whatever the codecs did to timestamps (glass-to-glass latency).
"""

import asyncio
import fractions
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from tests.support.pipelines import read_frames

MEDIA = Path(__file__).resolve().parents[2] / "data" / "media"
BITS = 10  # the frame index modulo 1024, in blocks along the top edge
BLOCK = 48  # pixels per block side
T = TypeVar("T")


def vtest_frames(count: int) -> list[np.ndarray]:
    """The first ``count`` frames of vtest.avi (768x576 BGR)."""
    path = MEDIA / "vtest.avi"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make setup`")
    frames = list(read_frames(path, count))
    assert len(frames) == count, f"vtest.avi has fewer than {count} frames"
    return frames


def mark(image: np.ndarray, index: int) -> np.ndarray:
    """A copy of ``image`` with ``index`` drawn as BITS black/white blocks along its top edge."""
    marked = image.copy()
    for bit in range(BITS):
        value = 255 if (index >> bit) & 1 else 0
        marked[:BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = value
    return marked


def index_of(image: np.ndarray) -> int:
    """The index :func:`mark` drew (modulo 1024), read from the centre of each block."""
    index = 0
    margin = BLOCK // 4
    for bit in range(BITS):
        block = image[margin:BLOCK - margin, bit * BLOCK + margin:(bit + 1) * BLOCK - margin]
        if float(block.mean()) > 127:
            index |= 1 << bit
    return index


class FileTrack(MediaStreamTrack):
    """Sends the images in a loop at ``fps``, each marked with its index; ``pause`` makes it silent."""

    kind = "video"

    def __init__(self, images: list[np.ndarray], fps: float, sent_at: dict[int, float] | None = None) -> None:
        super().__init__()
        self._images = images
        self._fps = fps
        self.sent_at = sent_at if sent_at is not None else {}  # index -> time.monotonic() it left the track
        self.sent = 0
        self._start: float | None = None
        self.paused = asyncio.Event()

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent / self._fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        while self.paused.is_set():  # silent: the connection stays up, no frame goes out
            await asyncio.sleep(0.05)
        index = self.sent
        frame = VideoFrame.from_ndarray(mark(self._images[index % len(self._images)], index), format="bgr24")
        frame.pts = round(index * 90_000 / self._fps)
        frame.time_base = fractions.Fraction(1, 90_000)
        self.sent_at[index % (1 << BITS)] = time.monotonic()
        self.sent += 1
        return frame


class ClientPeer:
    """The offerer (module docstring). ``close`` closes the peer connection and stops the loop thread."""

    def __init__(self, images: list[np.ndarray], fps: float = 15.0, keep_images: int = 5) -> None:
        self._images = images
        self._fps = fps
        self._keep_images = keep_images
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="test-client-peer", daemon=True)
        self._thread.start()
        self.pc: RTCPeerConnection | None = None
        self.track: FileTrack | None = None
        self.channel: Any = None
        self.sizes: list[tuple[int, int]] = []  # of the frames received back
        self.images: list[np.ndarray] = []  # the last few frames received back
        self.messages: list[str] = []
        self.sent_at: dict[int, float] = {}  # frame index -> when it left the track (time.monotonic())
        self.arrivals: list[tuple[int, float]] = []  # (frame index, time.monotonic()) of each frame received back
        self._lock = threading.Lock()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    # ----------------------------------------------------------------- offers

    def offer(self, video: str | None = "sendrecv", data_channel: bool = True, audio: bool = False) -> str:
        """Creates the peer and its offer: ``video`` is the video section's direction (None: no video);
        ``audio`` adds a sendrecv audio section (a microphone)."""
        return self.call(self._offer(video, data_channel, audio))

    async def _offer(self, video: str | None, data_channel: bool, audio: bool) -> str:
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if audio:
            pc.addTransceiver("audio", direction="sendrecv")
        if video == "sendrecv":
            self.track = FileTrack(self._images, self._fps, self.sent_at)
            pc.addTrack(self.track)
        elif video is not None:
            pc.addTransceiver("video", direction=video)
        if data_channel:
            self.channel = pc.createDataChannel("inference")
            self.channel.on("message", self._on_message)
        pc.on("track", self._on_track)
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)

    def accept(self, answer: dict[str, str]) -> None:
        assert self.pc is not None
        self.call(self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])))

    # ----------------------------------------------------------------- what comes back

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self.loop.create_task(self._consume(track))

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrived = time.monotonic()
            assert isinstance(frame, VideoFrame)
            image = frame.to_ndarray(format="bgr24")
            with self._lock:
                self.sizes.append((frame.width, frame.height))
                marked = image.shape[1] >= BITS * BLOCK and image.shape[0] >= BLOCK  # else not our frame size
                self.arrivals.append((index_of(image) if marked else -1, arrived))
                if self._keep_images:
                    self.images = [*self.images, image][-self._keep_images:]

    def _on_message(self, message: str) -> None:
        with self._lock:
            self.messages.append(message)

    def received_sizes(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self.sizes)

    def received_messages(self) -> list[str]:
        with self._lock:
            return list(self.messages)

    def send(self, message: str) -> None:
        self.loop.call_soon_threadsafe(self.channel.send, message)

    def channel_open(self) -> bool:
        return self.channel is not None and self.channel.readyState == "open"

    # ----------------------------------------------------------------- control

    def pause(self) -> None:
        assert self.track is not None
        self.loop.call_soon_threadsafe(self.track.paused.set)

    def sent(self) -> int:
        return self.track.sent if self.track is not None else 0

    def received_arrivals(self) -> list[tuple[int, float]]:
        with self._lock:
            return list(self.arrivals)

    @property
    def connection_state(self) -> str:
        return self.pc.connectionState if self.pc is not None else "new"

    def close_peer(self) -> None:
        if self.pc is not None:
            self.call(self.pc.close())

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self.close_peer()
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(5.0)
