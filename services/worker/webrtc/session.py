"""One WebRTC peer: the answer to its offer, its video into the pipeline, the results back out.

Theory of operation
-------------------
A :class:`WebRTCSession` owns an asyncio loop (a :class:`~.network.SessionLoop`, which applies the
session's host addresses and UDP port range) running in its own daemon thread; every aiortc object lives
on that loop. Other threads reach it only through ``run_coroutine_threadsafe`` / ``call_soon_threadsafe``
and through two thread-safe hand-offs: the :class:`~.inbox.FrameInbox` (received frames, to the source
thread) and the :class:`~.relay.OutputRelay` (results, from the pipeline's post thread).

``negotiate`` checks the offer (:func:`check_offer`: an SDP with a send-and-receive video section), then on
the loop builds the answerer: an ``RTCPeerConnection`` with the configured ICE servers (an empty list when
none: no STUN/TURN at all, never aiortc's public default), applies the offer and, in the ``track`` handler,
reads the peer's first video track and adds the outgoing track to the same connection, so the answer's
video section is sendrecv. Other media sections are answered ``inactive``. The data channel the client
created (any label) is kept. aiortc's ``setLocalDescription`` gathers every candidate first, so the answer
carries them all (no trickle ICE). Any failure closes everything (peer, sockets, loop thread) before it is
raised: :class:`~services.core.errors.InvalidPayloadError` for an unusable offer,
:class:`~services.core.errors.OperationError` for a timeout or a local failure.

The peer side ends when the connection goes ``failed`` or ``closed`` or its video track ends (a track end
waits ``TRACK_END_GRACE`` for the connection state, which names the cause better), or when no frame came
for ``peer_timeout`` s (noticed by the capture); the first reason is ``end_reason``, and the capture's
``grab`` then returns False. ``close`` stops the outgoing track, closes the peer connection, cancels the
session's tasks, stops the loop, shuts its executor down and joins the thread; it is idempotent.
"""

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.exceptions import OperationError as AiortcOperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame as AVVideoFrame

from services.core.errors import InvalidPayloadError, OperationError, StreamManagerError
from services.core.redaction import redact_text
from services.infra.os_threads import name_os_thread
from services.worker.engine.capture import CaptureOptions, SourceConnectionError, SourceKind, classify
from services.worker.webrtc.inbox import FPS_PROBE_FRAMES, FrameInbox
from services.worker.webrtc.network import SessionLoop, install_address_hook
from services.worker.webrtc.options import WebRTCOptions
from services.worker.webrtc.peer_capture import PeerCapture
from services.worker.webrtc.relay import OutputRelay, WebRTCObserver

log = logging.getLogger(__name__)

MAX_OFFER_LENGTH = 256 * 1024  # characters of SDP (a browser's offer is a few kB)
TRACK_END_GRACE = 0.5  # seconds a track end waits for the connection state to name the cause
FPS_PROBE_WAIT = 1.0  # seconds after the first frame an open waits for FPS_PROBE_FRAMES frames (no declared fps)
FIRST_FRAME_TIMEOUT = 15.0  # seconds an open waits for the first frame at least (ICE and DTLS come first)
DROP_REALTIME = "realtime"
DROP_BACKLOG = "backlog"
_LIVE_STATES = ("new", "connecting", "connected")

_ids = itertools.count(1)
T = TypeVar("T")


