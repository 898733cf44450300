"""Credentials never leak: the real stack (manager, Celery worker, HTTP API, Flower, the tests' redis-server)
runs pipelines on a credentialed RTSP camera (GStreamer's RTSP server ignores the user:password) and on an
unreachable credentialed camera, with an api_key in the payload and a manager token; the test drives
status, list, consume and terminate over TCP and the API, reads /metrics and the dashboard, causes errors
(refused payloads carrying the password, the unreachable camera's reconnects), then searches everything the
run produced for the camera password, the api_key and the token:

- every process's log file (manager, worker, API, Flower),
- every reply body (TCP and HTTP), the API's and the manager's /metrics, the dashboard snapshot,
- Flower's task API and its task page,
- every Redis key's value (strings, hashes, lists, sets, sorted sets, streams), while the pipelines run
  and after they ended.

The one place credentials live is the pipeline's spec key (``vsim:pipeline:<id>:spec``): the worker needs the
reference and the api_key to run it (README, "Inputs and credentials": protect Redis).
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis

from services.core import keys
from tests.flower.process import running_flower
from tests.manager.fakes import call
from tests.support.stack import Stack, running_stack
from tests.support.streams import LiveStream, free_port
from tests.support.waiting import wait_until
from tools.embedded_redis import running_redis
from tools.payloads import newer_init

CAMERA_PASSWORD = "Sup3rSecretPw"
API_KEY = "rf-ApiKey-9f8e7d"
TOKEN = "mgr-Token-4c3b2a"
SECRETS = (CAMERA_PASSWORD, API_KEY, TOKEN)
FLOWER_AUTH = ("ops", "flower-pass-2")
WORKER_ENV = {"WORKER_RECONNECT_INITIAL_DELAY": "0.2", "WORKER_RECONNECT_MAX_DELAY": "1"}


@dataclass
class Run:
    """Everything the scenario produced, by where it was seen."""

    texts: dict[str, str] = field(default_factory=dict)
    redis_values: dict[str, str] = field(default_factory=dict)
    spec_keys: set[str] = field(default_factory=set)

    def add(self, where: str, value: Any) -> Any:
        self.texts[f"{len(self.texts):03d} {where}"] = value if isinstance(value, str) else json.dumps(value)
        return value


def _redis_dump(client: redis.Redis, moment: str, run: Run) -> None:
    """Every key's value, read by type (SCAN, never KEYS)."""
    for raw_key in client.scan_iter(count=1000):
        key = raw_key.decode()
        kind = client.type(raw_key).decode()
        value: Any
        if kind == "string":
            value = client.get(raw_key)
        elif kind == "hash":
            value = client.hgetall(raw_key)
        elif kind == "list":
            value = client.lrange(raw_key, 0, -1)
        elif kind == "set":
            value = client.smembers(raw_key)
        elif kind == "zset":
            value = client.zrange(raw_key, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xrange(raw_key)
        else:
            continue
        run.redis_values[f"{moment} {key} ({kind})"] = repr(value)


def _spec_key(name: str) -> bool:
    parts = name.split(" ")[1]
    return parts.startswith(f"{keys.PREFIX}:pipeline:") and parts.endswith(":spec")


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    # Its own redis-server: every key in it is this scenario's (the session's Redis holds other
    # modules' leftovers, e.g. finished pipelines' specs that never carried credentials).
    with running_redis() as server, running_stack(server.url) as stack, LiveStream.rtsp() as camera:
        yield _scenario(stack, camera.url)


def _scenario(stack: Stack, camera_url: str) -> Run:
    run = Run()
    metrics_port = free_port()
    stack.start_manager(MANAGER_AUTH_TOKEN=TOKEN, MANAGER_METRICS_PORT=str(metrics_port))
    stack.start_worker_with_env("cpu", "pipelines.cpu", WORKER_ENV, concurrency=2)
    api = stack.start_api(API_MANAGER_TOKEN=TOKEN)
    credentialed = camera_url.replace("rtsp://", f"rtsp://viewer:{CAMERA_PASSWORD}@")
    unreachable = f"http://viewer:{CAMERA_PASSWORD}@127.0.0.1:{free_port()}/live.ts?token={CAMERA_PASSWORD}"
    http = httpx.Client(base_url=api, timeout=60)
    with running_flower(stack.redis_url, stack.log_dir / "flower.log", ":".join(FLOWER_AUTH)) as flower:

        def tcp(request: dict[str, Any]) -> dict[str, Any]:
            return dict(run.add(f"tcp {request['type']}", call(stack.port, {**request, "token": TOKEN})))

        def get(path: str, **kwargs: Any) -> httpx.Response:
            response = http.get(path, **kwargs)
            run.add(f"GET {path}", response.text)
            return response

        # A refused INIT whose reference carries the password, one whose camera index is not allowed.
        refused = tcp(newer_init(f"gopher://viewer:{CAMERA_PASSWORD}@cam/1", api_key=API_KEY))
        assert refused["response"]["error_type"] == "invalid_payload", refused
        assert tcp(newer_init(7, api_key=API_KEY))["response"]["error_type"] == "invalid_payload"  # type: ignore[arg-type]
        bad = http.post("/inference_pipelines/initialise",
                        json=newer_init(f"concat:rtsp://viewer:{CAMERA_PASSWORD}@cam/1|x", api_key=API_KEY))
        run.add("POST initialise (refused)", bad.text)
        assert bad.status_code == 400, bad.text
        wrong_token = call(stack.port, {"type": "list_pipelines", "token": "not-" + TOKEN})
        run.add("tcp wrong token", wrong_token)

        # Two pipelines: over TCP (the credentialed camera and the unreachable one), over the API (Bearer key).
        started = tcp(newer_init([credentialed, unreachable], max_fps=5, api_key=API_KEY))  # type: ignore[arg-type]
        assert started["response"]["status"] == "success", started
        over_tcp = started["pipeline_id"]
        posted = http.post("/inference_pipelines/initialise", json=newer_init(credentialed, max_fps=5),
                           headers={"Authorization": f"Bearer {API_KEY}"})
        run.add("POST initialise", posted.text)
        assert posted.status_code == 200, posted.text
        over_api = posted.json()["context"]["pipeline_id"]

        def sources_seen() -> bool:  # the unreachable camera is reconnecting (the error path ran)
            report = tcp({"type": "status", "pipeline_id": over_tcp})["response"].get("report", {})
            return "RESTARTING" in json.dumps(report.get("sources_metadata"))

        def results() -> bool:
            consumed = tcp({"type": "consume_result", "pipeline_id": over_tcp, "max_entries": 10})
            return any(output for output in consumed["response"].get("outputs", []))

        wait_until(results, timeout=40, interval=0.5, message=lambda: "no results from the credentialed camera")
        wait_until(lambda: bool(get(f"/inference_pipelines/{over_api}/consume").json().get("outputs")),
                   timeout=40, interval=0.5, message=lambda: "no results over the API")
        wait_until(sources_seen, timeout=30, interval=0.5, message=lambda: "the unreachable source did not retry")

        tcp({"type": "list_pipelines"})
        for path in ("/inference_pipelines/list", f"/inference_pipelines/{over_tcp}/status",
                     f"/inference_pipelines/{over_api}/status", f"/status/{over_tcp}", "/list_pipelines",
                     "/metrics", "/dashboard/api/pipelines"):
            assert get(path).status_code == 200, path
        run.add("manager /metrics", httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text)
        _redis_dump(stack.client, "running", run)
        run.spec_keys = {keys.pipeline_spec(over_tcp), keys.pipeline_spec(over_api)}

        def flower_task_seen() -> bool:
            return any(over_tcp in str(task.get("kwargs")) for task in
                       flower.json("/api/tasks").values() if isinstance(task, dict))

        wait_until(flower_task_seen, timeout=30, interval=0.5, message=flower.log_text)
        for path in ("/api/tasks", "/api/workers", "/tasks", "/workers"):
            run.add(f"flower {path}", flower.get(path).text)

        assert tcp({"type": "terminate", "pipeline_id": over_tcp})["response"]["status"] == "success"
        terminated = http.post(f"/inference_pipelines/{over_api}/terminate")
        run.add("POST terminate", terminated.text)
        assert terminated.status_code == 200, terminated.text
        tcp({"type": "status", "pipeline_id": over_tcp})
        get(f"/inference_pipelines/{over_api}/status")
        get("/metrics")
        run.add("flower /api/tasks (ended)", flower.get("/api/tasks").text)
        _redis_dump(stack.client, "ended", run)
        http.close()
    stack.close()  # every process flushed and stopped before its log is read
    for log in sorted(stack.log_dir.glob("*.log")):
        run.add(f"log {log.name}", log.read_text(errors="replace"))
    return run


def _leaks(texts: dict[str, str]) -> list[str]:
    return [f"{where}: {secret!r} in {text[max(0, text.find(secret) - 200):text.find(secret) + 100]!r}"
            for where, text in texts.items() for secret in SECRETS if secret in text]


def test_the_scenario_saw_what_it_searches(run: Run) -> None:
    names = " ".join(run.texts)
    for expected in ("log manager.log", "log worker-cpu.log", "log api.log", "log flower.log", "GET /metrics",
                     "manager /metrics", "flower /api/tasks", "GET /dashboard/api/pipelines", "tcp consume_result"):
        assert expected in names, expected
    assert any("RESTARTING" in text for text in run.texts.values())  # the unreachable camera's error path ran
    assert any(_spec_key(name) for name in run.redis_values)


def test_no_log_reply_metric_or_flower_page_holds_a_credential(run: Run) -> None:
    assert _leaks(run.texts) == []


def test_redis_holds_credentials_only_in_the_spec_keys(run: Run) -> None:
    others = {name: value for name, value in run.redis_values.items() if not _spec_key(name)}
    assert _leaks(others) == []
    specs = [value for name, value in run.redis_values.items() if _spec_key(name) and name.startswith("running ")]
    assert specs and all(CAMERA_PASSWORD in value and API_KEY in value for value in specs)
    assert {name.split(" ")[1] for name in run.redis_values if _spec_key(name)} <= run.spec_keys
