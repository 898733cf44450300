"""What the notification sinks share: failure messages and logs without secrets, which inputs count as
secrets, and the outcome of a delivery inline or in the background."""

import logging

import pytest

from services.worker.workflows.blocks.sinks import credentials
from services.worker.workflows.blocks.sinks.notification import NotificationSink
from tests.worker.workflows.sink_support import InlineBackground, make_env

SECRET = "s3cr3t-VALUE"


def leak() -> None:
    raise RuntimeError(f"server said: wrong password {SECRET} for http://bob:hunter2@example.com/x?token=abc")


@pytest.mark.parametrize("fire_and_forget", [False, True])
def test_a_failure_message_and_its_log_line_carry_no_secret(fire_and_forget: bool,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    env = make_env()
    credentials.register(env, [SECRET])
    caplog.set_level(logging.DEBUG)

    result = NotificationSink(None, env).deliver(leak, fire_and_forget)

    assert result["error_status"] is (not fire_and_forget)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "wrong password ***" in logged
    for text in (logged, result["message"]):
        assert SECRET not in text and "hunter2" not in text and "token=abc" not in text
    if not fire_and_forget:
        assert result["message"] == ("Failed to send notification. Internal error details: RuntimeError: server "
                                     "said: wrong password *** for http://***@example.com/x?token=***")


def test_a_refused_background_job_is_reported() -> None:
    background = InlineBackground()
    background.accept = False

    result = NotificationSink(None, make_env(background=background)).deliver(lambda: None, True)

    assert result["error_status"] is True and "too many deliveries" in result["message"]


@pytest.mark.parametrize(("name", "secret"), [
    ("Authorization", True), ("X-Api-Key", True), ("api_key", True), ("apikey", True), ("X-Auth-Token", True),
    ("client_secret", True), ("password", True), ("Cookie", True), ("X-Source", False), ("camera", False),
    ("slack_token", True), ("twilio_account_sid", True), ("twilio_auth_token", True), ("inside", False),
    ("aws_access_key_id", True), ("aws_secret_access_key", True), ("aws_session_token", True), ("aws_region", False),
    ("X-Access-Key", True), ("bucket_name", False),
])
def test_credential_names(name: str, secret: bool) -> None:
    assert credentials.is_secret_name(name) is secret


def test_secrets_in_a_url_and_in_mappings() -> None:
    url = "https://user:pw-1@host/path?signature=sig-2&camera=gate"

    assert sorted(credentials.secrets_in_url(url)) == ["pw-1", "sig-2", "user:pw-1"]
    assert list(credentials.secrets_in_url("$steps.x.url")) == []
    assert list(credentials.secrets_in_mapping({"Authorization": "Token t-3", "token": 1234, "tags": ["a"],
                                                "api_key": "$steps.keys.output", "auth": True})) == \
        ["Token t-3", "t-3", "1234"]


def test_registering_keeps_one_copy_of_each_secret() -> None:
    env = make_env()

    credentials.register(env, ["a-secret", "", "a-secret", "another"])

    assert env.secrets == ["a-secret", "another"]
