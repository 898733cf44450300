"""Several manager addresses for one client: which to try first, and when a failed one is tried again.

Theory of operation: managers sharing one Redis are interchangeable (any of them answers any command
for any pipeline), so a client may be given several ``host:port`` addresses, comma-separated. Each
request connects to the first address that accepts a connection, in this order: the addresses not
marked down, in the order given, then the ones marked down, the soonest to be retried first (so a
request is attempted even when every address failed lately). An address whose connection could not be
made (refused, unreachable, name not resolved, connect or TLS handshake timed out) is marked down for
``retry_after`` seconds and the next one is tried at once: nothing was sent, so this is safe for every
command. Once the request has been written, a failure is the caller's: the command is in flight and may
or may not have run, so it is never sent to another manager. A connection made clears the mark.

With one address nothing changes: the connection may take the whole deadline. With several, each
connection attempt gets at most ``connect_timeout`` (and never more than what is left of the deadline),
so a host that drops packets does not eat the time the next address needs.

Roboflow's own client takes one host and port: for it, "several managers behind one address" is a TCP
load balancer in front of them (compose's ``ha`` profile runs HAProxy for that).
"""

import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

Address = tuple[str, int]

DEFAULT_RETRY_AFTER = 5.0  # seconds a manager whose connection failed is tried only after the others
DEFAULT_CONNECT_TIMEOUT = 3.0  # longest one connection attempt when there are several addresses
ADDRESSES_VARIABLE = "STREAM_MANAGER_ADDRESSES"  # our extension; the reference's clients read HOST / PORT


def parse_address(text: str, default_port: int) -> Address:
    """``host:port``, ``host`` (``default_port``), ``[v6]:port`` or a bare IPv6 address; ValueError if malformed."""
    text = text.strip()
    if not text:
        raise ValueError("empty manager address")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"malformed manager address {text!r}")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # a host name, an IPv4 address, or an IPv6 address without brackets (then no port)
        host, port_text = text, ""
    if not host:
        raise ValueError(f"manager address {text!r} has no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"manager address {text!r}: the port must be 1-65535")
    return host, int(port_text)


def parse_addresses(value: str | Iterable[str | Address], default_port: int) -> tuple[Address, ...]:
    """A comma-separated ``host:port`` list (or a sequence of ``host:port`` strings or ``(host, port)``
    pairs) as addresses, in order, duplicates dropped; ValueError when empty or malformed."""
    items: Iterable[str | Address] = value.split(",") if isinstance(value, str) else value
    addresses: list[Address] = []
    for item in items:
        if isinstance(item, str):
            if not item.strip():
                continue
            address = parse_address(item, default_port)
        else:
            address = (str(item[0]), int(item[1]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ValueError("no manager address given")
    return tuple(addresses)


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def env_addresses(default_port: int) -> tuple[Address, ...] | None:
    """``$STREAM_MANAGER_ADDRESSES`` parsed, or None when unset or empty."""
    value = os.environ.get(ADDRESSES_VARIABLE, "").strip()
    return parse_addresses(value, default_port) if value else None


class AddressList:
    """The addresses of one client, with the marks of the ones that failed lately (thread-safe)."""

    def __init__(self, addresses: Sequence[Address], *, retry_after: float = DEFAULT_RETRY_AFTER,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        if not addresses:
            raise ValueError("no manager address given")
        self.addresses = tuple(addresses)
        self.retry_after = retry_after
        self.connect_timeout = connect_timeout
        self._down_until: dict[Address, float] = {}  # monotonic time from which it is tried in order again
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.addresses)

    def __str__(self) -> str:
        return ",".join(format_address(address) for address in self.addresses)

    def order(self) -> list[Address]:
        """The addresses to try for one request, in the order described in the module docstring."""
        now = time.monotonic()
        with self._lock:
            down = {a: t for a, t in self._down_until.items() if t > now}
        up = [address for address in self.addresses if address not in down]
        return up + sorted(down, key=lambda address: down[address])

    def attempts(self, deadline: float,
                 failures: list[tuple[Address, BaseException]]) -> Iterator[tuple[Address, float]]:
        """``(address, longest the connect may take)`` for each address in :meth:`order` while
        ``deadline`` (monotonic) is ahead; the caller records a failed one in ``failures`` and
        :meth:`failed`, and stops at the first that connects (then :meth:`succeeded`)."""
        for address in self.order():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failures.append((address, TimeoutError("deadline passed")))
                return
            yield address, self.attempt_timeout(remaining)

    def attempt_timeout(self, remaining: float) -> float:
        """The longest one connection attempt may take, with ``remaining`` seconds left of the deadline."""
        return remaining if len(self.addresses) == 1 else min(remaining, self.connect_timeout)

    def failed(self, address: Address) -> None:
        with self._lock:
            self._down_until[address] = time.monotonic() + self.retry_after

    def succeeded(self, address: Address) -> None:
        with self._lock:
            self._down_until.pop(address, None)

    def is_down(self, address: Address) -> bool:
        with self._lock:
            return self._down_until.get(address, 0.0) > time.monotonic()
