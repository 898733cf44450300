"""Both API generations end to end: `python -m services.api` in front of the real manager and a real
Celery worker running the ONNX model on real video. Requests are made as the reference's HTTP clients
make them, and every status code and body is checked."""

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.manager.test_server import UUID
from tests.support.stack import Stack
from tests.support.waiting import wait_until
from tools.payloads import MODEL_ID, newer_init

VTEST = "data/media/vtest.avi"


@pytest.fixture
def http(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=60) as client:
        yield client


def ok(response: httpx.Response, pipeline_id: str | None) -> dict[str, Any]:
    """The success body, after checking the status code and the context every body carries."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "success"
    assert UUID.fullmatch(body["context"]["request_id"])
    assert body["context"]["pipeline_id"] == pipeline_id
    return body


def assert_command_body(response: httpx.Response, pipeline_id: str) -> None:
    body = ok(response, pipeline_id)
    assert body == {"status": "success", "context": {"request_id": body["context"]["request_id"],
                                                     "pipeline_id": pipeline_id}}


def pipeline_state(http: httpx.Client, path: str, pipeline_id: str) -> str:
    return str(ok(http.get(path), pipeline_id)["report"]["pipeline_state"])


def test_newer_generation_lifecycle(http: httpx.Client, stack: Stack) -> None:
    response = http.post("/inference_pipelines/initialise", json=newer_init(VTEST, max_fps=5))
    assert response.status_code == 200, response.text
    pipeline_id = response.json()["context"]["pipeline_id"]
    assert UUID.fullmatch(pipeline_id)
    assert_command_body(response, pipeline_id)

    listing = ok(http.get("/inference_pipelines/list"), None)
    assert set(listing) == {"status", "context", "pipelines"} and pipeline_id in listing["pipelines"]

    status = f"/inference_pipelines/{pipeline_id}/status"
    wait_until(lambda: ok(http.get(status), pipeline_id)["report"]["inference_throughput"] > 0, timeout=30)
    report = ok(http.get(status), pipeline_id)["report"]
    assert report["pipeline_state"] == "RUNNING"
    assert report["sources_metadata"][0]["source_properties"]["width"] == 768
    assert report["latency_reports"][0]["inference_latency"] > 0

    # The reference's newer client sends excluded_fields as a JSON body on GET.
    consume = f"/inference_pipelines/{pipeline_id}/consume"
    single: dict[str, Any] = {}

    def consumed() -> bool:
        nonlocal single
        single = ok(http.request("GET", consume, json={"excluded_fields": ["video"]}), pipeline_id)
        return bool(single["outputs"])

    wait_until(consumed, timeout=20, interval=0.2)
    [output] = single["outputs"]  # the workflow's outputs by name: "predictions" is the model's
    assert any(p["class"] == "person" for p in output["predictions"]["predictions"])
    assert single["frames_metadata"][0]["source_id"] == 0

    # Our extension and the query form: several results at once, two fields removed.
    batch: dict[str, Any] = {}

    def batched() -> bool:
        nonlocal batch
        params = {"excluded_fields": "video,predictions", "max_entries": "50"}
        batch = ok(http.get(consume, params=params), pipeline_id)
        return bool(batch["entries"])

    wait_until(batched, timeout=10, interval=0.2)
    assert all(entry["outputs"][0] is not None for entry in batch["entries"])
    assert all(entry["outputs"][0] == {} for entry in batch["entries"])

    assert_command_body(http.post(f"/inference_pipelines/{pipeline_id}/pause"), pipeline_id)
    wait_until(lambda: pipeline_state(http, status, pipeline_id) == "MUTED", timeout=10)
    assert_command_body(http.post(f"/inference_pipelines/{pipeline_id}/resume"), pipeline_id)
    wait_until(lambda: pipeline_state(http, status, pipeline_id) == "RUNNING", timeout=10)

    assert_command_body(http.post(f"/inference_pipelines/{pipeline_id}/terminate"), pipeline_id)
    assert pipeline_id not in ok(http.get("/inference_pipelines/list"), None)["pipelines"]
    assert pipeline_state(http, status, pipeline_id) == "TERMINATED"  # the last status stays readable


def test_older_generation_as_the_reference_client_calls_it(http: httpx.Client, stack: Stack) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(30)
    # Byte for byte what `requests.post(url, json=...)` sends for the seed's initialise_pipeline().
    payload = {"type": "init", "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1",
                                                      "port": receiver.getsockname()[1]},
               "video_reference": VTEST, "model_id": MODEL_ID, "api_key": "secret-api-key", "max_fps": 5}
    response = http.post("/initialise", content=json.dumps(payload, allow_nan=False).encode(),
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    pipeline_id = response.json()["context"]["pipeline_id"]
    assert_command_body(response, pipeline_id)
    try:
        datagrams = [json.loads(receiver.recv(65535)) for _ in range(3)]
    finally:
        receiver.close()
    assert all(d["image"] == {"width": 768, "height": 576} for d in datagrams)
    assert any(p["class"] == "person" for d in datagrams for p in d["predictions"])

    assert pipeline_id in ok(http.get("/list_pipelines"), None)["pipelines"]
    status = ok(http.get(f"/status/{pipeline_id}"), pipeline_id)
    assert status["report"]["sources_metadata"][0]["source_reference"] == VTEST
    assert "secret-api-key" not in json.dumps(status)
    # The seed's pause/resume/terminate: a bare POST, no body.
    assert_command_body(http.post(f"/pause/{pipeline_id}"), pipeline_id)
    wait_until(lambda: pipeline_state(http, f"/status/{pipeline_id}", pipeline_id) == "MUTED", timeout=10)
    assert_command_body(http.post(f"/resume/{pipeline_id}"), pipeline_id)
    assert_command_body(http.post(f"/terminate/{pipeline_id}"), pipeline_id)
    assert pipeline_id not in ok(http.get("/list_pipelines"), None)["pipelines"]


@pytest.mark.parametrize("path", ["/initialise", "/inference_pipelines/initialise"])
def test_a_failed_init_names_its_pipeline_and_leaves_nothing(http: httpx.Client, stack: Stack, path: str) -> None:
    response = http.post(path, json=newer_init("data/media/missing.avi"))

    assert response.status_code == 404
    body = response.json()
    pipeline_id = body["context"]["pipeline_id"]
    assert UUID.fullmatch(pipeline_id) and UUID.fullmatch(body["context"]["request_id"])
    if path == "/initialise":
        assert body["message"] == "video file data/media/missing.avi does not exist"
    else:
        assert body["message"] == "Video file data/media/missing.avi was not found."
        assert (body["error_type"], body["inner_error_type"]) == ("ProcessesManagerNotFoundError", "NotFoundError")
    assert pipeline_id not in ok(http.get("/list_pipelines"), None)["pipelines"]


def test_ready_with_the_manager_and_redis(http: httpx.Client, stack: Stack, api_url: str) -> None:
    response = http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"manager": {"ok": True, "detail": "ok"},
                                                             "redis": {"ok": True, "detail": "ok"}}, "failed": []}
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/docs").status_code == 200
    log = (stack.log_dir / "api.log").read_text()
    assert f"stream management API listening on {api_url} (stream manager at 127.0.0.1:{stack.port})" in log


def _serving(api: "psutil.Process") -> list["psutil.Process"]:
    """The worker processes of an API started with API_WORKERS (its multiprocessing children)."""
    serving = []
    for child in api.children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                serving.append(child)
        except psutil.Error:  # ended meanwhile
            continue
    return serving


def test_api_workers_serve_from_several_processes_restart_one_that_dies_and_stop_together(stack: Stack) -> None:
    url = stack.start_api("api-workers", API_WORKERS="2")
    api = psutil.Process(stack.apis["api-workers"].pid)
    wait_until(lambda: len(_serving(api)) == 2, timeout=20)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert all(client.get("/inference_pipelines/list").status_code == 200 for _ in range(20))
        first, second = _serving(api)
        first.kill()  # a worker process dies: the supervisor starts another
        wait_until(lambda: len(_serving(api)) == 2 and first.pid not in {p.pid for p in _serving(api)},
                   timeout=20)
        wait_until(lambda: client.get("/healthz").status_code == 200, timeout=20)
        replies = [client.get("/list_pipelines") for _ in range(20)]
        assert all(reply.status_code == 200 for reply in replies), [reply.text for reply in replies]
    serving, supervisor = _serving(api), stack.apis["api-workers"]
    stack.stop_api("api-workers")  # SIGTERM to the supervisor: every worker process ends with it
    assert supervisor.returncode == 0
    wait_until(lambda: not any(process.is_running() and process.status() != psutil.STATUS_ZOMBIE
                               for process in [second, *serving]), timeout=5)
