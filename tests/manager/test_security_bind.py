"""The bind policy of ``python -m services.manager``: an address other than loopback needs a token (or
mutual TLS) unless MANAGER_ALLOW_INSECURE_BIND is set; the settings' TLS files come in pairs."""

import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from services.client import ManagerClient
from services.manager.settings import ManagerSettings, insecure_bind, is_loopback
from tests.support.manager_process import serve_once
from tests.support.redis_server import RedisServer, free_port

TOKEN = "bind-t0ken-91d3"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.5", False),
     ("10.0.0.1", False), ("manager.example", False)],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_insecure_bind_needs_a_non_loopback_address_and_no_authentication() -> None:
    assert insecure_bind(ManagerSettings(host="127.0.0.1")) is None
    assert insecure_bind(ManagerSettings(host="0.0.0.0", auth_token=TOKEN)) is None
    assert insecure_bind(ManagerSettings(host="0.0.0.0", tls_cert_file="c.pem", tls_key_file="k.pem",
                                         tls_client_ca_file="ca.pem")) is None
    message = insecure_bind(ManagerSettings(host="0.0.0.0", auth_token=""))  # empty: no token
    assert message is not None and "MANAGER_AUTH_TOKEN" in message and "MANAGER_ALLOW_INSECURE_BIND" in message
    # TLS alone encrypts but does not authenticate clients.
    assert insecure_bind(ManagerSettings(host="0.0.0.0", tls_cert_file="c.pem", tls_key_file="k.pem")) is not None


@pytest.mark.parametrize(
    "files",
    [{"tls_cert_file": "c.pem"}, {"tls_key_file": "k.pem"}, {"tls_client_ca_file": "ca.pem"}],
    ids=["cert-only", "key-only", "client-ca-only"],
)
def test_tls_files_must_come_together(files: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError, match="MANAGER_TLS_"):
        ManagerSettings(**files)  # type: ignore[arg-type]


def _env(redis_server: RedisServer, port: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MANAGER_", "STREAM_MANAGER_"))}
    return {**env, "STREAM_MANAGER_HOST": "0.0.0.0", "STREAM_MANAGER_PORT": str(port),
            "MANAGER_REDIS_URL": redis_server.url, "MANAGER_LOG_LEVEL": "info", **extra}


def test_binding_every_interface_without_a_token_exits_2(redis_server: RedisServer) -> None:
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "services.manager"], env=_env(redis_server, port),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"refusing to bind 0.0.0.0:{port} without authentication" in result.stderr
    assert "MANAGER_AUTH_TOKEN" in result.stderr and "MANAGER_ALLOW_INSECURE_BIND=1" in result.stderr


@pytest.mark.parametrize(
    ("extra", "token"),
    [({"MANAGER_AUTH_TOKEN": TOKEN}, TOKEN), ({"MANAGER_ALLOW_INSECURE_BIND": "1"}, None)],
    ids=["with-token", "insecure-override"],
)
def test_binding_every_interface_runs_with_a_token_or_the_override(
    redis_server: RedisServer, extra: dict[str, str], token: str | None
) -> None:
    port = free_port()
    client = ManagerClient("127.0.0.1", port, token=token, timeout=2)
    returncode, output = serve_once(_env(redis_server, port, **extra), lambda: client)
    assert returncode == 0, output
    assert f"listening on 0.0.0.0:{port}" in output
    insecure_warning = "without authentication (MANAGER_ALLOW_INSECURE_BIND)"
    assert (insecure_warning in output) is (token is None)
    assert TOKEN not in output


def test_an_unreadable_tls_certificate_stops_the_start_with_exit_2(redis_server: RedisServer, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    env = _env(redis_server, free_port(), STREAM_MANAGER_HOST="127.0.0.1", MANAGER_TLS_CERT_FILE=str(missing),
               MANAGER_TLS_KEY_FILE=str(missing))
    result = subprocess.run([sys.executable, "-m", "services.manager"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert "cannot load the TLS certificate or key (MANAGER_TLS_*)" in result.stderr
    assert "Traceback" not in result.stderr