def check_offer(sdp: Any, offer_type: Any) -> None:
    """Raises :class:`InvalidPayloadError` for an offer this side cannot answer with video both ways."""
    if offer_type != "offer":
        raise InvalidPayloadError(f"webrtc_offer.type must be 'offer', not {str(offer_type)[:40]!r}")
    if not isinstance(sdp, str) or not sdp.strip():
        raise InvalidPayloadError("webrtc_offer.sdp is empty")
    if len(sdp) > MAX_OFFER_LENGTH:
        raise InvalidPayloadError(f"webrtc_offer.sdp is {len(sdp)} characters long; at most {MAX_OFFER_LENGTH}")
    if not sdp.lstrip().startswith("v=0"):
        raise InvalidPayloadError("webrtc_offer.sdp is not an SDP session description (it must start with 'v=0')")
    try:
        description = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the malformed line makes it raise
        raise InvalidPayloadError(f"webrtc_offer.sdp cannot be parsed: {type(exc).__name__}: {exc}") from None
    video = [media for media in description.media if media.kind == "video"]
    if not video:
        kinds = ", ".join(media.kind for media in description.media) or "none"
        raise InvalidPayloadError(
            f"the WebRTC offer has no video section (media sections: {kinds}); the client must offer its "
            "camera as a video track that it both sends and receives"
        )
    first = video[0]
    if first.port == 0:
        raise InvalidPayloadError("the WebRTC offer's video section is rejected (port 0)")
    direction = first.direction or "sendrecv"
    if direction != "sendrecv":
        raise InvalidPayloadError(
            f"the WebRTC offer's video is {direction!r}; it must be 'sendrecv': the client sends its camera and "
            "receives the processed video on the same section"
        )


