"""roboflow_core/webhook_sink@v1 against a real HTTP server on 127.0.0.1: what arrives (method, query,
headers, JSON, multipart, form), outcomes, cooldown on a settable clock, fire-and-forget, allowed
hosts, and secrets kept out of messages and logs."""

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import cv2
import numpy as np
import pytest

from services.worker.workflows.background import BackgroundRunner
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import VideoMetadata, WorkflowImage, detections_on
from tests.worker.workflows.sink_support import FakeClock, HttpRecorder, InlineBackground, build, closed_port, make_env

BACKGROUND = "Notification sent in the background task"
SENT = "Notification sent successfully"


@pytest.fixture
def server() -> Iterator[HttpRecorder]:
    recorder = HttpRecorder()
    yield recorder
    recorder.close()


def webhook(url: str, **fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/webhook_sink@v1", "name": "hook", "url": url, "method": "POST", **fields}


@pytest.fixture
def frame(video_frame: Callable[[str, int], np.ndarray]) -> WorkflowImage:
    metadata = VideoMetadata("cam", 1, datetime(2026, 1, 1), fps=10.0)
    return WorkflowImage.frame(video_frame("vtest.avi", 10), "image", metadata)


def test_a_post_carries_the_query_headers_and_json_payload(server: HttpRecorder, env: BlockEnvironment) -> None:
    block, params = build(webhook(
        f"{server.url}/hook?fixed=1", fire_and_forget=False,
        query_parameters={"camera": "$inputs.camera", "count": 3, "flags": [True, "x"]},
        headers={"X-Source": "vsim", "X-Count": 2},
        json_payload={"label": "$inputs.camera", "nested": {"a": [1, 2]}, "ok": True},
    ), env, {"type": "WorkflowParameter", "name": "camera", "default_value": "gate"})

    result = block.run(**params)

    assert result == {"error_status": False, "throttling_status": False, "message": SENT}
    (request,) = server.wait_for(1)
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.query == {"fixed": ["1"], "camera": ["gate"], "count": ["3"], "flags": ["True", "x"]}
    assert request.headers["x-source"] == "vsim" and request.headers["x-count"] == "2"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"label": "gate", "nested": {"a": [1, 2]}, "ok": True}


def test_workflow_values_in_the_json_payload_are_serialised_as_outputs_are(
        server: HttpRecorder, env: BlockEnvironment, frame: WorkflowImage) -> None:
    detections = detections_on(frame, np.array([[10, 20, 110, 220], [5, 5, 50, 50]]), np.array([0.5, 0.9]),
                               np.array([0, 2]), ["person", "bicycle", "car"], "inf-1")
    block, params = build(webhook(server.url, fire_and_forget=False), env)

    block.run(**{**params, "json_payload": {"predictions": detections, "score": np.float32(0.25)}})

    body = server.wait_for(1)[0].json()
    assert body == {"predictions": json.loads(json.dumps(serialise(detections))), "score": 0.25}
    assert [p["class"] for p in body["predictions"]["predictions"]] == ["car", "person"]


