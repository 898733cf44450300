"""Which network addresses a destination named by a client may reach: the UDP sink of an INIT, the
webhook and e-mail sinks of a workflow.

Theory of operation. A :class:`NetworkPolicy` is a list of allowed networks (CIDRs, single addresses)
and optionally ``public``: every globally routable unicast address (not loopback, private, link-local,
carrier-grade NAT, documentation, multicast or reserved ranges), for operators who let sinks reach the
internet but not their own neighbours. The default is loopback only (``127.0.0.0/8``, ``::1/128``).

A destination (host name or address, port) is resolved ONCE and EVERY address it resolves to must lie
in an allowed network; a name with one disallowed address is refused, since which address a connection
uses is the resolver's choice. The refusal names the host, the first disallowed address, the allowed
networks and the setting that allows more. Callers then connect to one of the checked addresses and
never resolve the name again (:func:`connect_checked`, the UDP sink's ``sendto``), so a name whose
records change between the check and the connection (DNS rebinding) cannot reach an address nobody
checked; the webhook sink does this for every connection it opens, redirects included. IPv4-mapped
IPv6 addresses (``::ffff:10.0.0.1``) are checked as the IPv4 address they reach; IPv6 scope ids are
ignored.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
AddrInfo = tuple[Any, Any, Any, Any, tuple[Any, ...]]  # (family, type, proto, canonname, sockaddr): getaddrinfo's
Resolver = Callable[..., list[AddrInfo]]

PUBLIC = "public"  # the keyword for every globally routable unicast address
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
RESOLVE_TIMEOUT = 5.0  # seconds the manager waits for a sink host's name to resolve


class DestinationRefusedError(ValueError):
    """A destination outside the allowed networks, or one that cannot be resolved."""


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Allowed networks (and ``public``), and the setting a refusal names."""

    networks: tuple[Network, ...] = ()
    public: bool = False
    setting: str = ""

    @classmethod
    def parse(cls, entries: str | Iterable[str], setting: str = "") -> "NetworkPolicy":
        """The policy of comma-separated (or listed) CIDRs, addresses and ``public``; raises ValueError
        naming a bad entry. Nothing listed allows nothing."""
        items = entries.split(",") if isinstance(entries, str) else list(entries)
        networks: list[Network] = []
        public = False
        for item in (str(entry).strip() for entry in items):
            if not item:
                continue
            if item.lower() == PUBLIC:
                public = True
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                where = f"{setting}: " if setting else ""
                raise ValueError(f"{where}{item!r} is neither a network (CIDR such as 10.0.0.0/8), "
                                 f"an address, nor {PUBLIC!r}") from None
        return cls(tuple(networks), public, setting)

    @classmethod
    def loopback(cls, setting: str = "") -> "NetworkPolicy":
        return cls.parse(LOOPBACK_NETWORKS, setting)

    def allows(self, address: Address) -> bool:
        address = _plain(address)
        if self.public and address.is_global and not address.is_multicast:
            return True
        return any(address.version == network.version and address in network for network in self.networks)

    def describe(self) -> str:
        shown = [str(network) for network in self.networks] + ([PUBLIC] if self.public else [])
        return ", ".join(shown) or "none"


def normalise_entries(value: Any) -> tuple[str, ...]:
    """A settings value (comma-separated text or a list) as entries, each checked by :meth:`NetworkPolicy.parse`."""
    items = value.split(",") if isinstance(value, str) else list(value)
    entries = tuple(str(item).strip() for item in items if str(item).strip())
    NetworkPolicy.parse(entries)  # raises ValueError naming a bad entry
    return entries


def refusal(host: str, addresses: Sequence[AddrInfo], policy: NetworkPolicy) -> str | None:
    """Why ``policy`` refuses ``host`` resolved to ``addresses`` (a sentence), or None."""
    if not addresses:
        return f"host {host!r} resolves to no address"
    for info in addresses:
        address = _address_of(info)
        if not policy.allows(address):
            what = f"address {address}" if _is_literal(host) else f"host {host!r} resolves to {address}, which"
            setting = f" ({policy.setting})" if policy.setting else ""
            return f"{what} is outside the networks allowed for sinks: {policy.describe()}{setting}"
    return None


def resolve_checked(host: str, port: int, policy: NetworkPolicy, kind: socket.SocketKind = socket.SOCK_STREAM,
                    resolve: Resolver | None = None) -> list[AddrInfo]:
    """Every address ``host`` resolves to (``resolve``, default ``socket.getaddrinfo``), once all are allowed;
    raises :class:`DestinationRefusedError`."""
    try:
        addresses = (resolve or socket.getaddrinfo)(host, port, type=kind)
    except (OSError, UnicodeError) as exc:
        raise DestinationRefusedError(f"host {host!r} cannot be resolved ({exc})") from exc
    reason = refusal(host, addresses, policy)
    if reason is not None:
        raise DestinationRefusedError(reason)
    return addresses


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


def _address_of(info: AddrInfo) -> Address:
    return ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 address it reaches; others unchanged."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True
