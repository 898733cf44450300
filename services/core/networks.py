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
never resolve the name again (``services.infra.destinations``: resolving and connecting is I/O, kept out
of the core), so a name whose
records change between the check and the connection (DNS rebinding) cannot reach an address nobody
checked; the webhook sink does this for every connection it opens, redirects included. IPv4-mapped
IPv6 addresses (``::ffff:10.0.0.1``) are checked as the IPv4 address they reach; IPv6 scope ids are
ignored.
"""

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from services.core.settings_values import comma_list

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
AddrInfo = tuple[Any, Any, Any, Any, tuple[Any, ...]]  # (family, type, proto, canonname, sockaddr): getaddrinfo's
Resolver = Callable[..., list[AddrInfo]]

PUBLIC = "public"  # the keyword for every globally routable unicast address
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


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
    entries = tuple(str(item).strip() for item in comma_list(value) if str(item).strip())
    NetworkPolicy.parse(entries)  # raises ValueError naming a bad entry
    return entries


def refusal(host: str, addresses: Sequence[AddrInfo], policy: NetworkPolicy) -> str | None:
    """Why ``policy`` refuses ``host`` resolved to ``addresses`` (a sentence), or None."""
    if not addresses:
        return f"host {host!r} resolves to no address"
    for info in addresses:
        address = address_of(info)
        if not policy.allows(address):
            what = f"address {address}" if _is_literal(host) else f"host {host!r} resolves to {address}, which"
            setting = f" ({policy.setting})" if policy.setting else ""
            return f"{what} is outside the networks allowed for sinks: {policy.describe()}{setting}"
    return None


def address_of(info: AddrInfo) -> Address:
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
