"""INIT refuses a udp_sink whose host is not an allowed destination (MANAGER_UDP_SINK_ALLOWED_NETWORKS,
loopback by default) before anything is written, naming the field and the setting."""

from typing import Any

import pytest
import redis

from services.manager.settings import ManagerSettings
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.manager.test_init_references import written
from tests.manager.test_server import INIT_PAYLOAD


def init_to(port: int, host: str) -> dict[str, Any]:
    return call(port, {**INIT_PAYLOAD, "video_reference": "rtsp://cam/1",
                       "sink_configuration": {"type": "udp_sink", "host": host, "port": 9999}})


@pytest.mark.parametrize(("host", "shown"), [
    ("10.1.2.3", "address 10.1.2.3 is outside"),
    ("169.254.169.254", "address 169.254.169.254 is outside"),  # a cloud's metadata service
    ("192.168.0.3", "address 192.168.0.3 is outside"),
    ("0.0.0.0", "address 0.0.0.0 is outside"),  # "this host" to Linux: allowed only when listed
    ("no-such-host.invalid", "host 'no-such-host.invalid' cannot be resolved"),
])
def test_a_destination_outside_the_allowed_networks_is_refused_and_nothing_is_written(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis, host: str, shown: str
) -> None:
    register_worker(redis_client)

    reply = init_to(manager.port, host)

    response = reply["response"]
    assert response["error_type"] == "invalid_payload", response
    assert response["error_message"].startswith("field 'sink_configuration.host': ")
    assert shown in response["error_message"]
    if "outside" in shown:
        assert response["error_message"].endswith(
            "outside the networks allowed for sinks: 127.0.0.0/8, ::1/128 (MANAGER_UDP_SINK_ALLOWED_NETWORKS)")
    assert "sink_configuration.host" in response["public_error_message"]
    assert reply["pipeline_id"] is None
    assert fake_worker.calls == [] and written(redis_client) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_destinations_are_accepted_by_default(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis, host: str
) -> None:
    register_worker(redis_client)

    reply = init_to(manager.port, host)

    assert reply["response"]["status"] == "success", reply
    assert fake_worker.calls[0]["spec"]["udp_sink"] == {"host": host, "port": 9999}


def test_configured_networks_allow_more_and_only_them(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    manager = start_manager(udp_sink_allowed_networks="127.0.0.0/8, 10.0.0.0/8")
    register_worker(redis_client)

    accepted = init_to(manager.port, "10.1.2.3")
    refused = init_to(manager.port, "192.168.0.3")

    assert accepted["response"]["status"] == "success", accepted
    assert refused["response"]["error_type"] == "invalid_payload"
    assert refused["response"]["error_message"].endswith(
        "allowed for sinks: 127.0.0.0/8, 10.0.0.0/8 (MANAGER_UDP_SINK_ALLOWED_NETWORKS)")


def test_the_setting_is_read_from_the_environment_and_a_bad_entry_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ManagerSettings().udp_sink_allowed_networks == ("127.0.0.0/8", "::1/128")
    monkeypatch.setenv("MANAGER_UDP_SINK_ALLOWED_NETWORKS", "10.0.0.0/8, public")
    assert ManagerSettings().udp_sink_allowed_networks == ("10.0.0.0/8", "public")
    monkeypatch.setenv("MANAGER_UDP_SINK_ALLOWED_NETWORKS", "10.0.0.0/8,10.0.0.300")
    with pytest.raises(ValueError, match=r"MANAGER_UDP_SINK_ALLOWED_NETWORKS: '10\.0\.0\.300' is neither a network"):
        ManagerSettings()
