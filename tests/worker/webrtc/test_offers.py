"""Negotiation: unusable offers are refused and leave nothing behind; the ICE configuration is what was asked."""

import re
import socket
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from aioice import stun

from services.core.errors import InvalidPayloadError, OperationError
from services.worker.webrtc import IceServer, WebRTCOptions, WebRTCSession
from tests.support.waiting import wait_until
from tests.support.webrtc_peer import ClientPeer
from tests.worker.webrtc.conftest import LOOPBACK, Connected, thread_names, udp_sockets

CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ (\w+)", re.MULTILINE)


@pytest.fixture
def offerer(vtest: list[np.ndarray]) -> Iterator[Callable[..., str]]:
    """Factory: ``offerer(video=..., data_channel=...)`` -> the SDP offer of a real aiortc client."""
    clients: list[ClientPeer] = []

    def offer(**kwargs: object) -> str:
        client = ClientPeer(vtest)
        clients.append(client)
        return client.offer(**kwargs)  # type: ignore[arg-type]

    yield offer
    for client in clients:
        client.close()


@pytest.fixture
def nothing_left() -> Iterator[None]:
    """The test's sessions leave no thread and no UDP socket behind."""
    threads, sockets = thread_names(), udp_sockets()
    yield
    wait_until(lambda: thread_names() <= threads and udp_sockets() == sockets, timeout=5.0,
               message=lambda: f"left: {thread_names() - threads}, {udp_sockets() - sockets} UDP sockets")


def refuse(sdp: str, offer_type: str = "offer", **options: object) -> InvalidPayloadError:
    options.setdefault("host_addresses", LOOPBACK)
    session = WebRTCSession(WebRTCOptions(**options))  # type: ignore[arg-type]
    with pytest.raises(InvalidPayloadError) as caught:
        session.negotiate(sdp, offer_type)
    assert not session._thread.is_alive()  # closed by the failure itself, before it was raised
    return caught.value


@pytest.mark.usefixtures("nothing_left")
def test_garbage_and_the_wrong_type_are_refused(offerer: Callable[..., str]) -> None:
    assert "not an SDP" in str(refuse("hello, I am not an SDP"))
    assert "empty" in str(refuse(""))
    assert "must be 'offer'" in str(refuse(offerer(), "answer"))


@pytest.mark.usefixtures("nothing_left")
def test_an_offer_without_video_is_refused(offerer: Callable[..., str]) -> None:
    error = refuse(offerer(video=None))
    assert "no video section" in str(error) and "application" in str(error)


@pytest.mark.usefixtures("nothing_left")
@pytest.mark.parametrize("direction", ["recvonly", "sendonly"])
def test_video_that_is_not_sendrecv_is_refused(offerer: Callable[..., str], direction: str) -> None:
    # recvonly: the client sends nothing; sendonly: nothing can be sent back
    assert f"video is {direction!r}" in str(refuse(offerer(video=direction)))


@pytest.mark.usefixtures("nothing_left")
def test_an_offer_aiortc_cannot_apply_is_refused_after_the_peer_was_made(offerer: Callable[..., str]) -> None:
    offer = "\r\n".join(line for line in offerer().split("\r\n") if not line.startswith("a=ice-ufrag"))
    assert "ICE username fragment" in str(refuse(offer))


@pytest.mark.usefixtures("nothing_left")
def test_a_negotiation_that_times_out_is_an_operation_error(offerer: Callable[..., str]) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a STUN server that never answers:
    silent.bind(("127.0.0.1", 0))  # gathering waits for it (seconds of retransmissions)
    try:
        server = IceServer((f"stun:127.0.0.1:{silent.getsockname()[1]}",))
        session = WebRTCSession(WebRTCOptions(host_addresses=LOOPBACK, ice_servers=(server,)))
        with pytest.raises(OperationError, match=r"longer than 0\.3 s"):
            session.negotiate(offerer(), "offer", timeout=0.3)
        assert not session._thread.is_alive()
    finally:
        silent.close()


def sections(sdp: str) -> dict[str, str]:
    """The media sections of an SDP by kind (the first of each)."""
    found: dict[str, str] = {}
    for part in sdp.split("m=")[1:]:
        found.setdefault(part.split(" ", 1)[0], part)
    return found