class WebRTCSession:
    """See the module docstring. Thread-safe; ``close`` it when done (also after a failed ``negotiate``)."""

    def __init__(self, options: WebRTCOptions) -> None:
        install_address_hook()
        self.options = options
        self._id = next(_ids)
        cause = DROP_REALTIME if options.realtime else DROP_BACKLOG
        self._inbox = FrameInbox(options.inbox_size(), cause, options.peer_timeout)
        self._loop = SessionLoop(options.host_addresses, options.port_range)
        self._relay = OutputRelay(self._loop, options)
        self.observer = WebRTCObserver(self._relay)
        self._lock = threading.Lock()
        self._negotiated = False
        self._closed = False
        self._closing = False  # loop side: our own close, not the peer's
        self._connection_state = "new"
        self._pc: RTCPeerConnection | None = None
        self._video: MediaStreamTrack | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, name=f"webrtc-{self._id}", daemon=True)
        self._thread.start()
        self._started.wait()

    # ----------------------------------------------------------------- public API

    def negotiate(self, offer_sdp: str, offer_type: str, timeout: float = 10.0) -> dict[str, str]:
        """The answer ``{"sdp", "type": "answer"}`` to the client's offer, every candidate included."""
        with self._lock:
            if self._closed:
                raise OperationError("the WebRTC session is closed")
            if self._negotiated:
                raise OperationError("the WebRTC session was already negotiated")
            self._negotiated = True
        try:
            check_offer(offer_sdp, offer_type)
            sdp = self._call(self._answer(offer_sdp), timeout, "answering the WebRTC offer")
        except BaseException:
            self.close()
            raise
        return {"sdp": sdp, "type": "answer"}

    def open_capture(self, reference: str | int, options: CaptureOptions) -> PeerCapture:
        """The Opener of engine/capture.py for this session's video; waits for the first frame.

        The first frame may take longer than ``peer_timeout`` (ICE checks and the DTLS handshake with a
        distant browser come first): it is waited for ``max(peer_timeout, FIRST_FRAME_TIMEOUT)``.
        """
        if classify(reference) is not SourceKind.WEBRTC:
            raise SourceConnectionError(f"a WebRTC session opens only webrtc: references, not {str(reference)[:80]!r}")
        if not self._negotiated:
            raise SourceConnectionError("the WebRTC session has not been negotiated")
        inbox = self._inbox
        first_frame_timeout = max(self.options.peer_timeout, FIRST_FRAME_TIMEOUT)
        if inbox.wait_for_frames(1, first_frame_timeout) == 0:
            inbox.expire_if_silent()
            why = inbox.end_reason or ("the session was closed" if inbox.closed
                                       else f"none within {first_frame_timeout:g} s of the answer")
            raise SourceConnectionError(f"no video frame from the WebRTC peer: {why}")
        fps = self.options.declared_fps
        if fps is None:
            inbox.wait_for_frames(FPS_PROBE_FRAMES, FPS_PROBE_WAIT)
            fps = inbox.measured_fps()
        return PeerCapture(inbox, float(fps or 0.0))

    @property
    def end_reason(self) -> str | None:
        """Why the peer side ended, or None (still live, or closed by this side)."""
        return self._inbox.end_reason

    def stats(self) -> dict[str, Any]:
        dropped = self._inbox.dropped()
        for cause, count in self._relay.dropped().items():
            dropped[cause] = dropped.get(cause, 0) + count
        return {
            "frames_received": self._inbox.received,
            "frames_sent": self._relay.frames_sent,
            "data_messages_sent": self._relay.data_messages_sent,
            "frames_dropped": dropped,
            "connection_state": self._connection_state,
        }

    def close(self, timeout: float = 2.0) -> None:
        """Closes the peer and stops the loop thread within about ``timeout``; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        self._inbox.close()
        if threading.current_thread() is self._thread:  # from a loop callback: finish on the loop
            self._loop.create_task(self._shutdown_and_stop())
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            future.result(max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            log.warning("webrtc-%d: the peer connection did not close within %.1f s", self._id, timeout)
        except RuntimeError:  # the loop is already stopped
            pass
        except Exception:
            log.exception("webrtc-%d: closing the peer connection failed", self._id)
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(max(0.1, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.warning("webrtc-%d: the loop thread is still running after close", self._id)
        self._connection_state = "closed"

    # ----------------------------------------------------------------- loop thread

    def _run_loop(self) -> None:
        name_os_thread()
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._started.set)
        try:
            loop.run_forever()
        finally:
            try:
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise OperationError(f"{what} took longer than {timeout:g} s") from None

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, offer_sdp: str) -> str:
        servers = [RTCIceServer(urls=list(server.urls), username=server.username, credential=server.credential)
                   for server in self.options.ice_servers]
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except AiortcOperationError as exc:
            raise InvalidPayloadError(
                f"the WebRTC offer cannot be used: {exc} (no codec in common: this side has VP8 and H264)"
            ) from None
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise InvalidPayloadError(f"the WebRTC offer cannot be used: {type(exc).__name__}: {exc}") from None
        if self._video is None:
            raise InvalidPayloadError("the WebRTC offer carries no video track to receive")
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is not self._video:
                transceiver.direction = "inactive"  # audio, a second camera: not used, not received
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except StreamManagerError:
            raise
        except Exception as exc:
            message = redact_text(f"{type(exc).__name__}: {exc}", self._secrets())
            raise OperationError(f"the WebRTC answer could not be made: {message}") from None
        answer = pc.localDescription
        if "a=candidate:" not in answer.sdp:
            where = ", ".join(self.options.host_addresses) or "every interface"
            raise OperationError(f"no ICE candidate could be gathered (host addresses: {where})")
        return str(answer.sdp)

    def _secrets(self) -> tuple[str, ...]:
        return tuple(server.credential for server in self.options.ice_servers if server.credential)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "video" or self._video is not None or self._pc is None:
            return
        self._video = track
        self._pc.addTrack(self._relay.track)
        self._spawn(self._read_video(track))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self._relay.channel is None:
            self._relay.attach(channel)

    def _on_connection_state(self) -> None:
        pc = self._pc
        if pc is None:
            return
        state = pc.connectionState
        self._connection_state = state
        log.info("webrtc-%d: connection %s", self._id, state)
        if self._closing:
            return
        if state == "failed":
            self._inbox.end("ICE failed" if pc.iceConnectionState == "failed" else "the connection to the peer failed")
            self._spawn(self._close_peer())
        elif state == "closed":
            self._inbox.end("the peer closed the connection")

    async def _read_video(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            if not isinstance(frame, AVVideoFrame):
                continue
            stamp = float(frame.time) if frame.time is not None else time.monotonic()
            self._inbox.put(frame, stamp)
        if self._closing:
            return
        await asyncio.sleep(TRACK_END_GRACE)  # a closing peer's connection state names the cause better
        self._inbox.end("the peer's video track ended")

    async def _close_peer(self) -> None:
        pc = self._pc
        if pc is not None:
            await pc.close()

    async def _shutdown(self) -> None:
        self._closing = True
        self._relay.close()
        pc = self._pc
        if pc is not None:
            try:
                await pc.close()
            except Exception:
                log.exception("webrtc-%d: closing the peer connection failed", self._id)
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _shutdown_and_stop(self) -> None:
        try:
            await self._shutdown()
        finally:
            self._loop.stop()
