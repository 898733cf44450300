"""TLS for the API: ``python -m services.api`` with a self-signed certificate made at test time (the
``openssl`` command), the Python clients trusting it through ``verify=``, and what fails cleanly."""

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.api.serving import StartupRefused, uvicorn_config
from services.api.settings import ApiSettings
from services.client import ApiClient, AsyncApiClient
from services.client.errors import (
    CommunicationProtocolError,
    ConnectivityError,
    ProcessesManagerAuthorisationError,
    ProcessesManagerClientError,
)
from tests.manager.conftest import RunningManager
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until

TOKEN = "tls-api-token-0123"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, its own CA."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=vsim test API",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True, timeout=60)
    return Certificate(cert, key)


@pytest.fixture
def tls_api(certificate: Certificate, manager: RunningManager) -> Iterator[str]:
    """``python -m services.api`` over TLS with a token, in front of the in-process manager; its https URL."""
    port = free_port()
    env = {**os.environ, "STREAM_MANAGEMENT_API_HOST": "127.0.0.1", "STREAM_MANAGEMENT_API_PORT": str(port),
           "API_MANAGER_HOST": "127.0.0.1", "API_MANAGER_PORT": str(manager.port), "API_AUTH_TOKEN": TOKEN,
           "API_TLS_CERT_FILE": str(certificate.cert), "API_TLS_KEY_FILE": str(certificate.key)}
    process = subprocess.Popen([sys.executable, "-m", "services.api"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(certificate.cert))

    def serving() -> bool:
        if process.poll() is not None:
            return True
        try:
            return httpx.get(f"{url}/healthz", verify=context, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(serving, timeout=30, interval=0.1)
        assert process.poll() is None, process.communicate()[1]
        yield url
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        assert TOKEN not in stderr


def test_the_clients_reach_the_api_over_tls_with_its_ca_file(tls_api: str, certificate: Certificate) -> None:
    with ApiClient(tls_api, token=TOKEN, verify=certificate.cert) as client:
        assert client.list_pipelines().pipelines == []
    with ApiClient(tls_api, token=TOKEN, verify=str(certificate.cert)) as client:
        assert client.list_pipelines().pipelines == []
    context = ssl.create_default_context(cafile=str(certificate.cert))
    response = httpx.get(f"{tls_api}/healthz", verify=context, timeout=10)
    assert response.status_code == 200 and response.http_version == "HTTP/1.1"
    with ApiClient(tls_api, verify=certificate.cert) as client, pytest.raises(ProcessesManagerAuthorisationError):
        client.list_pipelines()  # TLS does not replace the token


def test_the_async_client_takes_the_same_options(tls_api: str, certificate: Certificate) -> None:
    async def listed() -> list[str]:
        async with AsyncApiClient(tls_api, token=TOKEN, verify=certificate.cert) as client:
            return (await client.list_pipelines()).pipelines

    assert asyncio.run(listed()) == []


def test_an_untrusted_certificate_is_refused(tls_api: str) -> None:
    with ApiClient(tls_api, token=TOKEN) as client, pytest.raises(ConnectivityError) as caught:
        client.list_pipelines()  # the system's CAs do not know the self-signed certificate
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    with ApiClient(tls_api, token=TOKEN, verify=False) as client:  # explicitly unchecked
        assert client.list_pipelines().pipelines == []


def test_plain_http_to_the_tls_port_fails_cleanly(tls_api: str) -> None:
    plain = tls_api.replace("https://", "http://")
    with ApiClient(plain, token=TOKEN, timeout=10) as client, pytest.raises(ProcessesManagerClientError) as caught:
        client.list_pipelines()
    assert isinstance(caught.value, ConnectivityError | CommunicationProtocolError)


def test_the_server_accepts_tls_1_2_at_least(tls_api: str, certificate: Certificate) -> None:
    context = ssl.create_default_context(cafile=str(certificate.cert))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert httpx.get(f"{tls_api}/healthz", verify=context, timeout=10).status_code == 200
    config = uvicorn_config(ApiSettings(manager_port=7070, tls_cert_file=certificate.cert,
                                        tls_key_file=certificate.key))
    assert config.ssl is not None and config.ssl.minimum_version == ssl.TLSVersion.TLSv1_2


def test_unreadable_tls_files_stop_the_start(tmp_path: Path, certificate: Certificate) -> None:
    with pytest.raises(StartupRefused, match="API_TLS_CERT_FILE"):
        uvicorn_config(ApiSettings(manager_port=7070, tls_cert_file=tmp_path / "missing.pem",
                                   tls_key_file=certificate.key))
    with pytest.raises(ValueError, match="API_TLS_KEY_FILE is set without API_TLS_CERT_FILE"):
        ApiSettings(manager_port=7070, tls_key_file=certificate.key)
    env = {**os.environ, "STREAM_MANAGEMENT_API_PORT": "0", "API_TLS_CERT_FILE": str(tmp_path / "missing.pem")}
    result = subprocess.run([sys.executable, "-m", "services.api"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "cannot load the TLS certificate" in result.stderr, result.stderr
