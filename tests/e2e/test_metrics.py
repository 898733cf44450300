"""Metrics and logs of the real stack: the API's ``/metrics`` renders a running pipeline from what its
task stores in Redis, the manager serves its control-plane metrics on its own port, and a worker
with JSON logs tags every line its pipeline's process writes with the pipeline id.

One pipeline reads two sources at max_fps 5: the sample file and a live HTTP camera whose URL
carries a user and password, which must never appear in a scrape."""

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.core import keys
from tests.manager.fakes import call
from tests.support.redis_server import RedisServer, free_port
from tests.support.stack import Stack, running_stack
from tests.support.streams import http_live_stream
from tests.support.waiting import wait_until
from tools.payloads import newer_init

VTEST = "data/media/vtest.avi"
SECRET = "s3cret-pw"
Samples = dict[str, list[tuple[dict[str, str], float]]]


class MetricsStack:
    def __init__(self, stack: Stack, api_url: str, manager_metrics_port: int, pipeline_id: str,
                 camera: str) -> None:
        self.stack, self.api_url, self.manager_metrics_port = stack, api_url, manager_metrics_port
        self.pipeline_id, self.camera = pipeline_id, camera


@pytest.fixture(scope="module")
def running(redis_server: RedisServer) -> Iterator[MetricsStack]:
    with running_stack(redis_server.url) as stack, http_live_stream(VTEST) as url:
        camera = url.replace("http://", f"http://viewer:{SECRET}@")
        metrics_port = free_port()
        stack.start_manager(MANAGER_METRICS_PORT=str(metrics_port))
        stack.start_worker_with_env("cpu", "pipelines.cpu", {"WORKER_LOG_FORMAT": "json"}, concurrency=1)
        api_url = stack.start_api()
        reply = call(stack.port, newer_init([VTEST, camera], max_fps=5))  # type: ignore[arg-type]
        assert reply["response"]["status"] == "success", reply
        yield MetricsStack(stack, api_url, metrics_port, reply["pipeline_id"], camera)


def _samples(url: str) -> tuple[str, Samples]:
    text = httpx.get(url, timeout=10).text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return text, samples


def _matching(samples: Samples, name: str, **labels: str) -> list[float]:
    return [value for found, value in samples.get(name, []) if all(found.get(k) == v for k, v in labels.items())]


def _counts(samples: Samples, pipeline_id: str) -> dict[tuple[str, str], float]:
    """Observations per (histogram, source_id) of the pipeline."""
    return {(name, source_id): sum(_matching(samples, f"{name}_count", pipeline_id=pipeline_id, source_id=source_id))
            for name in ("vsim_frame_decode_seconds", "vsim_inference_seconds", "vsim_frame_age_seconds")
            for source_id in ("0", "1")}


def test_the_api_renders_the_running_pipeline_per_source_without_credentials(running: MetricsStack) -> None:
    url, pipeline_id = f"{running.api_url}/metrics", running.pipeline_id

    def flowing() -> bool:
        _, samples = _samples(url)
        return bool(min(_counts(samples, pipeline_id).values()) > 0
                    and sum(_matching(samples, "vsim_pipeline_fps", pipeline_id=pipeline_id)) > 0)

    wait_until(flowing, timeout=60, interval=0.5)
    _, first = _samples(url)
    wait_until(lambda: all(after > before for (key, before), after in
                           zip(_counts(first, pipeline_id).items(), _counts(_samples(url)[1], pipeline_id).values(),
                               strict=True)), timeout=30, interval=0.5)
    text, samples = _samples(url)

    assert SECRET not in text and "viewer" not in text
    assert "vtest.avi" not in text and "live.ts" not in text  # no video reference at all, redacted or not
    for name in ("vsim_frame_decode_seconds_bucket", "vsim_inference_seconds_bucket", "vsim_frame_age_seconds_bucket"):
        ours = [labels for labels, _ in samples[name] if labels["pipeline_id"] == pipeline_id]
        assert {(labels["source_id"], labels["device"]) for labels in ours} == {("0", "cpu"), ("1", "cpu")}
    assert _matching(samples, "vsim_pipeline_restarts_total", pipeline_id=pipeline_id) == [0]
    assert _matching(samples, "vsim_pipelines", state="RUNNING")[0] >= 1  # the session Redis may hold others
    assert sum(_matching(samples, "vsim_frames_dropped_total", pipeline_id=pipeline_id, source_id="1",
                         reason="max_fps")) > 0  # the live camera's frames between two max_fps slots
    assert _matching(samples, "vsim_source_reconnects_total", pipeline_id=pipeline_id, source_id="1")
    (fill,) = _matching(samples, "vsim_results_buffer_fill_ratio", pipeline_id=pipeline_id)
    assert 0 < fill <= 1  # nobody consumes here
    assert _matching(samples, "vsim_worker_free_slots", worker="cpu@test", queue="pipelines.cpu") == [0]


def test_the_manager_serves_command_latency_and_errors_by_type(running: MetricsStack) -> None:
    port = running.stack.port
    call(port, {"type": "list_pipelines"})
    call(port, {"type": "status", "pipeline_id": running.pipeline_id})
    call(port, {"type": "status", "pipeline_id": "no-such-pipeline"})
    _, samples = _samples(f"http://127.0.0.1:{running.manager_metrics_port}/metrics")

    assert _matching(samples, "vsim_manager_command_seconds_count", type="init") == [1]
    assert _matching(samples, "vsim_manager_command_seconds_count", type="list_pipelines")[0] >= 1
    assert _matching(samples, "vsim_manager_command_seconds_count", type="status")[0] >= 2
    assert _matching(samples, "vsim_manager_command_errors_total", type="status", error_type="not_found")[0] >= 1
    assert not _matching(samples, "vsim_manager_command_errors_total", type="init")


def _log_lines(stack: Stack) -> list[str]:
    return (stack.log_dir / "worker-cpu.log").read_text(errors="replace").splitlines()


def _json(line: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def test_every_log_line_of_the_pipelines_process_is_json_with_its_id(running: MetricsStack) -> None:
    stack, pipeline_id = running.stack, running.pipeline_id
    owner = stack.client.hget(keys.pipeline_record(pipeline_id), "owner")
    assert owner is not None
    pid = int(owner.decode().rsplit(":", 1)[1])  # "<hostname>:<pid of the pool process>"
    assert call(stack.port, {"type": "terminate", "pipeline_id": pipeline_id})["response"]["status"] == "success"
    wait_until(lambda: any("succeeded" in line for line in _log_lines(stack)), timeout=30, interval=0.2)
    time.sleep(0.2)  # the line after which the process only exits

    lines = _log_lines(stack)
    ours = [parsed for line in lines if (parsed := _json(line)) is not None and parsed.get("process") == pid]
    assert [line for line in ours if line.get("pipeline_id") != pipeline_id] == []
    assert len(ours) >= 5
    messages = " | ".join(str(line["message"]) for line in ours)
    assert "pipeline state" in messages and "source 1" in messages and "succeeded" in messages
    assert len({line["thread"] for line in ours}) >= 2  # the task's thread and the engine's threads
    assert all(set(line) >= {"ts", "level", "logger", "message", "process", "thread"} for line in ours)
    assert not [line for line in lines if pipeline_id in line and _json(line) is None]  # no text line about it
    assert SECRET not in "\n".join(lines)
