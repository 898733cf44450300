"""Flower against the real stack: the manager and a Celery worker as processes on a Redis that
requires a password (as in the compose stacks), a real Flower started by the project's launcher
with basic auth, and a pipeline on a live HTTP camera whose URL, query and INIT payload all carry
credentials. What Flower shows (UI pages, API, metrics, its log) must name the worker, its queue and
the running pipeline task, and never those credentials nor the broker's password."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.flower.process import Flower, password_redis, running_flower
from tests.manager.fakes import call
from tests.support.stack import Stack, running_stack
from tests.support.streams import http_live_stream
from tests.support.waiting import wait_until
from tools.payloads import newer_init

USER, PASSWORD = "ops", "flower-pass-1"
WORKER = "cpu@test"
QUEUE = "pipelines.cpu"
TASK = "vsim.run_pipeline"
# The credentials in the INIT (camera URL, query, api_key) and the broker URL: never in anything Flower shows.
CAMERA_PASSWORD = "secret-cam-pass"
API_KEY = "secret-key-123"
REDIS_PASSWORD = "secret-redis-pass"
SECRETS = (CAMERA_PASSWORD, API_KEY, REDIS_PASSWORD)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with password_redis(REDIS_PASSWORD) as redis_url, running_stack(redis_url) as running:
        running.start_manager()
        running.start_worker("cpu", QUEUE, concurrency=1)
        yield running


@pytest.fixture(scope="module")
def flower(stack: Stack) -> Iterator[Flower]:
    # A second pair checks that comma-separated pairs reach Flower; the first is the tests' login.
    with running_flower(stack.redis_url, stack.log_dir / "flower.log", f"{USER}:{PASSWORD},other:pass-2") as running:
        yield running


@pytest.fixture(scope="module")
def camera() -> Iterator[str]:
    """A live camera whose URL carries a user:password and an api_key query value (the server ignores both)."""
    with http_live_stream("data/media/vtest.avi") as url:
        yield url.replace("http://", f"http://viewer:{CAMERA_PASSWORD}@") + f"?api_key={API_KEY}"


def _assert_no_secret(shown: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in shown, f"{where} shows {secret!r}: {shown[:2000]}"


def test_flower_needs_credentials_except_for_healthcheck_and_metrics(flower: Flower) -> None:
    for path in ("/", "/workers", f"/worker/{WORKER}", "/tasks", "/broker", "/api/workers", "/api/tasks",
                 "/api/task/types", "/api/queues/length"):
        assert flower.get(path, auth=False).status_code == 401, path
        wrong = httpx.get(f"{flower.url}{path}", auth=(USER, "wrong"), timeout=10)
        assert wrong.status_code == 401, path
    assert flower.get("/api/workers").status_code == 200
    other = httpx.get(f"{flower.url}/api/workers", auth=("other", "pass-2"), timeout=10)
    assert other.status_code == 200
    # Flower keeps these two open even with basic auth (probes and Prometheus): documented.
    health = flower.get("/healthcheck", auth=False)
    assert (health.status_code, health.text) == (200, "OK")
    assert flower.get("/metrics", auth=False).status_code == 200


def _worker_in_events(flower: Flower) -> bool:
    """Whether Flower's event receiver has seen the worker (its heartbeats are task events' channel too)."""
    workers = flower.json("/workers", json="1")["data"]
    assert isinstance(workers, list)
    return any(worker.get("hostname") == WORKER and worker.get("status") for worker in workers)


def _pipeline_task(flower: Flower, pipeline_id: str) -> tuple[str, dict[str, Any]] | None:
    tasks = flower.json("/api/tasks", taskname=TASK)
    for uuid, task in tasks.items():
        if isinstance(task, dict) and pipeline_id in str(task.get("kwargs")):
            return uuid, task
    return None


def _queues_of_worker(flower: Flower) -> list[str]:
    response = flower.get("/api/workers", refresh="1")
    if response.status_code != 200:  # 503 while an inspect reply is late
        return []
    worker = response.json().get(WORKER) or {}
    return [queue["name"] for queue in worker.get("active_queues", [])]


def test_flower_shows_the_worker_its_queue_and_the_running_pipeline_without_secrets(
    stack: Stack, flower: Flower, camera: str
) -> None:
    # Task events are not stored: Flower shows a task only if it listened when the task was sent.
    wait_until(lambda: _worker_in_events(flower), timeout=30, message=flower.log_text)
    reply = call(stack.port, newer_init(camera, max_fps=5, api_key=API_KEY))
    assert reply["response"]["status"] == "success", reply
    pipeline_id = reply["pipeline_id"]

    found: dict[str, tuple[str, dict[str, Any]]] = {}

    def started() -> bool:
        task = _pipeline_task(flower, pipeline_id)
        if task is not None:
            found["task"] = task
        return task is not None and task[1]["state"] == "STARTED"

    wait_until(started, timeout=60, interval=0.5, message=lambda: f"{found} {flower.log_text()}")
    uuid, task = found["task"]
    assert task["name"] == TASK and task["worker"] == WORKER
    kwargs, args = str(task["kwargs"]), str(task["args"])
    _assert_no_secret(args + kwargs, "the task's args/kwargs")
    assert "'api_key': '***'" in kwargs and "viewer" not in kwargs and f"'pipeline_id': '{pipeline_id}'" in kwargs

    # The worker and its queue, from Flower's inspect calls (a reply can be late: retried).
    wait_until(lambda: QUEUE in _queues_of_worker(flower), timeout=30, interval=0.5, message=flower.log_text)
    # The worker's page and API list its active tasks from `inspect active`: the same redacted repr.
    inspected: dict[str, str] = {}

    def active_listed() -> bool:
        response = flower.get("/api/workers", refresh="1", workername=WORKER)
        inspected["text"] = response.text
        if response.status_code != 200:
            return False
        return [entry["id"] for entry in response.json()[WORKER].get("active", [])] == [uuid]

    wait_until(active_listed, timeout=30, interval=0.5, message=lambda: inspected["text"][:2000])
    shown = {
        "/api/workers": inspected["text"],
        "/api/tasks": flower.get("/api/tasks").text,
        f"/api/task/info/{uuid}": flower.get(f"/api/task/info/{uuid}").text,
        f"/task/{uuid}": flower.get(f"/task/{uuid}").text,
        f"/worker/{WORKER}": flower.get(f"/worker/{WORKER}").text,
        "/tasks/datatable": flower.get("/tasks/datatable", draw="1", start="0", length="10",
                                       **{"order[0][column]": "0", "columns[0][data]": "name"}).text,
        "/workers": flower.get("/workers").text,
        "/broker": flower.get("/broker").text,
        "/api/queues/length": flower.get("/api/queues/length").text,
        "/metrics": flower.get("/metrics", auth=False).text,
        "flower.log": flower.log_text(),
    }
    assert uuid in shown[f"/task/{uuid}"] and pipeline_id in shown[f"/task/{uuid}"]
    assert uuid in shown[f"/worker/{WORKER}"]
    for where, text in shown.items():
        _assert_no_secret(text, where)
    assert json.loads(shown[f"/api/task/info/{uuid}"])["state"] == "STARTED"

    # TERMINATE through the manager: Flower sees the task end, still without secrets.
    assert call(stack.port, {"type": "terminate", "pipeline_id": pipeline_id})["response"]["status"] == "success"
    wait_until(lambda: flower.json(f"/api/task/info/{uuid}").get("state") == "SUCCESS", timeout=30, interval=0.5)
    _assert_no_secret(flower.get(f"/api/task/info/{uuid}").text, "the ended task")
