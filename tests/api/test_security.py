"""The API's own protections, through real HTTP in front of a real in-process manager: the optional
token (API_AUTH_TOKEN), cross-site writes (CSRF), the request body limit, and the bind policy."""

import json
import logging
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest
import redis

from services.api.serving import StartupRefused, check_bind
from services.api.settings import ApiSettings, is_loopback
from services.client import ApiClient
from services.client.errors import ProcessesManagerAuthorisationError
from tests.api.conftest import ApiFactory, ServedApi
from tests.manager.conftest import RunningManager
from tests.manager.fakes import FakeWorker, register_worker
from tests.manager.test_server import INIT_PAYLOAD

TOKEN = "api-token-0123456789"
WRONG = "not-the-token-987"
UNKNOWN = "00000000-0000-0000-0000-000000000000"

# Every kind of route: both generations, the dashboard's data and preview, /metrics, an unknown path.
PROTECTED = [
    ("GET", "/list_pipelines"),
    ("GET", f"/status/{UNKNOWN}"),
    ("POST", "/initialise"),
    ("POST", f"/pause/{UNKNOWN}"),
    ("POST", f"/resume/{UNKNOWN}"),
    ("POST", f"/terminate/{UNKNOWN}"),
    ("GET", "/inference_pipelines/list"),
    ("GET", f"/inference_pipelines/{UNKNOWN}/status"),
    ("GET", f"/inference_pipelines/{UNKNOWN}/consume"),
    ("POST", "/inference_pipelines/initialise"),
    ("POST", f"/inference_pipelines/{UNKNOWN}/pause"),
    ("POST", f"/inference_pipelines/{UNKNOWN}/terminate"),
    ("GET", "/dashboard/api/pipelines"),
    ("GET", f"/inference_pipelines/{UNKNOWN}/preview.jpg"),
    ("GET", "/metrics"),
    ("GET", "/no/such/route"),
]
OPEN = ["/healthz", "/readyz", "/dashboard", "/dashboard/static/dashboard.js", "/openapi.json", "/docs"]


def is_older(path: str) -> bool:
    return not path.startswith(("/inference_pipelines", "/dashboard", "/metrics", "/no/"))


