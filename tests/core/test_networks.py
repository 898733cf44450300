"""Destinations named by clients (UDP sink, webhook and e-mail sinks): allowed networks, resolution once,
every resolved address checked, connection only to a checked address."""

import ipaddress
import socket
import threading
from typing import Any

import pytest

from services.core.networks import DestinationRefusedError, NetworkPolicy, normalise_entries
from services.infra.destinations import connect_checked, resolve_checked

SETTING = "SOME_ALLOWED_NETWORKS"


def fixed(*addresses: str) -> Any:
    """A resolver answering ``addresses`` for any name (as getaddrinfo shapes them)."""

    def resolve(host: str, port: int, type: int = 0) -> list[Any]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]

    return resolve


def test_the_default_is_loopback_only() -> None:
    policy = NetworkPolicy.loopback(SETTING)

    assert policy.describe() == "127.0.0.0/8, ::1/128"
    for allowed in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"):
        assert policy.allows(ipaddress.ip_address(allowed)), allowed
    for refused in ("10.0.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "8.8.8.8", "::ffff:10.0.0.1", "fe80::1"):
        assert not policy.allows(ipaddress.ip_address(refused)), refused


def test_networks_addresses_and_public_parse_from_a_comma_separated_value() -> None:
    policy = NetworkPolicy.parse(" 10.0.0.0/8, 192.168.1.7 ,public,", SETTING)

    assert policy.describe() == "10.0.0.0/8, 192.168.1.7/32, public"
    assert policy.allows(ipaddress.ip_address("10.20.30.40"))
    assert policy.allows(ipaddress.ip_address("192.168.1.7"))
    assert not policy.allows(ipaddress.ip_address("192.168.1.8"))
    assert policy.allows(ipaddress.ip_address("8.8.8.8")) and policy.allows(ipaddress.ip_address("2606:4700::1111"))
    # "public" is globally routable unicast only: never loopback, private, link-local, CGNAT or multicast.
    for refused in ("127.0.0.1", "172.16.0.1", "169.254.169.254", "100.64.0.1", "224.0.0.1", "fd00::1"):
        assert not policy.allows(ipaddress.ip_address(refused)), refused


def test_nothing_listed_allows_nothing_and_a_bad_entry_is_named() -> None:
    assert NetworkPolicy.parse("", SETTING).describe() == "none"
    assert not NetworkPolicy.parse("", SETTING).allows(ipaddress.ip_address("127.0.0.1"))
    with pytest.raises(ValueError, match=r"SOME_ALLOWED_NETWORKS: '10\.0\.0\.0/33' is neither a network"):
        NetworkPolicy.parse("127.0.0.0/8,10.0.0.0/33", SETTING)
    with pytest.raises(ValueError, match="'intranet' is neither a network"):
        normalise_entries("intranet")
    assert normalise_entries(" 10.0.0.0/8 ,, public") == ("10.0.0.0/8", "public")


def test_an_address_outside_the_networks_is_refused_naming_it_and_the_setting() -> None:
    with pytest.raises(DestinationRefusedError) as refused:
        resolve_checked("10.1.2.3", 9999, NetworkPolicy.loopback(SETTING))

    assert str(refused.value) == ("address 10.1.2.3 is outside the networks allowed for sinks: 127.0.0.0/8, ::1/128 "
                                  "(SOME_ALLOWED_NETWORKS)")


def test_a_name_is_refused_when_any_of_its_addresses_is_outside() -> None:
    policy = NetworkPolicy.loopback(SETTING)

    assert [info[4][0] for info in resolve_checked("both.test", 80, policy, resolve=fixed("127.0.0.1", "::1"))] \
        == ["127.0.0.1", "::1"]
    with pytest.raises(DestinationRefusedError,
                       match=r"host 'mixed\.test' resolves to 10\.0\.0\.5, which is outside the networks allowed"):
        resolve_checked("mixed.test", 80, policy, resolve=fixed("127.0.0.1", "10.0.0.5"))


def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(DestinationRefusedError, match=r"host 'no-such-host\.invalid' cannot be resolved"):
        resolve_checked("no-such-host.invalid", 80, NetworkPolicy.parse("0.0.0.0/0,::/0"))


def test_connect_checked_connects_to_an_allowed_address_and_refuses_before_connecting_otherwise() -> None:
    accepted: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def accept() -> None:
            connection, peer = server.accept()
            accepted.append(peer[0])
            connection.close()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        with connect_checked("127.0.0.1", port, NetworkPolicy.loopback(SETTING), timeout=5.0) as sock:
            assert sock.getpeername() == ("127.0.0.1", port)
        thread.join(5)
        assert accepted == ["127.0.0.1"]

        with pytest.raises(DestinationRefusedError, match="outside the networks allowed"):
            connect_checked("127.0.0.1", port, NetworkPolicy.parse("10.0.0.0/8", SETTING), timeout=5.0)
