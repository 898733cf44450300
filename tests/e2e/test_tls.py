"""TLS on the manager's TCP endpoint, with certificates made at test time by the ``openssl`` command:
a test CA, a server certificate for 127.0.0.1/localhost and a client certificate (mutual TLS).

A TLS manager answers TLS clients (blocking and asyncio, and ``python -m services.manager`` set up
from the environment); a plaintext client, or a TLS client that does not trust the CA, fails cleanly
and at once, and the manager keeps serving others; with a client CA, a client without a certificate
is refused.
"""

import asyncio
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.client import (
    AsyncManagerClient,
    CommunicationProtocolError,
    ConnectivityError,
    ManagerClient,
)
from services.client.tcp import client_ssl_context
from services.manager.settings import ManagerSettings
from tests.manager.conftest import RunningManager
from tests.manager.fakes import FakeWorker, call
from tests.support.manager_process import serve_once
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")

CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: a client trusting only it must refuse the server


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> None:
    _openssl(directory, "req", "-x509", *CURVE, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _leaf(directory: Path, name: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(directory, "req", *CURVE, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
    _ca(directory, "ca")
    _ca(directory, "other-ca")
    _leaf(directory, "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                               "keyUsage=critical,digitalSignature\n")
    _leaf(directory, "client", "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
    return Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key",
                        directory / "client.pem", directory / "client.key", directory / "other-ca.pem")


@pytest.fixture
def start_tls_manager(redis_server: RedisServer, redis_client: Any, certificates: Certificates) -> Iterator[Any]:
    # redis_client empties the session's Redis: the tests expect no pipeline, whichever tests ran before.
    started: list[RunningManager] = []
    worker = FakeWorker(redis_server.url)

    def start(**overrides: Any) -> RunningManager:
        values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "redis_url": redis_server.url,
                                  "tls_cert_file": certificates.server_cert, "tls_key_file": certificates.server_key,
                                  "idle_timeout": 5.0, **overrides}
        manager = RunningManager(ManagerSettings(**values), worker)
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.stop()
    worker.close()


def test_a_tls_manager_answers_tls_clients(start_tls_manager: Any, certificates: Certificates) -> None:
    manager = start_tls_manager()

    blocking = ManagerClient("127.0.0.1", manager.port, tls=True, ca_file=certificates.ca)
    by_name = ManagerClient("localhost", manager.port, tls=True, ca_file=str(certificates.ca))
    asynchronous = AsyncManagerClient("127.0.0.1", manager.port, tls=True, ca_file=certificates.ca)

    assert blocking.list_pipelines().pipelines == []
    assert by_name.list_pipelines().status == "success"
    assert asyncio.run(asynchronous.list_pipelines()).pipelines == []
    assert "TLS" in repr(blocking)


def test_a_plaintext_client_fails_cleanly_and_the_manager_keeps_serving(
    start_tls_manager: Any, certificates: Certificates
) -> None:
    manager = start_tls_manager()
    plaintext = ManagerClient("127.0.0.1", manager.port, timeout=5, tls=False)

    with pytest.raises((ConnectivityError, CommunicationProtocolError)):
        plaintext.list_pipelines()
    with pytest.raises((ConnectivityError, CommunicationProtocolError)):
        asyncio.run(AsyncManagerClient("127.0.0.1", manager.port, timeout=5, tls=False).list_pipelines())

    assert ManagerClient("127.0.0.1", manager.port, tls=True, ca_file=certificates.ca).list_pipelines().pipelines == []


def test_a_client_refuses_a_server_it_does_not_trust(start_tls_manager: Any, certificates: Certificates) -> None:
    manager = start_tls_manager()
    untrusting = ManagerClient("127.0.0.1", manager.port, timeout=5, tls=True, ca_file=certificates.other_ca)
    wrong_name = ManagerClient("127.0.0.1", manager.port, timeout=5, tls=True, ca_file=certificates.ca,
                               server_hostname="manager.example")

    for client in (untrusting, wrong_name):
        with pytest.raises(ConnectivityError) as caught:
            client.list_pipelines()
        assert isinstance(caught.value.inner_error, ssl.SSLCertVerificationError)
    assert ManagerClient("127.0.0.1", manager.port, tls=True, ca_file=certificates.ca).list_pipelines().pipelines == []


def test_a_tls_client_to_a_plaintext_manager_fails_cleanly(redis_server: RedisServer) -> None:
    worker = FakeWorker(redis_server.url)
    manager = RunningManager(ManagerSettings(host="127.0.0.1", port=0, redis_url=redis_server.url), worker)
    try:
        with pytest.raises(ConnectivityError):
            ManagerClient("127.0.0.1", manager.port, timeout=5, tls=True).list_pipelines()
        assert call(manager.port, {"type": "list_pipelines"})["response"]["status"] == "success"
    finally:
        manager.stop()
        worker.close()


def test_mutual_tls_refuses_a_client_without_a_certificate(
    start_tls_manager: Any, certificates: Certificates
) -> None:
    manager = start_tls_manager(tls_client_ca_file=certificates.ca)
    anonymous = ManagerClient("127.0.0.1", manager.port, timeout=5, tls=True, ca_file=certificates.ca)
    context = client_ssl_context(True, certificates.ca, certificates.client_cert, certificates.client_key)
    assert context is not None
    holder = ManagerClient("127.0.0.1", manager.port, tls=context)

    with pytest.raises((ConnectivityError, CommunicationProtocolError)):
        anonymous.list_pipelines()
    with pytest.raises((ConnectivityError, CommunicationProtocolError)):
        asyncio.run(AsyncManagerClient("127.0.0.1", manager.port, timeout=5, tls=True,
                                       ca_file=certificates.ca).list_pipelines())

    assert holder.list_pipelines().pipelines == []
    assert asyncio.run(AsyncManagerClient("127.0.0.1", manager.port, tls=context).list_pipelines()).pipelines == []


def test_the_manager_process_serves_tls_from_its_environment(
    redis_server: RedisServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    base = {key: value for key, value in os.environ.items() if not key.startswith(("MANAGER_", "STREAM_MANAGER_"))}
    env = {**base, "STREAM_MANAGER_PORT": str(port), "MANAGER_REDIS_URL": redis_server.url,
           "MANAGER_TLS_CERT_FILE": str(certificates.server_cert),
           "MANAGER_TLS_KEY_FILE": str(certificates.server_key), "MANAGER_LOG_LEVEL": "info"}
    # The client is set up by the environment alone, as vsim and scripts are.
    monkeypatch.setenv("STREAM_MANAGER_TLS", "1")
    monkeypatch.setenv("STREAM_MANAGER_CA_FILE", str(certificates.ca))
    monkeypatch.setenv("STREAM_MANAGER_PORT", str(port))
    returncode, output = serve_once(env, lambda: ManagerClient(timeout=2))
    assert returncode == 0, output
    assert f"listening on 127.0.0.1:{port} (TLS)" in output