def test_files_go_multipart_with_the_form_fields(server: HttpRecorder, env: BlockEnvironment,
                                                 frame: WorkflowImage) -> None:
    block, params = build(webhook(server.url, method="PUT", fire_and_forget=False,
                                  form_data={"camera": "gate", "tags": ["a", "b"]},
                                  json_payload={"ignored": "as requests ignores json beside files"}), env)

    result = block.run(**{**params, "multi_part_encoded_files": {"report": "a,b\n1,2\n", "frame": frame}})

    assert result["error_status"] is False
    (request,) = server.wait_for(1)
    assert request.method == "PUT" and request.headers["content-type"].startswith("multipart/form-data")
    parts = {(name, filename): content for name, filename, content in request.parts()}
    assert parts[("report", "report")] == b"a,b\n1,2\n"
    assert parts[("camera", None)] == b"gate"
    assert [content for name, _, content in request.parts() if name == "tags"] == [b"a", b"b"]
    assert not any(name == "ignored" for name, _, _ in request.parts())
    decoded = cv2.imdecode(np.frombuffer(parts[("frame", "frame")], np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == frame.image.shape
    assert np.abs(decoded.astype(int) - frame.image.astype(int)).mean() < 4  # the same picture, as JPEG


def test_form_data_alone_is_url_encoded(server: HttpRecorder, env: BlockEnvironment) -> None:
    block, params = build(webhook(server.url, fire_and_forget=False,
                                  form_data={"camera": "gate", "count": 2, "tags": ["a", "b"]}), env)

    block.run(**params)

    (request,) = server.wait_for(1)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body.decode()) == {"camera": ["gate"], "count": ["2"], "tags": ["a", "b"]}


def test_a_get_without_payload_has_no_body(server: HttpRecorder, env: BlockEnvironment) -> None:
    block, params = build(webhook(server.url, method="GET", fire_and_forget=False), env)

    block.run(**params)

    (request,) = server.wait_for(1)
    assert request.method == "GET" and request.body == b"" and "content-type" not in request.headers


def test_an_error_answer_is_an_error_status(server: HttpRecorder, env: BlockEnvironment) -> None:
    server.status = 503
    block, params = build(webhook(server.url, fire_and_forget=False), env)

    result = block.run(**params)

    assert result["error_status"] is True and result["throttling_status"] is False
    assert result["message"].startswith("Failed to send webhook notification.")
    assert "HTTP 503" in result["message"]


def test_an_unreachable_url_is_an_error_status_inline(env: BlockEnvironment) -> None:
    block, params = build(webhook(f"http://127.0.0.1:{closed_port()}/hook", fire_and_forget=False), env)

    result = block.run(**params)

    assert result["error_status"] is True
    assert "ConnectError" in result["message"]


def test_an_unreachable_url_in_the_background_reports_sent_and_logs_the_failure(
        env: BlockEnvironment, caplog: pytest.LogCaptureFixture) -> None:
    block, params = build(webhook(f"http://127.0.0.1:{closed_port()}/hook"), env)  # fire_and_forget: default true
    caplog.set_level(logging.WARNING)

    result = block.run(**params)

    assert result == {"error_status": False, "throttling_status": False, "message": BACKGROUND}
    assert any("Failed to send webhook notification" in r.getMessage() and "ConnectError" in r.getMessage()
               for r in caplog.records)


def test_a_slow_endpoint_times_out_after_request_timeout(server: HttpRecorder, env: BlockEnvironment) -> None:
    server.delay = 5.0
    block, params = build(webhook(server.url, fire_and_forget=False, request_timeout=1), env)

    started = time.monotonic()
    result = block.run(**params)

    assert time.monotonic() - started < 3.0
    assert result["error_status"] is True and "ReadTimeout" in result["message"]


def test_the_cooldown_holds_for_cooldown_seconds_of_wall_clock(server: HttpRecorder, env: BlockEnvironment,
                                                               clock: FakeClock) -> None:
    block, params = build(webhook(server.url, fire_and_forget=False), env)  # cooldown_seconds: default 5

    assert block.run(**params)["message"] == SENT
    clock.now += 4.9
    assert block.run(**params) == {"error_status": False, "throttling_status": True,
                                   "message": "Sink cooldown applies"}
    clock.now += 0.1
    assert block.run(**params)["message"] == SENT
    assert len(server.wait_for(2)) == 2
    assert len(server.requests) == 2


def test_a_failed_inline_delivery_starts_the_cooldown_too(env: BlockEnvironment, clock: FakeClock) -> None:
    block, params = build(webhook(f"http://127.0.0.1:{closed_port()}/", fire_and_forget=False), env)

    assert block.run(**params)["error_status"] is True
    assert block.run(**params)["throttling_status"] is True


def test_cooldown_zero_sends_every_time_and_each_instance_cools_down_alone(server: HttpRecorder,
                                                                          clock: FakeClock) -> None:
    eager, eager_params = build(webhook(server.url, fire_and_forget=False, cooldown_seconds=0), make_env(clock))
    first, params = build(webhook(server.url, fire_and_forget=False), make_env(clock))
    second, _ = build(webhook(server.url, fire_and_forget=False), make_env(clock))

    assert [eager.run(**eager_params)["message"] for _ in range(3)] == [SENT] * 3
    assert first.run(**params)["message"] == SENT
    assert second.run(**params)["message"] == SENT  # another source's block: its own cooldown
    assert first.run(**params)["throttling_status"] is True
    assert len(server.wait_for(5)) == 5


def test_disable_sink_sends_nothing_and_starts_no_cooldown(server: HttpRecorder, env: BlockEnvironment) -> None:
    block, params = build(webhook(server.url, fire_and_forget=False, disable_sink="$inputs.off"), env,
                          {"type": "WorkflowParameter", "name": "off", "default_value": True})

    assert block.run(**params) == {"error_status": False, "throttling_status": False,
                                   "message": "Sink was disabled by parameter `disable_sink`"}
    assert block.run(**{**params, "disable_sink": False})["message"] == SENT
    assert len(server.wait_for(1)) == 1


def test_a_refused_background_job_is_an_error_and_starts_no_cooldown(server: HttpRecorder) -> None:
    background = InlineBackground()
    block, params = build(webhook(server.url), make_env(background=background))

    background.accept = False
    refused = block.run(**params)
    background.accept = True
    accepted = block.run(**params)

    assert refused["error_status"] is True and "too many deliveries" in refused["message"]
    assert accepted == {"error_status": False, "throttling_status": False, "message": BACKGROUND}
    assert len(server.wait_for(1)) == 1


def test_fire_and_forget_never_blocks_the_frame_and_is_bounded(server: HttpRecorder, clock: FakeClock) -> None:
    server.delay = 10.0
    with BackgroundRunner(max_pending=1, workers=1) as runner:
        block, params = build(webhook(server.url, cooldown_seconds=0), make_env(clock, background=runner))
        started = time.monotonic()
        first, second = block.run(**params), block.run(**params)
        assert time.monotonic() - started < 1.0
        assert first["message"] == BACKGROUND
        assert second["error_status"] is True  # the first is still pending
        server.release.set()
        assert len(server.wait_for(1)) == 1


def test_hosts_outside_the_allowed_ones_are_refused(server: HttpRecorder, clock: FakeClock) -> None:
    refused, params = build(webhook(server.url, fire_and_forget=False), make_env(clock, allowed_hosts=("example.com",)))
    allowed, _ = build(webhook(server.url, fire_and_forget=False), make_env(clock, allowed_hosts=("127.0.0.1",)))

    with pytest.raises(ValueError, match=re.escape("host '127.0.0.1' is not among the hosts sinks may reach")):
        refused.run(**params)
    assert allowed.run(**params)["message"] == SENT


def test_a_redirect_to_a_host_outside_the_allowed_ones_is_not_followed(server: HttpRecorder, clock: FakeClock) -> None:
    other = HttpRecorder()
    try:
        server.redirect = f"http://localhost:{other.url.rsplit(':', 1)[1]}/elsewhere"
        block, params = build(webhook(server.url, fire_and_forget=False), make_env(clock, allowed_hosts=("127.0.0.1",)))

        result = block.run(**params)

        assert result["error_status"] is True and "'localhost' is not among the hosts" in result["message"]
        assert other.requests == []
    finally:
        other.close()


@pytest.mark.parametrize(("field", "value", "error"), [
    ("url", "ftp://127.0.0.1/x", "url must be an http:// or https:// URL"),
    ("method", "DELETE", "method must be one of GET, POST, PUT"),
    ("request_timeout", "soon", "request_timeout must be an integer >= 1"),
    ("cooldown_seconds", -1, "cooldown_seconds must be an integer >= 0"),
    ("fire_and_forget", "yes", "fire_and_forget must be true or false"),
    ("headers", "X-A: 1", "headers must be an object"),
])
def test_bad_inputs_fail_the_step_with_a_clear_error(env: BlockEnvironment, field: str, value: Any,
                                                     error: str) -> None:
    block, params = build(webhook("http://127.0.0.1:9/"), env)

    with pytest.raises(ValueError, match=error):
        block.run(**{**params, field: value})


def test_secrets_are_registered_and_never_in_messages_or_logs(
        server: HttpRecorder, env: BlockEnvironment, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    password, api_key, token = "pa55-SECRET-word", "k3y-SECRET-123", "tok-SECRET-456"
    url = server.url.replace("http://", f"http://alice:{password}@") + f"/hook?access_token={token}"
    block, params = build(webhook(url, fire_and_forget=False, query_parameters={"api_key": "$inputs.key"},
                                  headers={"X-Api-Key": "$inputs.key", "X-Plain": "visible"}), env,
                          {"type": "WorkflowParameter", "name": "key"}, parameters={"key": api_key})
    assert {password, api_key, token} <= set(env.secrets) and "visible" not in env.secrets
    caplog.set_level(logging.DEBUG)

    sent = block.run(**params)
    server.status = 500
    clock.now += 60
    failed = block.run(**params)

    assert sent["message"] == SENT and failed["error_status"] is True
    request = server.wait_for(2)[0]
    assert request.query["api_key"] == [api_key] and request.headers["authorization"].startswith("Basic ")
    assert any("HTTP Request" in record.getMessage() for record in caplog.records)  # httpx logged the URL
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (password, api_key, token):
        assert secret not in logged and secret not in failed["message"]


def test_an_authorization_header_registers_the_whole_value_and_the_credential(env: BlockEnvironment) -> None:
    build(webhook("http://127.0.0.1:9/", headers={"Authorization": "Bearer abc.def"}), env)

    assert {"Bearer abc.def", "abc.def"} <= set(env.secrets)


def test_json_payload_operations_run_on_their_value(server: HttpRecorder, env: BlockEnvironment,
                                                   frame: WorkflowImage) -> None:
    detections = detections_on(frame, np.array([[10, 20, 110, 220], [5, 5, 50, 50]]), np.array([0.5, 0.9]),
                               np.array([0, 2]), ["person", "bicycle", "car"], "inf-1")
    block, params = build(webhook(server.url, fire_and_forget=False, json_payload_operations={
        "count": [{"type": "SequenceLength"}],
        "classes": [{"type": "DetectionsPropertyExtract", "property_name": "class_name"}],
    }), env)

    block.run(**{**params, "json_payload": {"count": detections, "classes": detections, "raw": 1}})

    assert server.wait_for(1)[0].json() == {"count": 2, "classes": ["car", "person"], "raw": 1}
