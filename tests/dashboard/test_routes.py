"""The dashboard's routes through real HTTP: the page and its files, the snapshot, the preview JPEG."""

import re
import threading
import time

import cv2
import httpx
import numpy as np
import redis

from services.api.dashboard import FIRST_PREVIEW_POLL, FIRST_PREVIEW_WAIT
from services.core import keys
from tests.api.conftest import ApiFactory, ServedApi
from tests.manager.conftest import RunningManager
from tests.manager.fakes import register_worker
from tests.manager.test_server import INIT_PAYLOAD
from tests.support.redis_server import RedisServer, free_port

UNKNOWN = "no-such-pipeline"


def _jpeg(width: int = 48, height: int = 36) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((height, width, 3), 200, np.uint8))
    assert ok
    return encoded.tobytes()


def _api_with_redis(manager: RunningManager, serve_api: ApiFactory, redis_server: RedisServer) -> ServedApi:
    return serve_api(manager_port=manager.port, redis_url=redis_server.url)


def test_the_page_and_its_files_come_from_the_api(api: ServedApi) -> None:
    root = api.http.get("/", follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "dashboard"

    page = api.http.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    # Everything the page loads is served here: no other origin, no inline script.
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets == ["dashboard/static/dashboard.css", "dashboard/static/dashboard.js"]  # relative to /dashboard
    assert "<script>" not in page.text
    for asset, media_type in zip(assets, ("text/css", "text/javascript"), strict=True):
        response = api.http.get(f"/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)
        assert "http://" not in response.text and "https://" not in response.text
    script = api.http.get("/dashboard/static/dashboard.js").text
    assert "innerHTML" not in script and '"/' not in script and "`/" not in script  # relative URLs only

    missing = api.http.get("/dashboard/static/..%2Fapp.py")
    assert missing.status_code == 404
    assert api.http.get("/dashboard/static/dashboard.html").status_code == 404  # the page has its own route


def test_the_snapshot_lists_each_pipeline_with_device_owner_and_metrics(
    manager: RunningManager, serve_api: ApiFactory, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = _api_with_redis(manager, serve_api, redis_server)
    empty = api.http.get("/dashboard/api/pipelines")
    assert empty.status_code == 200, empty.text
    assert empty.json()["pipelines"] == [] and empty.json()["previews"] is True

    register_worker(redis_client)
    started = api.http.post("/inference_pipelines/initialise", json=INIT_PAYLOAD)
    assert started.status_code == 200, started.text
    pipeline_id = started.json()["context"]["pipeline_id"]

    snapshot = api.http.get("/dashboard/api/pipelines").json()
    [pipeline] = snapshot["pipelines"]
    assert pipeline["pipeline_id"] == pipeline_id
    assert pipeline["device"] == "cpu" and pipeline["owner"] == "fake@host"
    assert pipeline["pipeline_state"] == "RUNNING" and pipeline["restarts"] == 0
    assert pipeline["inference_throughput"] == 25.0 and pipeline["has_preview"] is False
    [source] = pipeline["sources"]
    assert source["source_reference"] == "rtsp://***:***@camera/stream"  # the redacted reference only
    assert source["e2e_latency"] == 0.03 and source["state"] == "RUNNING"
    assert "pass@" not in empty.text + str(snapshot)

    # Listed on the page, the pipeline is watched: its task publishes previews while the mark lasts.
    assert 0 < redis_client.ttl(keys.pipeline_preview_watched(pipeline_id)) <= keys.PREVIEW_WATCH_TTL
    redis_client.set(keys.pipeline_preview(pipeline_id), _jpeg(), ex=10)
    assert api.http.get("/dashboard/api/pipelines").json()["pipelines"][0]["has_preview"] is True


def test_the_snapshot_without_redis_still_lists_the_pipelines(
    api: ServedApi, redis_client: redis.Redis
) -> None:
    register_worker(redis_client)
    pipeline_id = api.http.post("/inference_pipelines/initialise", json=INIT_PAYLOAD).json()["context"]["pipeline_id"]
    snapshot = api.http.get("/dashboard/api/pipelines").json()
    assert snapshot["previews"] is False
    [pipeline] = snapshot["pipelines"]
    assert pipeline["pipeline_id"] == pipeline_id and pipeline["device"] is None and pipeline["owner"] is None


def test_the_snapshot_says_when_the_manager_is_unreachable(serve_api: ApiFactory) -> None:
    api = serve_api(manager_port=free_port(), manager_timeout=1.0)
    response = api.http.get("/dashboard/api/pipelines")
    assert response.status_code == 503
    assert response.json()["error_type"] == "ConnectivityError"


def test_the_preview_is_the_stored_jpeg(
    manager: RunningManager, serve_api: ApiFactory, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = _api_with_redis(manager, serve_api, redis_server)
    jpeg = _jpeg()
    redis_client.hset(keys.pipeline_record("p1"), "state", "RUNNING")
    redis_client.set(keys.pipeline_preview("p1"), jpeg, ex=10)
    response = api.http.get("/inference_pipelines/p1/preview.jpg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "no-store"
    assert response.content == jpeg
    # The read marks the pipeline watched: its task keeps publishing previews for PREVIEW_WATCH_TTL.
    assert 0 < redis_client.ttl(keys.pipeline_preview_watched("p1")) <= keys.PREVIEW_WATCH_TTL


def test_the_first_read_of_an_unwatched_preview_waits_for_it(
    manager: RunningManager, serve_api: ApiFactory, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = _api_with_redis(manager, serve_api, redis_server)
    redis_client.hset(keys.pipeline_record("p2"), "state", "RUNNING")
    jpeg = _jpeg()
    # The task publishes once it sees the watch (here: once the read has marked it).
    publisher = threading.Thread(target=_publish_once_watched, args=(redis_client, "p2", jpeg), daemon=True)
    publisher.start()
    response = api.http.get("/inference_pipelines/p2/preview.jpg")
    publisher.join(5)
    assert response.status_code == 200 and response.content == jpeg


def _publish_once_watched(client: redis.Redis, pipeline_id: str, jpeg: bytes) -> None:
    deadline = time.monotonic() + 5
    while not client.exists(keys.pipeline_preview_watched(pipeline_id)) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # drawing it
    client.set(keys.pipeline_preview(pipeline_id), jpeg, ex=10)


def test_a_watched_pipeline_without_a_preview_is_a_404_at_once(
    manager: RunningManager, serve_api: ApiFactory, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = _api_with_redis(manager, serve_api, redis_server)
    redis_client.hset(keys.pipeline_record("p3"), "state", "PAUSED")  # muted: no preview comes
    redis_client.set(keys.pipeline_preview_watched("p3"), "1", ex=5)  # watched for 5 s already
    started = time.monotonic()
    response = api.http.get("/inference_pipelines/p3/preview.jpg")
    assert response.status_code == 404 and time.monotonic() - started < FIRST_PREVIEW_WAIT
    assert redis_client.ttl(keys.pipeline_preview_watched("p3")) > 5  # the watch goes on

    redis_client.delete(keys.pipeline_preview_watched("p3"))  # a young watch: waits for the first, then 404
    started = time.monotonic()
    assert api.http.get("/inference_pipelines/p3/preview.jpg").status_code == 404
    assert time.monotonic() - started >= FIRST_PREVIEW_WAIT - FIRST_PREVIEW_POLL


def test_no_preview_is_a_404_in_the_newer_error_body(
    manager: RunningManager, serve_api: ApiFactory, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = _api_with_redis(manager, serve_api, redis_server)
    response = api.http.get(f"/inference_pipelines/{UNKNOWN}/preview.jpg")
    assert response.status_code == 404
    assert not redis_client.exists(keys.pipeline_preview_watched(UNKNOWN))  # no record: nothing written
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "error_type", "inner_error_type", "inner_error_message", "context"}
    assert UNKNOWN in body["message"] and body["context"]["pipeline_id"] == UNKNOWN


def test_a_preview_needs_redis(api: ServedApi) -> None:
    response = api.http.get(f"/inference_pipelines/{UNKNOWN}/preview.jpg")
    assert response.status_code == 503
    assert "API_REDIS_URL" in response.json()["message"]


def test_a_preview_with_redis_down_is_503_without_the_url_password(
    manager: RunningManager, serve_api: ApiFactory
) -> None:
    api = serve_api(manager_port=manager.port, redis_url=f"redis://:hunter2@127.0.0.1:{free_port()}/0",
                    readiness_timeout=1.0)
    response = api.http.get(f"/inference_pipelines/{UNKNOWN}/preview.jpg")
    assert response.status_code == 503
    assert "redis unreachable" in response.json()["message"] and "hunter2" not in response.text


def test_the_preview_route_is_documented_as_a_jpeg(api: ServedApi) -> None:
    document = api.http.get("/openapi.json").json()
    operation = document["paths"]["/inference_pipelines/{pipeline_id}/preview.jpg"]["get"]
    assert operation["responses"]["200"]["content"]["image/jpeg"]["schema"] == {"type": "string", "format": "binary"}
    assert "application/json" not in operation["responses"]["200"]["content"]
    assert "404" in operation["responses"] and "/dashboard/api/pipelines" in document["paths"]
    assert "/dashboard" not in document["paths"] and "/" not in document["paths"]


def test_the_api_serves_the_dashboard_over_httpx_with_no_redirect_loop(api: ServedApi) -> None:
    with httpx.Client(base_url=api.url, timeout=10, follow_redirects=True) as client:
        response = client.get("/")
    assert response.status_code == 200 and response.url.path == "/dashboard"