def assert_refused(response: httpx.Response, path: str, status: int, error_type: str, says: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    if is_older(path):
        assert body["status"] == "failure" and says in body["message"], body
        assert set(body) == {"status", "message", "context"}
    else:
        assert body["error_type"] == error_type and says in body["inner_error_message"], body
        assert set(body) == {"message", "error_type", "inner_error_type", "inner_error_message", "context"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secured(manager: RunningManager, serve_api: ApiFactory) -> ServedApi:
    return serve_api(manager_port=manager.port, auth_token=TOKEN)


# --- the API's token ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_with_a_token_every_route_needs_it(secured: ServedApi, method: str, path: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="services.api.security"):
        missing = secured.http.request(method, path, json={})
        wrong = secured.http.request(method, path, json={}, headers=bearer(WRONG))
        basic = secured.http.request(method, path, json={}, headers={"Authorization": f"Basic {TOKEN}"})
        accepted = secured.http.request(method, path, json={}, headers=bearer(TOKEN))

    assert_refused(missing, path, 401, "ApiAuthenticationError", "authentication required")
    assert_refused(wrong, path, 401, "ApiAuthenticationError", "invalid API token")
    assert_refused(basic, path, 401, "ApiAuthenticationError", "authentication required")
    for response in (missing, wrong, basic):
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert accepted.status_code != 401, accepted.text  # the route itself answered (200, 404, 422, 503...)
    assert "-> 401 ApiAuthenticationError" in caplog.text and path in caplog.text
    assert TOKEN not in caplog.text and WRONG not in caplog.text


def test_the_dashboard_data_and_previews_need_the_token_and_work_with_it(secured: ServedApi) -> None:
    assert secured.http.get("/dashboard/api/pipelines").status_code == 401
    assert secured.http.get(f"/inference_pipelines/{UNKNOWN}/preview.jpg").status_code == 401
    snapshot = secured.http.get("/dashboard/api/pipelines", headers=bearer(TOKEN))
    assert snapshot.status_code == 200 and snapshot.json()["pipelines"] == []
    preview = secured.http.get(f"/inference_pipelines/{UNKNOWN}/preview.jpg", headers=bearer(TOKEN))
    assert preview.status_code == 503 and "API_REDIS_URL" in preview.json()["inner_error_message"]  # past the guard


@pytest.mark.parametrize("path", OPEN)
def test_the_probes_the_static_page_and_the_docs_stay_open(secured: ServedApi, path: str) -> None:
    assert secured.http.get(path).status_code == 200


def test_metrics_take_the_token_as_prometheus_sends_it(secured: ServedApi) -> None:
    response = secured.http.get("/metrics", headers=bearer(TOKEN))
    assert response.status_code == 200 and "vsim_metrics_redis_up 0" in response.text


def test_without_a_token_bearer_still_carries_the_api_key(api: ServedApi, fake_worker: FakeWorker,
                                                          redis_client: redis.Redis) -> None:
    register_worker(redis_client)
    payload = {key: value for key, value in INIT_PAYLOAD.items() if key != "api_key"}
    response = api.http.post("/inference_pipelines/initialise", json=payload, headers=bearer("ROBOFLOW-KEY"))
    assert response.status_code == 200, response.text
    assert fake_worker.calls[-1]["spec"]["api_key"] == "ROBOFLOW-KEY"


def test_with_a_token_bearer_is_never_the_api_key_which_comes_from_x_api_key(
    secured: ServedApi, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register_worker(redis_client)
    payload = {key: value for key, value in INIT_PAYLOAD.items() if key != "api_key"}

    response = secured.http.post("/inference_pipelines/initialise", json=payload, headers=bearer(TOKEN))
    assert response.status_code == 200, response.text
    assert fake_worker.calls[-1]["spec"].get("api_key") in (None, "")
    assert TOKEN not in json.dumps(fake_worker.calls[-1]["spec"])

    response = secured.http.post("/initialise", json=payload, headers={**bearer(TOKEN), "X-Api-Key": "ROBOFLOW-KEY"})
    assert response.status_code == 200, response.text
    assert fake_worker.calls[-1]["spec"]["api_key"] == "ROBOFLOW-KEY"


def test_an_empty_token_setting_means_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_AUTH_TOKEN", "")
    assert ApiSettings().auth_token is None
    monkeypatch.setenv("API_AUTH_TOKEN", TOKEN)
    settings = ApiSettings()
    assert settings.auth_token is not None and TOKEN not in repr(settings)


def test_the_http_client_sends_the_token(secured: ServedApi) -> None:
    with ApiClient(secured.url, token=TOKEN) as client:
        assert client.list_pipelines().pipelines == []
    with ApiClient(secured.url, token=WRONG) as client, pytest.raises(ProcessesManagerAuthorisationError) as caught:
        client.list_pipelines()
    assert "invalid API token" in str(caught.value)
    with ApiClient(secured.url) as client, pytest.raises(ProcessesManagerAuthorisationError):
        client.list_pipelines()


@pytest.mark.parametrize(("token", "api_key", "expected"), [
    (None, None, {}),
    (None, "KEY", {"authorization": "Bearer KEY"}),  # the reference's way: no API token, Bearer is the api_key
    ("TOK", None, {"authorization": "Bearer TOK"}),
    ("TOK", "KEY", {"authorization": "Bearer TOK", "x-api-key": "KEY"}),
])
def test_the_clients_headers(monkeypatch: pytest.MonkeyPatch, token: str | None, api_key: str | None,
                             expected: dict[str, str]) -> None:
    monkeypatch.delenv("STREAM_MANAGEMENT_API_TOKEN", raising=False)
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={"status": "success", "context": {}, "pipelines": []})

    with ApiClient("http://api.test", token=token, api_key=api_key, transport=httpx.MockTransport(handler)) as client:
        client.list_pipelines()
        assert TOKEN not in repr(client) and (token is None or token not in repr(client))
    assert {name: seen[0][name] for name in ("authorization", "x-api-key") if name in seen[0]} == expected


def test_the_clients_token_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_MANAGEMENT_API_TOKEN", "FROM-ENV")
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={"status": "success", "context": {}, "pipelines": []})

    with ApiClient("http://api.test", api_key="KEY", transport=httpx.MockTransport(handler)) as client:
        client.list_pipelines()
    assert seen[0]["authorization"] == "Bearer FROM-ENV" and seen[0]["x-api-key"] == "KEY"


# --- cross-site requests (CSRF) ----------------------------------------------------------------------------------

WRITES = [f"/pause/{UNKNOWN}", f"/terminate/{UNKNOWN}", f"/inference_pipelines/{UNKNOWN}/resume",
          f"/inference_pipelines/{UNKNOWN}/terminate", "/initialise", "/inference_pipelines/initialise"]


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
def test_a_write_from_another_origin_is_refused(api: ServedApi, path: str, origin: str) -> None:
    response = api.http.post(path, json=INIT_PAYLOAD, headers={"Origin": origin})
    assert_refused(response, path, 403, "CrossOriginRequestRefused", "cross-origin request refused")
    assert origin in response.text  # names the origin it refused


@pytest.mark.parametrize("path", WRITES[:4])
def test_a_cross_site_fetch_is_refused_even_without_an_origin(api: ServedApi, path: str) -> None:
    response = api.http.post(path, headers={"Sec-Fetch-Site": "cross-site"})
    assert_refused(response, path, 403, "CrossOriginRequestRefused", "Sec-Fetch-Site: cross-site")


@pytest.mark.parametrize("path", WRITES[:4])
def test_same_origin_and_originless_writes_reach_the_route(api: ServedApi, path: str) -> None:
    own = api.url  # http://127.0.0.1:<port>, what a browser sends from the dashboard
    for headers in ({}, {"Origin": own}, {"Origin": own, "Sec-Fetch-Site": "same-origin"}):
        response = api.http.post(path, headers=headers)
        assert response.status_code == 404, response.text  # the unknown pipeline: the guard let it through


def test_an_allowed_cors_origin_may_write(manager: RunningManager, serve_api: ApiFactory) -> None:
    api = serve_api(manager_port=manager.port, cors_origins=("http://console.example",))
    headers = {"Origin": "http://console.example", "Sec-Fetch-Site": "cross-site"}
    response = api.http.post(f"/inference_pipelines/{UNKNOWN}/pause", headers=headers)
    assert response.status_code == 404 and response.headers["access-control-allow-origin"] == "http://console.example"
    other = api.http.post(f"/inference_pipelines/{UNKNOWN}/pause", headers={"Origin": "http://evil.example"})
    assert other.status_code == 403


def test_reads_from_another_origin_are_not_refused(api: ServedApi) -> None:
    # Reading needs CORS in a browser, which the API does not grant: nothing to refuse here.
    response = api.http.get("/inference_pipelines/list", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_the_origin_check_runs_before_the_token(secured: ServedApi) -> None:
    response = secured.http.post(f"/inference_pipelines/{UNKNOWN}/pause",
                                 headers={**bearer(TOKEN), "Origin": "http://evil.example"})
    assert response.status_code == 403


# --- the body size limit -----------------------------------------------------------------------------------------


@pytest.fixture
def small(manager: RunningManager, serve_api: ApiFactory) -> ServedApi:
    return serve_api(manager_port=manager.port, max_body_bytes=1024)


def big_payload(size: int) -> dict[str, Any]:
    return {**INIT_PAYLOAD, "padding": "x" * size}


def test_the_default_limit_is_the_managers_frame_cap() -> None:
    assert ApiSettings(manager_port=7070).max_body_bytes == 1024 * 1024


@pytest.mark.parametrize("path", ["/initialise", "/inference_pipelines/initialise",
                                  f"/inference_pipelines/{UNKNOWN}/consume"])
def test_a_body_over_the_limit_is_413(small: ServedApi, path: str) -> None:
    method = "GET" if path.endswith("consume") else "POST"
    response = small.http.request(method, path, json=big_payload(4096))
    assert_refused(response, path, 413, "RequestBodyTooLarge", "the limit is 1024 bytes (API_MAX_BODY_BYTES)")


def test_a_streamed_body_is_counted_as_it_arrives(small: ServedApi) -> None:
    chunks = [b'{"padding": "', *([b"x" * 512] * 8), b'"}']  # chunked: no Content-Length to check
    response = small.http.post("/inference_pipelines/initialise", content=iter(chunks),
                               headers={"Content-Type": "application/json"})
    assert_refused(response, "/inference_pipelines/initialise", 413, "RequestBodyTooLarge", "1024 bytes")


def test_a_declared_length_over_the_limit_is_refused_before_any_body_is_sent(small: ServedApi) -> None:
    host, port = small.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /inference_pipelines/initialise HTTP/1.1\r\nHost: api\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = connection.recv(65536)
            assert chunk, reply
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413 ")


def test_a_body_within_the_limit_reaches_the_manager(small: ServedApi, fake_worker: FakeWorker,
                                                     redis_client: redis.Redis) -> None:
    register_worker(redis_client)
    response = small.http.post("/inference_pipelines/initialise", json=INIT_PAYLOAD)
    assert response.status_code == 200, response.text


# --- the bind policy ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.10", False), ("api.example", False),
])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_public_bind_needs_a_token_or_an_explicit_allowance() -> None:
    with pytest.raises(StartupRefused, match="API_AUTH_TOKEN"):
        check_bind(ApiSettings(host="0.0.0.0", manager_port=7070))
    check_bind(ApiSettings(host="127.0.0.1", manager_port=7070))
    check_bind(ApiSettings(host="0.0.0.0", manager_port=7070, auth_token=TOKEN))
    check_bind(ApiSettings(host="0.0.0.0", manager_port=7070, allow_insecure_bind=True))


def test_the_server_refuses_a_public_bind_without_a_token() -> None:
    env = {"STREAM_MANAGEMENT_API_HOST": "0.0.0.0", "STREAM_MANAGEMENT_API_PORT": "0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "services.api"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on '0.0.0.0' without API_AUTH_TOKEN" in result.stderr
    assert "API_ALLOW_INSECURE_BIND=1" in result.stderr
