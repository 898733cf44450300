"""What a WebRTC session is configured with: outputs, pacing, ICE servers and the local network side."""

import ipaddress
from dataclasses import dataclass, field

from aiortc.rtcicetransport import parse_stun_turn_uri

# Frames a realtime session keeps waiting for the pipeline: the freshest, plus one arriving while it is taken.
REALTIME_INBOX = 2


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server (``stun:host[:port]``, ``turn:host[:port][?transport=udp|tcp]``, ``turns:...``).

    The credential never appears in ``repr`` (nor in any log line or status).
    """

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):
            raise ValueError("IceServer.urls must be a tuple of URLs, not one string")
        if not self.urls:
            raise ValueError("an ICE server needs at least one URL")
        for url in self.urls:
            try:
                parse_stun_turn_uri(url)
            except ValueError as exc:
                raise ValueError(f"invalid ICE server URL {_public_url(url)!r}: {exc}") from None
            if url.startswith("turn") and (self.username is None or self.credential is None):
                raise ValueError(f"the TURN server {_public_url(url)!r} needs a username and a credential")


@dataclass(frozen=True, slots=True)
class WebRTCOptions:
    """A session's configuration (see the package docstring for how each field is used).

    ``stream_output``: None sends the input frame back; ``""`` the first image among the round's outputs; a
    name that output's image. ``data_output``: the output sent on the data channel (None: nothing).
    ``realtime``: keep only the freshest frames (drop the oldest, cause ``realtime``); otherwise every frame
    waits, at most ``backlog`` of them (then the oldest is dropped, cause ``backlog``). ``peer_timeout``:
    seconds without a frame from the peer before the source ends. ``ice_servers`` empty: no STUN/TURN at all
    (host candidates only). ``host_addresses`` empty: every interface's address (127.0.0.1 when there is no
    other); else only these. ``port_range``: host candidates bind a UDP port in this inclusive range.
    ``declared_fps``: the peer's frame rate when known, else measured over the first frames.
    ``output_names``: the workflow's output names, when known, to check the names a client switches to.
    """

    stream_output: str | None = None
    data_output: str | None = None
    realtime: bool = True
    peer_timeout: float = 10.0
    ice_servers: tuple[IceServer, ...] = ()
    host_addresses: tuple[str, ...] = ()
    port_range: tuple[int, int] | None = None
    backlog: int = 64
    declared_fps: float | None = None
    output_names: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.peer_timeout > 0:
            raise ValueError("peer_timeout must be > 0")
        if self.backlog < 1:
            raise ValueError("backlog must be >= 1")
        if self.declared_fps is not None and not self.declared_fps > 0:
            raise ValueError("declared_fps must be > 0")
        for address in self.host_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"host address {address!r} is not an IP address") from None
        if self.port_range is not None:
            low, high = self.port_range
            if not 1 <= low <= high <= 65535:
                raise ValueError(f"port_range {low}-{high} must satisfy 1 <= low <= high <= 65535")

    def inbox_size(self) -> int:
        """How many received frames may wait for the pipeline."""
        return REALTIME_INBOX if self.realtime else self.backlog


def _public_url(url: str) -> str:
    """A URL for an error message: STUN/TURN URLs carry no credentials, but keep only its first 200 characters."""
    return url[:200]
