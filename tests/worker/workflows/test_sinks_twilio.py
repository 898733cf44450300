"""roboflow_core/twilio_sms_notification@v1 and @v2 ("Custom Twilio") against a real HTTP server on 127.0.0.1
answering as Twilio's REST API does: the request (account path, basic credentials, To/From/Body; v2's MediaUrl),
truncation, Twilio's refusal as the failure message, credentials kept out of messages and logs, cooldown, the
manifest's bounds, v2's refusal of images and its run-time check of credentials a step feeds."""

import base64
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from services.core.errors import InvalidPayloadError
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.sinks.twilio_sms import IMAGE_REFUSAL, truncated
from services.worker.workflows.values import VideoMetadata, WorkflowImage
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


def sms_v2(**fields: Any) -> dict[str, Any]:
    step = {key: value for key, value in sms().items() if key != "cooldown_session_key"}
    return {**step, "type": "roboflow_core/twilio_sms_notification@v2", "sms_provider": "Custom Twilio", **fields}


Step = Callable[..., dict[str, Any]]
BOTH_VERSIONS = pytest.mark.parametrize("step", [sms, sms_v2], ids=["v1", "v2"])


def run(env: BlockEnvironment, step: Step = sms, **fields: Any) -> dict[str, Any]:
    block, params = build(step(**fields), env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})
    result: dict[str, Any] = block.run(**params)
    return result


@BOTH_VERSIONS
def test_an_sms_is_posted_to_the_account_s_messages(step: Step, twilio: HttpRecorder, env: BlockEnvironment) -> None:
    assert run(env, step) == {"error_status": False, "throttling_status": False, "message": SENT}

    [request] = twilio.wait_for(1)
    assert (request.method, request.path) == ("POST", f"/2010-04-01/Accounts/{SID}/Messages.json")
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request.form() == {"To": ["+15550002222"], "From": ["+15550001111"], "Body": ["7 people in the loading bay"]}


def test_a_long_message_is_cut_to_the_length_limit(twilio: HttpRecorder, env: BlockEnvironment) -> None:
    run(env, length_limit=20)
    [request] = twilio.wait_for(1)
    assert request.form()["Body"] == ["7 people in th [...]"]  # 20 characters, the marker included
    assert len(truncated("x" * 200, 160)) == 160 and truncated("x" * 160, 160) == "x" * 160


@BOTH_VERSIONS
def test_twilio_s_refusal_is_the_failure_message_without_credentials(step: Step, twilio: HttpRecorder,
                                                                     env: BlockEnvironment,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    twilio.status = 400
    caplog.set_level(logging.DEBUG)

    result = run(env, step)

    assert result["error_status"] is True
    assert result["message"] == ("Failed to send Twilio SMS notification. Internal error details: RuntimeError: "
                                 f"Twilio answered HTTP 400: {INVALID_NUMBER}")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert INVALID_NUMBER in logged and TOKEN not in logged and SID not in logged


@BOTH_VERSIONS
def test_cooldown_and_fire_and_forget(step: Step, twilio: HttpRecorder) -> None:
    clock = FakeClock()
    env = make_env(clock=clock, twilio_api_url=twilio.url)
    block, params = build(step(cooldown_seconds=60), env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})

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


# ----------------------------------------------------------------------------- v2 ("Custom Twilio")


def picture() -> WorkflowImage:
    return WorkflowImage.frame(np.zeros((8, 8, 3), np.uint8), "image", VideoMetadata("cam", 0, datetime(2026, 1, 1)))


@pytest.mark.parametrize(("media_url", "sent"), [
    ("https://cdn.example.com/a.jpg", ["https://cdn.example.com/a.jpg"]),
    (["https://cdn.example.com/a.jpg", "http://cdn.example.com/b.png"],
     ["https://cdn.example.com/a.jpg", "http://cdn.example.com/b.png"]),
])
def test_v2_media_urls_make_an_mms(twilio: HttpRecorder, env: BlockEnvironment, media_url: Any,
                                   sent: list[str]) -> None:
    assert run(env, sms_v2, media_url=media_url)["message"] == SENT

    [request] = twilio.wait_for(1)
    assert request.form() == {"To": ["+15550002222"], "From": ["+15550001111"], "Body": ["7 people in the loading bay"],
                              "MediaUrl": sent}


