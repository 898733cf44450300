"""Webhook and e-mail sinks reach only allowed networks (WORKER_WORKFLOW_ALLOWED_NETWORKS, loopback by
default): checked when the step runs (the step fails), and again on every connection (the first, each
redirect's), which goes to an address that was checked, so DNS rebinding reaches nothing else."""

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from services.core.networks import NetworkPolicy
from services.worker.settings import WorkerSettings
from services.worker.workflows.blocks.base import NETWORKS_SETTING, BlockEnvironment
from tests.worker.workflows.sink_support import FakeClock, HttpRecorder, build, make_env
from tests.worker.workflows.test_sinks_email import build_email, email
from tests.worker.workflows.test_sinks_webhook import webhook

ONLY_127_0_0_1 = NetworkPolicy.parse("127.0.0.1/32", NETWORKS_SETTING)
INTERNAL = "127.0.0.2"  # stands for a neighbour the worker must not reach (the whole 127/8 is local on Linux)


def narrow_env() -> BlockEnvironment:
    return make_env(FakeClock(), allowed_networks=ONLY_127_0_0_1)


@pytest.fixture
def servers() -> Iterator[Callable[[str], HttpRecorder]]:
    started: list[HttpRecorder] = []

    def start(host: str = "127.0.0.1") -> HttpRecorder:
        started.append(HttpRecorder(host))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, list[str]], None]:
    """``rebinding(name, [first, then])``: ``name`` resolves to ``first`` once, to ``then`` afterwards, as a
    DNS server controlled by an attacker answers (other names resolve as usual)."""
    real = socket.getaddrinfo

    def install(name: str, answers: list[str]) -> None:
        calls = 0

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            if host != name:
                return real(host, port, *args, **kwargs)
            calls += 1
            return real(answers[0] if calls == 1 else answers[1], port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    return install


def test_by_default_a_webhook_reaches_loopback_only(servers: Callable[[str], HttpRecorder]) -> None:
    server = servers("127.0.0.1")
    block, params = build(webhook(server.url, fire_and_forget=False), make_env(FakeClock()))
    assert block.run(**params)["error_status"] is False
    assert len(server.wait_for(1)) == 1

    refused, params = build(webhook("http://10.1.2.3:8080/hook", fire_and_forget=False), make_env(FakeClock()))
    with pytest.raises(ValueError, match=r"address 10\.1\.2\.3 is outside the networks allowed for sinks: "
                                         r"127\.0\.0\.0/8, ::1/128 \(WORKER_WORKFLOW_ALLOWED_NETWORKS\)"):
        refused.run(**params)


def test_a_webhook_to_an_address_outside_the_networks_fails_the_step_and_sends_nothing(
        servers: Callable[[str], HttpRecorder]) -> None:
    internal = servers(INTERNAL)
    block, params = build(webhook(internal.url, fire_and_forget=False), narrow_env())

    with pytest.raises(ValueError, match=r"address 127\.0\.0\.2 is outside the networks allowed for sinks: "
                                         r"127\.0\.0\.1/32 \(WORKER_WORKFLOW_ALLOWED_NETWORKS\)"):
        block.run(**params)
    assert internal.requests == []


def test_a_redirect_to_an_address_outside_the_networks_is_not_followed(
        servers: Callable[[str], HttpRecorder]) -> None:
    server, internal = servers("127.0.0.1"), servers(INTERNAL)
    server.redirect = f"{internal.url}/admin"
    block, params = build(webhook(server.url, fire_and_forget=False), narrow_env())

    result = block.run(**params)

    assert result["error_status"] is True
    assert "DestinationRefusedError: address 127.0.0.2 is outside the networks allowed" in result["message"]
    # The recorder files a request after answering it: wait for it rather than race the server's thread.
    assert len(server.wait_for(1)) == 1 and internal.requests == []


def test_a_name_that_rebinds_to_a_disallowed_address_after_the_check_is_not_reached(
        servers: Callable[[str], HttpRecorder], rebinding: Callable[[str, list[str]], None]) -> None:
    internal = servers(INTERNAL)
    rebinding("hooks.test", ["127.0.0.1", INTERNAL])  # allowed when the step checks it, internal afterwards
    url = f"http://hooks.test:{internal.url.rsplit(':', 1)[1]}/hook"
    block, params = build(webhook(url, fire_and_forget=False), narrow_env())

    result = block.run(**params)

    assert result["error_status"] is True
    assert "host 'hooks.test' resolves to 127.0.0.2, which is outside the networks allowed" in result["message"]
    assert internal.requests == []


def test_an_smtp_server_outside_the_networks_fails_the_step() -> None:
    block, params = build_email(email(465, smtp_server="10.1.2.3"), make_env(FakeClock()))

    with pytest.raises(ValueError, match=r"address 10\.1\.2\.3 is outside the networks allowed for sinks"):
        block.run(**params)


def test_an_smtp_server_name_that_rebinds_after_the_check_is_not_connected_to(
        rebinding: Callable[[str, list[str]], None]) -> None:
    accepted: list[object] = []
    with socket.create_server((INTERNAL, 0)) as listener:
        listener.settimeout(0.2)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        rebinding("mail.test", ["127.0.0.1", INTERNAL])
        step = email(listener.getsockname()[1], smtp_server="mail.test")
        block, params = build_email(step, narrow_env())

        result = block.run(**params)

        stop.set()
        thread.join(5)
    assert result["error_status"] is True
    assert "host 'mail.test' resolves to 127.0.0.2, which is outside the networks allowed" in result["message"]
    assert accepted == []


def test_the_worker_setting_parses_networks_and_public(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings().workflow_networks().describe() == "127.0.0.0/8, ::1/128"
    assert WorkerSettings().udp_sink_networks().describe() == "127.0.0.0/8, ::1/128"
    monkeypatch.setenv("WORKER_WORKFLOW_ALLOWED_NETWORKS", "10.0.0.0/8, public")
    monkeypatch.setenv("WORKER_UDP_SINK_ALLOWED_NETWORKS", "")
    settings = WorkerSettings()
    assert settings.workflow_networks().describe() == "10.0.0.0/8, public"
    assert settings.workflow_networks().setting == "WORKER_WORKFLOW_ALLOWED_NETWORKS"
    assert settings.udp_sink_networks().describe() == "none"
    monkeypatch.setenv("WORKER_WORKFLOW_ALLOWED_NETWORKS", "10.0.0.0/8,intranet")
    with pytest.raises(ValueError, match="'intranet' is neither a network"):
        WorkerSettings()
