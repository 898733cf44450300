"""A WebRTC peer for tests and benchmarks: streams video frames to a WebRTC pipeline, keeps what comes back.

It plays the browser's part with aiortc: a video track that is sent and received (the pipeline answers
with its annotated frames on the same transceiver) and a data channel it opens itself, as the
reference's client does, before the offer. ICE gathering completes before the offer is returned (no
trickle ICE). Everything runs on the peer's own asyncio loop in a thread; the methods are blocking.

Each sent frame carries its index in a band of black and white blocks at its top (``stamp``), so a
frame that comes back can be matched with the one sent, whatever the codecs did to timestamps:
``received`` records (index, arrival time, image) and ``sent_at`` the send time of each index.
"""

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

BITS = 16  # frame indices modulo 2**16
BAND = 24  # pixels: the height of the stamp band
CLOCK = 90_000  # the video RTP clock


def stamp(image: np.ndarray, index: int) -> np.ndarray:
    """A copy of ``image`` whose top band encodes ``index`` in BITS blocks (white = 1)."""
    stamped = image.copy()
    width = stamped.shape[1] // BITS
    for bit in range(BITS):
        value = 255 if (index >> bit) & 1 else 0
        stamped[:BAND, bit * width:(bit + 1) * width] = value
    return stamped


def read_stamp(image: np.ndarray) -> int:
    """The index a stamped frame carries (the mean of the middle of each block, thresholded)."""
    width = image.shape[1] // BITS
    index = 0
    for bit in range(BITS):
        block = image[BAND // 4:3 * BAND // 4, bit * width + width // 4:(bit + 1) * width - width // 4]
        if float(block.mean()) > 127:
            index |= 1 << bit
    return index


class _FramesTrack(MediaStreamTrack):
    """Sends ``frames`` in a loop at ``fps``, each stamped with its index."""

    kind = "video"

    def __init__(self, frames: Sequence[np.ndarray], fps: float, peer: "WebRTCPeer") -> None:
        super().__init__()
        self._frames = frames
        self._fps = fps
        self._peer = peer
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._peer.stop_sending.is_set():
            self.stop()
            raise MediaStreamError
        index = self._count
        self._count += 1
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + index / self._fps - time.monotonic()))
        image = stamp(self._frames[index % len(self._frames)], index % (1 << BITS))
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = round(index * CLOCK / self._fps)
        frame.time_base = Fraction(1, CLOCK)
        self._peer.sent_at[index % (1 << BITS)] = time.monotonic()
        self._peer.frames_sent += 1
        return frame


@dataclass
class Received:
    index: int
    at: float  # time.monotonic() of arrival
    shape: tuple[int, ...]


@dataclass
class WebRTCPeer:
    frames: Sequence[np.ndarray]
    fps: float = 15.0
    keep_images: int = 2  # the newest received images kept (for checks of their content)
    received: list[Received] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    sent_at: dict[int, float] = field(default_factory=dict)
    frames_sent: int = 0
    stop_sending: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="webrtc-test-peer", daemon=True)
        self._thread.start()
        self._pc: RTCPeerConnection | None = None
        self._channel: Any = None
        self._readers: list[asyncio.Task[None]] = []
        self.connection_states: list[str] = []

    def _run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # ------------------------------------------------------------------ signalling

    def offer(self, video: bool = True, channel: bool = True) -> dict[str, str]:
        """The offer to send in ``webrtc_offer`` (candidates gathered)."""
        return dict(self._run(self._offer(video, channel)))

    async def _offer(self, video: bool, channel: bool) -> dict[str, str]:
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.on("connectionstatechange", lambda: self.connection_states.append(pc.connectionState))
        pc.on("track", self._on_track)
        if channel:
            self._channel = pc.createDataChannel("inference")
            self._channel.on("message", self._on_message)
        if video:
            pc.addTrack(_FramesTrack(self.frames, self.fps, self))
        else:  # only a data channel, or audio: an offer a video pipeline must refuse
            pc.createDataChannel("only-data") if not channel else None
        await pc.setLocalDescription(await pc.createOffer())
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    def accept(self, answer: dict[str, Any]) -> None:
        """Applies the pipeline's answer (``sdp`` and ``type`` of the reply)."""
        self._run(self._accept(answer))

    async def _accept(self, answer: dict[str, Any]) -> None:
        assert self._pc is not None
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

    # ------------------------------------------------------------------ what comes back

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            image = frame.to_ndarray(format="bgr24")
            self.received.append(Received(read_stamp(image), time.monotonic(), image.shape))
            self.images = [*self.images[-(self.keep_images - 1):], image] if self.keep_images else []

    def _on_message(self, message: str | bytes) -> None:
        try:
            self.messages.append(json.loads(message))
        except (TypeError, ValueError):
            self.messages.append(message)

    def send_message(self, message: dict[str, Any]) -> None:
        """Sends JSON on the data channel (e.g. to switch the outputs)."""
        self._loop.call_soon_threadsafe(self._channel.send, json.dumps(message))

    @property
    def connection_state(self) -> str:
        return self._pc.connectionState if self._pc is not None else "new"

    # ------------------------------------------------------------------ the end

    def vanish(self) -> None:
        """Stops sending without a goodbye (a browser tab killed, a network cut): media stops, no close."""
        self.stop_sending.set()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            if self._pc is not None:
                self._run(self._pc.close(), timeout=10.0)
            for reader in self._readers:
                self._loop.call_soon_threadsafe(reader.cancel)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> "WebRTCPeer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
