"""Fixtures for the WebRTC tests: vtest.avi frames, and a connected (client peer, session) pair."""

import threading
from collections.abc import Callable, Iterator

import numpy as np
import psutil
import pytest

from services.worker.engine.capture import CaptureOptions
from services.worker.webrtc import WebRTCOptions, WebRTCSession
from services.worker.webrtc.peer_capture import PeerCapture
from tests.support.webrtc_peer import ClientPeer, vtest_frames

LOOPBACK = ("127.0.0.1",)


@pytest.fixture(scope="session")
def vtest() -> list[np.ndarray]:
    return vtest_frames(30)


class Connected:
    """A client peer streaming vtest.avi to a session that answered it; ``capture`` opened on first use."""

    def __init__(self, client: ClientPeer, session: WebRTCSession) -> None:
        self.client = client
        self.session = session
        self._capture: PeerCapture | None = None

    @property
    def capture(self) -> PeerCapture:
        if self._capture is None:
            self._capture = self.session.open_capture("webrtc:peer", CaptureOptions())
        return self._capture

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.session.close()


def connect(vtest: list[np.ndarray], options: WebRTCOptions, fps: float = 15.0) -> Connected:
    client = ClientPeer(vtest, fps)
    session = WebRTCSession(options)
    try:
        answer = session.negotiate(client.offer(), "offer")
        client.accept(answer)
    except BaseException:
        client.close()
        session.close()
        raise
    return Connected(client, session)


@pytest.fixture
def connected(vtest: list[np.ndarray]) -> Iterator[Callable[..., Connected]]:
    """Factory: ``connected(**options)`` -> a negotiated pair on loopback, closed after the test."""
    made: list[Connected] = []

    def make(fps: float = 15.0, **options: object) -> Connected:
        options.setdefault("host_addresses", LOOPBACK)
        pair = connect(vtest, WebRTCOptions(**options), fps)  # type: ignore[arg-type]
        made.append(pair)
        return pair

    yield make
    for pair in made:
        pair.close()


def udp_sockets() -> int:
    """UDP sockets this process holds."""
    return len(psutil.Process().net_connections(kind="udp"))


def thread_names() -> set[str]:
    return {thread.name for thread in threading.enumerate()}
