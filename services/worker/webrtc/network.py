"""The local side of a session's ICE: which addresses host candidates use and which UDP ports they bind.

Theory of operation
-------------------
Every session runs its peer connection on its own :class:`SessionLoop`, an asyncio selector loop that
carries the session's network choices, so that sessions in one process never share them:

* Host addresses. aioice asks its module-level ``get_host_addresses`` for the addresses to gather host
  candidates on. :func:`install_address_hook` replaces that function, once per process, with one that asks
  the running loop: on a :class:`SessionLoop` it answers with the session's ``host_addresses`` (or, when
  none are configured, every interface's address as aioice does, and 127.0.0.1 where there is no other);
  on any other loop it calls aioice's own function, so nothing else in the process changes.
* Port range. aioice binds each host candidate with ``create_datagram_endpoint(local_addr=(address, 0))``.
  With a ``port_range``, the loop turns such a request for port 0 into binds on the ports of the range,
  from a random start, skipping the ports in use; when none is free it raises
  :class:`~services.core.errors.OperationError` (which aioice does not catch, so the negotiation fails with
  it). Sockets bound any other way (TURN, mDNS) are left alone.
"""

import asyncio
import errno
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import aioice.ice

from services.core.errors import OperationError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

_hook_lock = threading.Lock()
_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None


class SessionLoop(asyncio.SelectorEventLoop):
    """An event loop that applies one session's host addresses and UDP port range (module docstring)."""

    def __init__(self, host_addresses: tuple[str, ...] = (), port_range: tuple[int, int] | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__()
        self.host_addresses = host_addresses
        self.port_range = port_range
        self._rng = rng or random.Random()

    def candidate_addresses(self, use_ipv4: bool, use_ipv6: bool) -> list[str]:
        """The addresses host candidates are gathered on."""
        if self.host_addresses:
            return [address for address in self.host_addresses
                    if (use_ipv6 if ":" in address else use_ipv4)]
        assert _original_get_host_addresses is not None
        found = _original_get_host_addresses(use_ipv4, use_ipv6)
        return found or ([LOOPBACK] if use_ipv4 else [])

    async def create_datagram_endpoint(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None, remote_addr: tuple[str, int] | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        if self.port_range is None or local_addr is None or local_addr[1] != 0 or remote_addr is not None:
            return await super().create_datagram_endpoint(
                protocol_factory, local_addr=local_addr, remote_addr=remote_addr, **kwargs
            )
        host = local_addr[0]
        low, high = self.port_range
        start = self._rng.randrange(low, high + 1)
        for offset in range(high - low + 1):
            port = low + (start - low + offset) % (high - low + 1)
            try:
                return await super().create_datagram_endpoint(protocol_factory, local_addr=(host, port), **kwargs)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise  # e.g. an address not on this host: aioice skips it
        raise OperationError(
            f"no free UDP port for a host candidate on {host} in port_range {low}-{high}",
            "The WebRTC session found no free UDP port in its configured range.",
        )


def install_address_hook() -> None:
    """Routes aioice's host-address lookup through the running loop (module docstring); idempotent."""
    global _original_get_host_addresses
    with _hook_lock:
        if _original_get_host_addresses is not None:
            return
        _original_get_host_addresses = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if isinstance(loop, SessionLoop):
        return loop.candidate_addresses(use_ipv4, use_ipv6)
    assert _original_get_host_addresses is not None
    return _original_get_host_addresses(use_ipv4, use_ipv6)