def test_v2_media_url_from_a_selector(twilio: HttpRecorder, env: BlockEnvironment) -> None:
    block, params = build(sms_v2(media_url="$inputs.media", cooldown_seconds=0), env, *CREDENTIALS,
                          {"type": "WorkflowParameter", "name": "media"},
                          parameters={"sid": SID, "token": TOKEN, "media": ["https://cdn.example.com/c.jpg"]})

    assert block.run(**{**params, "media_url": []})["message"] == SENT  # none: an SMS
    assert block.run(**params)["message"] == SENT
    first, second = twilio.wait_for(2)
    assert "MediaUrl" not in first.form() and second.form()["MediaUrl"] == ["https://cdn.example.com/c.jpg"]


@pytest.mark.parametrize("media_url", [picture(), ["https://cdn.example.com/a.jpg", picture()]])
def test_v2_an_image_is_refused_with_the_reason(twilio: HttpRecorder, env: BlockEnvironment, media_url: Any) -> None:
    block, params = build(sms_v2(media_url="$inputs.image"), env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})

    with pytest.raises(ValueError, match=re.escape(IMAGE_REFUSAL)):
        block.run(**{**params, "media_url": media_url})
    assert twilio.requests == []
    assert "public URL" in IMAGE_REFUSAL and "give the URL of an image Twilio can fetch" in IMAGE_REFUSAL


@pytest.mark.parametrize("media_url", ["ftp://cdn.example.com/a.jpg", "a.jpg", [3]])
def test_v2_media_url_must_be_http_urls(env: BlockEnvironment, media_url: Any) -> None:
    block, params = build(sms_v2(), env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})

    with pytest.raises(ValueError, match="media_url must be"):
        block.run(**{**params, "media_url": media_url})


def test_v2_cuts_the_message_at_twilio_s_1600_characters(twilio: HttpRecorder, env: BlockEnvironment) -> None:
    run(env, sms_v2, message="x" * 1000)  # over an SMS's 160: sent whole, Twilio splits it
    run(env, sms_v2, message="y" * 2000)

    first, second = twilio.wait_for(2)
    assert first.form()["Body"] == ["x" * 1000]
    assert second.form()["Body"] == ["y" * 1594 + " [...]"] and len(second.form()["Body"][0]) == 1600


@pytest.mark.parametrize("field", ["twilio_account_sid", "twilio_auth_token", "sender_number"])
@pytest.mark.parametrize("value", [None, ""])
def test_v2_a_credential_a_step_left_empty_is_an_error_status(twilio: HttpRecorder, env: BlockEnvironment,
                                                              field: str, value: Any) -> None:
    block, params = build(sms_v2(cooldown_seconds=60), env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})

    # What a selector of a step's output (``$steps.vault.twilio_auth_token``) may resolve to when the step runs.
    assert block.run(**{**params, field: value}) == {
        "error_status": True, "throttling_status": False,
        "message": "Custom Twilio requires twilio_account_sid, twilio_auth_token, and sender_number"}
    assert twilio.requests == []
    assert block.run(**params)["message"] == SENT, "no cooldown started"


def test_v2_credentials_a_step_feeds_are_secrets(twilio: HttpRecorder, env: BlockEnvironment,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    twilio.status = 401
    block, params = build(sms_v2(), env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})
    caplog.set_level(logging.DEBUG)

    result = block.run(**{**params, "twilio_auth_token": "step-fed-token"})

    assert "step-fed-token" in env.secrets and result["error_status"] is True
    assert "step-fed-token" not in json.dumps(result) and SID not in json.dumps(result)
    assert all("step-fed-token" not in record.getMessage() for record in caplog.records)


def test_v2_refuses_another_provider_at_run_time(env: BlockEnvironment) -> None:
    block, params = build(sms_v2(), env, *CREDENTIALS, parameters={"sid": SID, "token": TOKEN})

    with pytest.raises(ValueError, match="sms_provider must be 'Custom Twilio' here"):
        block.run(**{**params, "sms_provider": "Roboflow Managed API Key"})
