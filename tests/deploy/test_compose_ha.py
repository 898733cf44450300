"""compose/cpu.yaml's ``ha`` profile: a second manager on the same Redis and HAProxy (TCP mode, health
checks) in front of both, validated by both Compose implementations and by HAProxy itself."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.compose import COMPOSE, STACK_ENV, STACKS, compose_v1, compose_v2, render, run_compose

HAPROXY_CONFIG = COMPOSE / "haproxy" / "managers.cfg"
ADDRESSES = "manager:7070,manager-2:7070"


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = {**STACK_ENV, "API_MANAGER_ADDRESSES": ADDRESSES}
    return render(STACKS["cpu"], env, tmp_path_factory.mktemp("ha"), profiles=["ha"])["services"]  # type: ignore[no-any-return]


def test_the_profile_passes_config_in_both_compose_implementations(tmp_path: Path) -> None:
    for binary in (compose_v2(), compose_v1()):
        result = run_compose(binary, STACKS["cpu"], STACK_ENV, tmp_path / binary.parent.name, profiles=["ha"])
        assert result.returncode == 0, result.stderr


def test_without_the_profile_the_stack_has_one_manager(tmp_path: Path) -> None:
    services = render(STACKS["cpu"], STACK_ENV, tmp_path)["services"]
    assert "manager-2" not in services and "manager-lb" not in services
    assert services["api"]["environment"]["API_MANAGER_ADDRESSES"] == ""  # the API keeps its one manager


def test_the_second_manager_is_the_first_one_again(ha: dict[str, Any]) -> None:
    first, second = ha["manager"], ha["manager-2"]
    assert second["image"] == first["image"] and second["environment"] == first["environment"]
    assert second["healthcheck"]["test"] == first["healthcheck"]["test"]
    assert "ports" not in second  # reached through the load balancer (or the API's address list)


def test_the_load_balancer_fronts_both_managers_once_they_are_healthy(ha: dict[str, Any]) -> None:
    lb = ha["manager-lb"]
    assert sorted(lb["depends_on"]) == ["manager", "manager-2"]
    assert all(dependency["condition"] == "service_healthy" for dependency in lb["depends_on"].values())
    (mount,) = lb["volumes"]
    assert (Path(mount["source"]), mount["target"], mount.get("read_only")) == (
        HAPROXY_CONFIG, "/usr/local/etc/haproxy/haproxy.cfg", True)
    (port,) = lb["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "7071", 7070)
    assert lb["restart"] == "unless-stopped" and lb["logging"]["driver"] == "json-file"
    assert "8404/healthz" in " ".join(lb["healthcheck"]["test"])
    servers = re.findall(r"^\s*server\s+\S+\s+(\S+):(\d+)", HAPROXY_CONFIG.read_text(), re.MULTILINE)
    assert sorted(servers) == [("manager", "7070"), ("manager-2", "7070")]  # the compose services, their port
    assert ha["api"]["environment"]["API_MANAGER_ADDRESSES"] == ADDRESSES


def test_haproxy_accepts_its_configuration() -> None:
    haproxy = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).is_file()), None)
    if haproxy is None:
        pytest.fail("haproxy not found: `make setup` installs Debian's haproxy (tools/install_system_deps.sh)")
    checked = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_CONFIG)], capture_output=True, text=True,
                             timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
    config = HAPROXY_CONFIG.read_text()
    assert re.search(r"^\s*mode tcp$", config, re.MULTILINE)  # one TCP connection per client, to one manager
    assert "default-server check" in config  # health checks on every manager
