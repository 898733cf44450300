"""roboflow_core/twilio_sms_notification@v1 against a real HTTP server on 127.0.0.1 answering as Twilio's REST API
does: the request (account path, basic credentials, To/From/Body), truncation, Twilio's refusal as the failure
message, credentials kept out of messages and logs, cooldown, and the manifest's bounds."""

import base64
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.sinks.twilio_sms import truncated
from tests.worker.workflows.sink_support import FakeClock, HttpRecorder, build, make_env

SID = "AC0123456789abcdef"
TOKEN = "twilio-secret-token"
SENT = "Notification sent successfully"
CREDENTIALS = ({"type": "WorkflowParameter", "name": "sid"}, {"type": "WorkflowParameter", "name": "token"})
INVALID_NUMBER = "The 'To' number +1555 is not a valid phone number."


@pytest.fixture
def twilio() -> Iterator[HttpRecorder]:
    server = HttpRecorder()
    server.status = 201
    server.respond = lambda request: ({"sid": "SM1", "status": "queued"} if server.status < 400
                                      else {"code": 21211, "message": INVALID_NUMBER, "status": server.status})
    yield server
    server.close()


@pytest.fixture
def env(twilio: HttpRecorder) -> BlockEnvironment:
    return make_env(twilio_api_url=twilio.url)


def sms(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/twilio_sms_notification@v1", "name": "sms", "twilio_account_sid": "$inputs.sid",
            "twilio_auth_token": "$inputs.token", "message": "{{ $parameters.count }} people in the loading bay",
            "sender_number": "+15550001111", "receiver_number": "+15550002222",
            "message_parameters": {"count": 7}, "fire_and_forget": False, "cooldown_session_key": "bay", **fields}


def run(env: BlockEnvironment, **fields: Any) -> dict[str, Any]:
    block, params = build(sms(**fields), env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})
    result: dict[str, Any] = block.run(**params)
    return result


def test_an_sms_is_posted_to_the_account_s_messages(twilio: HttpRecorder, env: BlockEnvironment) -> None:
    assert run(env) == {"error_status": False, "throttling_status": False, "message": SENT}

    [request] = twilio.wait_for(1)
    assert (request.method, request.path) == ("POST", f"/2010-04-01/Accounts/{SID}/Messages.json")
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request.form() == {"To": ["+15550002222"], "From": ["+15550001111"], "Body": ["7 people in the loading bay"]}


def test_a_long_message_is_cut_to_the_length_limit(twilio: HttpRecorder, env: BlockEnvironment) -> None:
    run(env, length_limit=20)
    [request] = twilio.wait_for(1)
    assert request.form()["Body"] == ["7 people in th [...]"]  # 20 characters, the marker included
    assert len(truncated("x" * 200, 160)) == 160 and truncated("x" * 160, 160) == "x" * 160


def test_twilio_s_refusal_is_the_failure_message_without_credentials(twilio: HttpRecorder, env: BlockEnvironment,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    twilio.status = 400
    caplog.set_level(logging.DEBUG)

    result = run(env)

    assert result["error_status"] is True
    assert result["message"] == ("Failed to send Twilio SMS notification. Internal error details: RuntimeError: "
                                 f"Twilio answered HTTP 400: {INVALID_NUMBER}")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert INVALID_NUMBER in logged and TOKEN not in logged and SID not in logged


def test_cooldown_and_fire_and_forget(twilio: HttpRecorder) -> None:
    clock = FakeClock()
    env = make_env(clock=clock, twilio_api_url=twilio.url)
    block, params = build(sms(cooldown_seconds=60), env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})

    assert block.run(**{**params, "fire_and_forget": True})["message"] == "Notification sent in the background task"
    clock.now += 59
    assert block.run(**params)["throttling_status"] is True
    clock.now += 1
    assert block.run(**params)["message"] == SENT
    assert len(twilio.wait_for(2)) == 2


@pytest.mark.parametrize(("change", "expected"), [
    ({"cooldown_seconds": 901}, "an integer from 0 to 900 (seconds)"),
    ({"length_limit": 0}, "a positive integer"),
    ({"receiver_number": None}, "field 'workflow.steps[0].receiver_number' is required"),
])
def test_the_manifest_s_bounds_are_checked_at_init(env: BlockEnvironment, change: dict[str, Any],
                                                   expected: str) -> None:
    step = {key: value for key, value in sms(**change).items() if value is not None}
    with pytest.raises(InvalidPayloadError, match=re.escape(expected)):
        build(step, env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})
