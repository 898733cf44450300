"""roboflow_core/slack_notification@v1 against a real HTTP server on 127.0.0.1 that answers as Slack's Web API
does: the message, the three-step upload of attachments, Slack's refusals, the token kept to the API and out
of messages and logs, cooldown, fire-and-forget, and the operator's networks."""

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.core.errors import InvalidPayloadError
from services.core.networks import DestinationRefusedError, NetworkPolicy
from services.worker.workflows.blocks.base import BlockEnvironment
from tests.worker.workflows.sink_support import FakeClock, FakeSlack, build, make_env

TOKEN = "xoxb-1234-secret-token"
SENT = "Notification sent successfully"
SECRET_INPUT = {"type": "WorkflowParameter", "name": "slack_token"}


@pytest.fixture
def env(slack: FakeSlack) -> BlockEnvironment:
    return make_env(slack_api_url=f"{slack.url}/api")


def notification(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/slack_notification@v1", "name": "slack", "slack_token": "$inputs.slack_token",
            "channel": "C0123", "message": "{{ $parameters.count }} people at the {{ $parameters.door }} door",
            "message_parameters": {"count": 3, "door": "north"}, "fire_and_forget": False,
            "cooldown_session_key": "session-1", **fields}


def run(env: BlockEnvironment, values: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """Builds the step with ``fields`` and runs it once, ``values`` standing for what selectors would give."""
    block, params = build(notification(**fields), env, SECRET_INPUT, parameters={"slack_token": TOKEN})
    result: dict[str, Any] = block.run(**{**params, **(values or {})})
    return result


def test_a_message_is_posted_to_the_channel_with_the_token_as_bearer(slack: FakeSlack, env: BlockEnvironment) -> None:
    result = run(env)

    assert result == {"error_status": False, "throttling_status": False, "message": SENT}
    [request] = slack.wait_for(1)
    assert (request.method, request.path) == ("POST", "/api/chat.postMessage")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json() == {"channel": "C0123", "text": "3 people at the north door"}


def test_attachments_are_uploaded_then_shared_with_the_message(slack: FakeSlack, env: BlockEnvironment) -> None:
    attachments = {"report.csv": "a,b\n1,2\n", "raw.bin": b"\x00\x01"}  # a CSV formatter's text, a step's bytes
    result = run(env, {"attachments": attachments})

    assert result["message"] == SENT, result
    get_1, upload_1, get_2, upload_2, complete = slack.wait_for(5)
    assert [r.path for r in (get_1, upload_1, get_2, upload_2, complete)] == [
        "/api/files.getUploadURLExternal", "/upload/report.csv", "/api/files.getUploadURLExternal", "/upload/raw.bin",
        "/api/files.completeUploadExternal"]
    assert get_1.form() == {"filename": ["report.csv"], "length": ["8"]} and upload_1.body == b"a,b\n1,2\n"
    assert get_2.form()["filename"] == ["raw.bin"] and upload_2.body == b"\x00\x01"
    assert "authorization" not in upload_1.headers, "the token goes to the API only"
    form = complete.form()
    assert form["channel_id"] == ["C0123"] and form["initial_comment"] == ["3 people at the north door"]
    assert form["files"] == ['[{"id": "F-report.csv", "title": "report.csv"}, {"id": "F-raw.bin", "title": "raw.bin"}]']


@pytest.mark.parametrize("error", ["channel_not_found", "invalid_auth"])
def test_a_refusal_is_the_failure_message_without_the_token(slack: FakeSlack, env: BlockEnvironment, error: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    slack.refuse = error
    caplog.set_level(logging.DEBUG)

    result = run(env)

    assert result["error_status"] is True and result["throttling_status"] is False
    assert result["message"] == ("Failed to send Slack notification. Internal error details: "
                                 f"RuntimeError: Slack refused chat.postMessage: {error}")
    assert TOKEN not in "\n".join(record.getMessage() for record in caplog.records)


def test_a_token_in_an_error_is_redacted(slack: FakeSlack, env: BlockEnvironment) -> None:
    slack.refuse = f"token {TOKEN} revoked"
    assert run(env)["message"].endswith("Slack refused chat.postMessage: token *** revoked")


def test_cooldown_disable_and_fire_and_forget(slack: FakeSlack) -> None:
    clock = FakeClock()
    env = make_env(clock=clock, slack_api_url=f"{slack.url}/api")
    block, params = build(notification(cooldown_seconds=10), env, SECRET_INPUT, parameters={"slack_token": TOKEN})

    assert block.run(**params)["message"] == SENT
    clock.now += 9
    assert block.run(**params) == {"error_status": False, "throttling_status": True, "message": "Sink cooldown applies"}
    clock.now += 1
    assert block.run(**{**params, "fire_and_forget": True})["message"] == "Notification sent in the background task"
    assert block.run(**{**params, "disable_sink": True})["message"] == "Sink was disabled by parameter `disable_sink`"
    assert len(slack.wait_for(2)) == 2


def test_the_api_must_be_on_an_allowed_network_and_host(slack: FakeSlack) -> None:
    port = urlsplit(slack.url).port
    elsewhere = make_env(slack_api_url=f"http://127.0.0.2:{port}/api", allowed_networks=_only("127.0.0.1/32"))
    with pytest.raises(DestinationRefusedError, match=re.escape("127.0.0.2")):
        run(elsewhere)
    with pytest.raises(ValueError, match="is not among the hosts sinks may reach"):
        run(make_env(slack_api_url=f"{slack.url}/api", allowed_hosts=("slack.com",)))
    assert slack.requests == []


def _only(network: str) -> NetworkPolicy:
    return NetworkPolicy.parse((network,), "WORKER_WORKFLOW_ALLOWED_NETWORKS")


@pytest.mark.parametrize(("change", "expected"), [
    ({"cooldown_seconds": 901}, "an integer from 0 to 900 (seconds)"),
    ({"cooldown_session_key": None}, "'workflow.steps[0].cooldown_session_key' is required"),
    ({"channel": None}, "'workflow.steps[0].channel' is required"),
])
def test_the_manifest_s_bounds_are_checked_at_init(env: BlockEnvironment, change: dict[str, Any],
                                                   expected: str) -> None:
    step = {key: value for key, value in notification(**change).items() if value is not None}
    with pytest.raises(InvalidPayloadError, match=re.escape(expected)):
        build(step, env, SECRET_INPUT, parameters={"slack_token": TOKEN})