@pytest.mark.usefixtures("nothing_left")
def test_other_media_are_answered_inactive(offerer: Callable[..., str]) -> None:
    session = WebRTCSession(WebRTCOptions(host_addresses=LOOPBACK))
    try:
        answer = sections(session.negotiate(offerer(audio=True), "offer")["sdp"])
    finally:
        session.close()
    assert "a=inactive" in answer["audio"]  # a microphone is not received (nor decoded)
    assert "a=sendrecv" in answer["video"] and "application" in answer


# ----------------------------------------------------------------- ports and ICE servers


def free_port_range(size: int) -> tuple[int, int]:
    """``size`` consecutive UDP ports on 127.0.0.1 that are free now."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    base = probe.getsockname()[1]
    probe.close()
    for start in range(max(1024, base - 5000), 65535 - size, size):
        sockets = []
        try:
            for port in range(start, start + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return start, start + size - 1
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no free UDP port range")


def test_host_candidates_use_the_port_range(connected: Callable[..., Connected]) -> None:
    low, high = free_port_range(8)
    pair = connected(port_range=(low, high))
    assert pair.client.pc is not None
    candidates = CANDIDATE.findall(pair.client.pc.remoteDescription.sdp)
    assert candidates and all(low <= int(port) <= high for _, port, _ in candidates)
    assert pair.capture.read()[0]  # and the connection works through them


@pytest.mark.usefixtures("nothing_left")
def test_a_full_port_range_is_a_clear_operation_error(offerer: Callable[..., str]) -> None:
    low, high = free_port_range(2)
    taken = []
    try:
        for port in (low, high):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            taken.append(sock)
            sock.bind(("127.0.0.1", port))
        session = WebRTCSession(WebRTCOptions(host_addresses=LOOPBACK, port_range=(low, high)))
        with pytest.raises(OperationError, match=f"no free UDP port .* in port_range {low}-{high}"):
            session.negotiate(offerer(), "offer")
    finally:
        for sock in taken:
            sock.close()


class FakeStun:
    """A STUN server on 127.0.0.1 that answers every Binding request with ``mapped`` and counts them."""

    def __init__(self, mapped: tuple[str, int]) -> None:
        self.mapped = mapped
        self.requests = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-fake-stun", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, address = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            request = stun.parse_message(data)
            if request.message_method == stun.Method.BINDING and request.message_class == stun.Class.REQUEST:
                self.requests += 1
                response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, request.transaction_id,
                                        {"XOR-MAPPED-ADDRESS": self.mapped})
                self.sock.sendto(bytes(response), address)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()


@pytest.fixture
def fake_stun() -> Iterator[FakeStun]:
    server = FakeStun(("198.51.100.7", 40000))
    yield server
    server.close()


def test_without_ice_servers_there_is_no_stun_and_only_host_candidates(
    offerer: Callable[..., str], fake_stun: FakeStun, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    resolve = socket.gethostbyname

    def recording(host: str) -> str:  # aioice resolves a STUN/TURN server's name before it sends to it
        lookups.append(host)
        return resolve(host)

    monkeypatch.setattr(socket, "gethostbyname", recording)
    # The control: a configured STUN server is asked, and its answer becomes a srflx candidate.
    stun_session = WebRTCSession(WebRTCOptions(host_addresses=LOOPBACK,
                                               ice_servers=(IceServer((f"stun:127.0.0.1:{fake_stun.port}",)),)))
    try:
        types = {kind for _, _, kind in CANDIDATE.findall(stun_session.negotiate(offerer(), "offer")["sdp"])}
    finally:
        stun_session.close()
    assert types == {"host", "srflx"} and fake_stun.requests >= 1 and lookups == ["127.0.0.1"]
    # No ICE servers: nothing is looked up or asked (not aiortc's public default either), host candidates only.
    lookups.clear()
    requests = fake_stun.requests
    session = WebRTCSession(WebRTCOptions())  # every interface, as a deployment would
    try:
        candidates = CANDIDATE.findall(session.negotiate(offerer(), "offer")["sdp"])
    finally:
        session.close()
    assert candidates and {kind for _, _, kind in candidates} == {"host"}
    assert lookups == [] and fake_stun.requests == requests
