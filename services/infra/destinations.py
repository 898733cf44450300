"""Resolving and connecting to a destination a client named, checked against a :class:`NetworkPolicy`.

The policy and the refusal sentences are the core's (``services.core.networks``); this is their I/O side,
shared by the manager (a UDP sink checked at INIT) and the worker (UDP, webhook and e-mail sinks): the name
is resolved ONCE, every address checked, and connections go only to a checked address.
"""

import asyncio
import socket

from services.core.networks import AddrInfo, DestinationRefusedError, NetworkPolicy, Resolver, refusal

RESOLVE_TIMEOUT = 5.0  # seconds the manager waits for a sink host's name to resolve


def resolve_checked(host: str, port: int, policy: NetworkPolicy, kind: socket.SocketKind = socket.SOCK_STREAM,
                    resolve: Resolver | None = None) -> list[AddrInfo]:
    """Every address ``host`` resolves to (``resolve``, default ``socket.getaddrinfo``), once all are allowed;
    raises :class:`DestinationRefusedError`."""
    try:
        addresses = (resolve or socket.getaddrinfo)(host, port, type=kind)
    except (OSError, UnicodeError) as exc:
        raise DestinationRefusedError(f"host {host!r} cannot be resolved ({exc})") from exc
    return _allowed(host, addresses, policy)


async def resolve_checked_async(host: str, port: int, policy: NetworkPolicy,
                                kind: socket.SocketKind = socket.SOCK_DGRAM,
                                timeout: float = RESOLVE_TIMEOUT) -> list[AddrInfo]:
    """:func:`resolve_checked` for an event loop, the resolution bounded by ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            addresses: list[AddrInfo] = await loop.getaddrinfo(host, port, type=kind)
    except TimeoutError:
        raise DestinationRefusedError(f"host {host!r} could not be resolved within {timeout:g} s") from None
    except (OSError, UnicodeError) as exc:
        raise DestinationRefusedError(f"host {host!r} cannot be resolved ({exc})") from exc
    return _allowed(host, addresses, policy)


def _allowed(host: str, addresses: list[AddrInfo], policy: NetworkPolicy) -> list[AddrInfo]:
    reason = refusal(host, addresses, policy)
    if reason is not None:
        raise DestinationRefusedError(reason)
    return addresses


def connect_checked(host: str, port: int, policy: NetworkPolicy, timeout: float | None) -> socket.socket:
    """A TCP connection to ``host``: resolved and checked once, then each checked address tried in turn
    (as ``socket.create_connection`` does), never resolving the name again."""
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in resolve_checked(host, port, policy):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    assert error is not None  # resolve_checked returns at least one address
    raise error
