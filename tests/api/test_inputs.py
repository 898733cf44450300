"""What the routes read besides the path: the api_key from ``Authorization: Bearer``, consume's
options from a JSON body on GET or from the query, and browsers' origins. Results are real stream
entries, written where and as the worker writes them."""

import logging
from typing import Any

import pytest
import redis

from services.core import keys
from services.core.results import encode_entry
from tests.api.conftest import ApiFactory, ServedApi
from tests.manager.fakes import FakeWorker, register_worker
from tests.manager.test_server import INIT_PAYLOAD, UUID
from tests.support.redis_server import free_port

FLAT = {k: v for k, v in INIT_PAYLOAD.items() if k not in ("api_key", "type")}
OUTPUT = {"image": {"width": 640, "height": 480}, "predictions": [{"class": "person", "confidence": 0.9}],
          "inference_metadata": {"source_id": 0}}
FRAME = {"frame_timestamp": "2025-01-01T00:00:00+00:00", "frame_id": 7, "source_id": 0}


@pytest.mark.parametrize("path", ["/initialise", "/inference_pipelines/initialise"])
def test_the_bearer_key_fills_a_payload_without_api_key_and_is_never_logged(
    api: ServedApi, fake_worker: FakeWorker, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    register_worker(redis_client)
    caplog.set_level(logging.DEBUG)
    bearer = {"Authorization": "Bearer KEY-FROM-HEADER"}

    assert api.http.post(path, json=FLAT, headers=bearer).status_code == 200
    assert api.http.post(path, json={**FLAT, "api_key": None}, headers=bearer).status_code == 200
    assert api.http.post(path, json={**FLAT, "api_key": "KEY-IN-PAYLOAD"}, headers=bearer).status_code == 200
    assert api.http.post(path, json=FLAT, headers={"Authorization": "Basic a2V5"}).status_code == 200

    keys_sent = [dispatched["spec"].get("api_key") for dispatched in fake_worker.calls]
    assert keys_sent == ["KEY-FROM-HEADER", "KEY-FROM-HEADER", "KEY-IN-PAYLOAD", None]
    assert "KEY-FROM-HEADER" not in caplog.text and "KEY-IN-PAYLOAD" not in caplog.text


@pytest.fixture
def pipeline(api: ServedApi, fake_worker: FakeWorker, redis_client: redis.Redis) -> str:
    """A running (fake) two-source pipeline with three results: the second source framed only the first."""
    register_worker(redis_client)
    response = api.http.post("/inference_pipelines/initialise", json=INIT_PAYLOAD)
    pipeline_id = str(response.json()["context"]["pipeline_id"])
    stream = keys.results_stream(pipeline_id)
    redis_client.xadd(stream, encode_entry([OUTPUT, OUTPUT], [FRAME, {**FRAME, "source_id": 1}]))
    for frame_id in (8, 9):
        redis_client.xadd(stream, encode_entry([{**OUTPUT, "n": frame_id}, None],
                                               [{**FRAME, "frame_id": frame_id}, None]))
    return pipeline_id


def consume(api: ServedApi, pipeline_id: str, **kwargs: Any) -> dict[str, Any]:
    response = api.http.request("GET", f"/inference_pipelines/{pipeline_id}/consume", **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert UUID.fullmatch(body["context"]["request_id"]) and body["context"]["pipeline_id"] == pipeline_id
    return body


def test_consume_reads_one_result_then_the_rest_with_null_frames(api: ServedApi, pipeline: str) -> None:
    first = consume(api, pipeline)
    assert first == {"status": "success", "context": first["context"], "outputs": [OUTPUT, OUTPUT],
                     "frames_metadata": [FRAME, {**FRAME, "source_id": 1}], "entries": None, "dropped": 0,
                     "remaining": 2}

    rest = consume(api, pipeline, params={"max_entries": "5"})
    assert rest["outputs"] == [{**OUTPUT, "n": 8}, None]
    assert rest["frames_metadata"] == [{**FRAME, "frame_id": 8}, None]  # a source without a frame: null, no 500
    assert [entry["frames_metadata"] for entry in rest["entries"]] == [[{**FRAME, "frame_id": 8}, None],
                                                                       [{**FRAME, "frame_id": 9}, None]]
    assert rest["remaining"] == 0

    empty = consume(api, pipeline)
    assert (empty["outputs"], empty["frames_metadata"]) == ([], [])


@pytest.mark.parametrize("kwargs", [
    {"json": {"excluded_fields": ["image", "inference_metadata"]}},  # the reference: a JSON body on GET
    {"params": [("excluded_fields", "image"), ("excluded_fields", "inference_metadata")]},
    {"params": {"excluded_fields": "image,inference_metadata"}},
    {"json": {"excluded_fields": ["image"]}, "params": {"excluded_fields": "inference_metadata"}},
])
def test_excluded_fields_come_from_the_body_or_the_query(api: ServedApi, pipeline: str,
                                                         kwargs: dict[str, Any]) -> None:
    body = consume(api, pipeline, **kwargs)

    assert body["outputs"] == [{"predictions": OUTPUT["predictions"]}] * 2


@pytest.mark.parametrize("kwargs", [{"json": {"max_entries": 2}}, {"params": {"max_entries": "2"}},
                                    {"json": {"max_entries": 2}, "params": {"max_entries": "2"}}])
def test_max_entries_comes_from_the_body_or_the_query(api: ServedApi, pipeline: str, kwargs: dict[str, Any]) -> None:
    body = consume(api, pipeline, **kwargs)

    assert [entry["frames_metadata"][0]["frame_id"] for entry in body["entries"]] == [7, 8]
    assert body["remaining"] == 1


def test_success_bodies_of_both_generations(api: ServedApi, pipeline: str) -> None:
    for path in (f"/pause/{pipeline}", f"/resume/{pipeline}", f"/inference_pipelines/{pipeline}/pause",
                 f"/inference_pipelines/{pipeline}/resume"):
        response = api.http.post(path)
        body = response.json()
        assert (response.status_code, body) == (200, {"status": "success", "context": {
            "request_id": body["context"]["request_id"], "pipeline_id": pipeline}})
    for path in ("/list_pipelines", "/inference_pipelines/list"):
        assert api.http.get(path).json()["pipelines"] == [pipeline]
    for path in (f"/status/{pipeline}", f"/inference_pipelines/{pipeline}/status"):
        report = api.http.get(path).json()["report"]
        assert report["pipeline_state"] == "RUNNING"
        assert report["sources_metadata"][0]["source_reference"] == "rtsp://***:***@camera/stream"
    assert api.http.post(f"/inference_pipelines/{pipeline}/terminate").json()["status"] == "success"
    assert api.http.post(f"/terminate/{pipeline}").json()["status"] == "success"  # from every state
    assert api.http.get("/list_pipelines").json()["pipelines"] == []


def test_browsers_may_call_the_api_only_from_configured_origins(serve_api: ApiFactory) -> None:
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    closed = serve_api(manager_port=free_port())
    opened = serve_api(manager_port=free_port(), cors_origins=("http://app.example",))

    refused = closed.http.options("/inference_pipelines/initialise", headers=preflight)
    allowed = opened.http.options("/inference_pipelines/initialise", headers=preflight)

    assert "access-control-allow-origin" not in refused.headers
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://app.example"
