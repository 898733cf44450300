"""roboflow_core/email_notification@v1 against a real SMTP server on 127.0.0.1 speaking TLS with a
certificate made for the test (trusted through ``SSL_CERT_FILE``, as an operator would): the mail that
arrives (placeholders, receivers, attachments), TLS modes, failures, cooldown and the password's
secrecy."""

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.sinks import email_notification
from services.worker.workflows.values import VideoMetadata, WorkflowImage, detections_on
from tests.worker.workflows.sink_support import (
    Certificate,
    FakeClock,
    SmtpRecorder,
    build,
    closed_port,
    make_certificate,
    make_env,
)

SENDER, PASSWORD = "alerts@example.com", "pa55-SECRET-smtp"
SENT = "Notification sent successfully"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def trusted(certificate: Certificate, monkeypatch: pytest.MonkeyPatch) -> Certificate:
    """The test certificate is the CA OpenSSL trusts (what SSL_CERT_FILE does for the worker)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    return certificate


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpRecorder]]:
    started: list[SmtpRecorder] = []

    def start(certificate: Certificate, mode: str = "tls", password: str = PASSWORD) -> SmtpRecorder:
        server = SmtpRecorder(certificate, mode, SENDER, password)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def email(port: int, **fields: Any) -> dict[str, Any]:
    step = {
        "type": "roboflow_core/email_notification@v1", "name": "mail", "subject": "Workflow alert",
        "sender_email": SENDER, "receiver_email": "ops@example.com", "message": "Alert",
        "smtp_server": "127.0.0.1", "smtp_port": port, "sender_email_password": "$inputs.password",
        "fire_and_forget": False,
    }
    return {**step, **fields}


PASSWORD_INPUT = {"type": "WorkflowParameter", "name": "password"}


def build_email(step: dict[str, Any], env: BlockEnvironment, password: str = PASSWORD) -> tuple[Any, dict[str, Any]]:
    return build(step, env, PASSWORD_INPUT, {"type": "WorkflowParameter", "name": "camera", "default_value": "gate"},
                 parameters={"password": password})


def test_the_mail_arrives_over_tls_with_parameters_receivers_and_attachments(
        trusted: Certificate, smtp_server: Callable[..., SmtpRecorder], env: BlockEnvironment) -> None:
    server = smtp_server(trusted)
    block, params = build_email(email(
        server.port, receiver_email=["ops@example.com", "lead@example.com"], cc_receiver_email="cc@example.com",
        bcc_receiver_email=["hidden@example.com"],
        message="Seen {{ $parameters.count }} at {{$parameters.camera}}; {{ $parameters.unknown }} stays",
        message_parameters={"count": 3, "camera": "$inputs.camera"},
    ), env)

    result = block.run(**{**params, "attachments": {"report.csv": "a,b\n1,2\n", "raw.bin": b"\x00\x01\xff"}})

    assert result == {"error_status": False, "throttling_status": False, "message": SENT}
    (mail,) = server.wait_for(1)
    assert mail.tls and mail.user == SENDER and mail.sender == SENDER
    assert mail.receivers == ["ops@example.com", "lead@example.com", "cc@example.com", "hidden@example.com"]
    message = mail.message()
    assert message["From"] == SENDER and message["Subject"] == "Workflow alert"
    assert message["To"] == "ops@example.com, lead@example.com" and message["Cc"] == "cc@example.com"
    assert message["Bcc"] is None  # unlike the reference, the hidden receivers stay hidden
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip() == "Seen 3 at gate; {{ $parameters.unknown }} stays"
    attachments = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert attachments == {"report.csv": b"a,b\n1,2\n", "raw.bin": b"\x00\x01\xff"}


def test_starttls_on_the_submission_ports(trusted: Certificate, smtp_server: Callable[..., SmtpRecorder],
                                          env: BlockEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    server = smtp_server(trusted, mode="starttls")
    # 587 and 25 need root to listen on here: the test's port stands for them.
    monkeypatch.setattr(email_notification, "STARTTLS_PORTS", frozenset({server.port}))
    block, params = build_email(email(server.port), env)

    assert block.run(**params)["message"] == SENT
    (mail,) = server.wait_for(1)
    assert mail.tls and mail.receivers == ["ops@example.com"]


def test_a_server_without_starttls_never_gets_the_password(trusted: Certificate,
                                                           smtp_server: Callable[..., SmtpRecorder],
                                                           env: BlockEnvironment,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    server = smtp_server(trusted, mode="plain")
    monkeypatch.setattr(email_notification, "STARTTLS_PORTS", frozenset({server.port}))
    block, params = build_email(email(server.port), env)

    result = block.run(**params)

    assert result["error_status"] is True and "SMTPNotSupportedError" in result["message"]
    assert server.logins == [] and server.mails == []


def test_an_untrusted_certificate_is_refused(certificate: Certificate, smtp_server: Callable[..., SmtpRecorder],
                                             env: BlockEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    server = smtp_server(certificate)
    block, params = build_email(email(server.port), env)

    result = block.run(**params)

    assert result["error_status"] is True and "CERTIFICATE_VERIFY_FAILED" in result["message"]
    assert server.logins == []


def test_a_wrong_password_is_an_error_status_without_the_password(
        trusted: Certificate, smtp_server: Callable[..., SmtpRecorder], env: BlockEnvironment,
        caplog: pytest.LogCaptureFixture) -> None:
    server = smtp_server(trusted, password="the-right-one")
    block, params = build_email(email(server.port), env)
    caplog.set_level(logging.DEBUG)

    result = block.run(**params)

    assert result["error_status"] is True and "SMTPAuthenticationError" in result["message"]
    assert server.logins == [(SENDER, False)] and server.mails == []
    assert PASSWORD in env.secrets
    assert PASSWORD not in result["message"]
    assert caplog.records and all(PASSWORD not in record.getMessage() for record in caplog.records)


def test_unreachable_server_inline_and_in_the_background(trusted: Certificate, clock: FakeClock,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    port = closed_port()
    inline, params = build_email(email(port), make_env(clock))
    background, background_params = build_email(email(port, fire_and_forget=True), make_env(clock))
    caplog.set_level(logging.WARNING)

    assert inline.run(**params)["error_status"] is True
    assert background.run(**background_params) == {
        "error_status": False, "throttling_status": False, "message": "Notification sent in the background task"}
    assert any("Failed to send e-mail" in record.getMessage() for record in caplog.records)


def test_fire_and_forget_delivers_in_the_background(trusted: Certificate, smtp_server: Callable[..., SmtpRecorder],
                                                    env: BlockEnvironment) -> None:
    server = smtp_server(trusted)
    block, params = build_email(email(server.port, fire_and_forget=True), env)

    assert block.run(**params)["message"] == "Notification sent in the background task"
    assert len(server.wait_for(1)) == 1


def test_cooldown_and_disable_sink(trusted: Certificate, smtp_server: Callable[..., SmtpRecorder],
                                   env: BlockEnvironment, clock: FakeClock) -> None:
    server = smtp_server(trusted)
    block, params = build_email(email(server.port, cooldown_seconds=10), env)

    assert block.run(**{**params, "disable_sink": True})["message"] == "Sink was disabled by parameter `disable_sink`"
    assert block.run(**params)["message"] == SENT
    clock.now += 9.5
    assert block.run(**params)["throttling_status"] is True
    clock.now += 0.5
    assert block.run(**params)["message"] == SENT
    assert len(server.wait_for(2)) == 2


def test_message_parameters_operations(trusted: Certificate, smtp_server: Callable[..., SmtpRecorder],
                                       env: BlockEnvironment,
                                       video_frame: Callable[[str, int], np.ndarray]) -> None:
    server = smtp_server(trusted)
    frame = WorkflowImage.frame(video_frame("vtest.avi", 0), "image", VideoMetadata("cam", 0, datetime(2026, 1, 1)))
    detections = detections_on(frame, np.array([[0, 0, 10, 10], [5, 5, 50, 50]]), np.array([0.9, 0.5]),
                               np.array([0, 0]), ["person"], "inf")
    block, params = build_email(email(
        server.port, message="{{ $parameters.people }} people; not computed: {{ $parameters.unused }}.",
        message_parameters_operations={"people": [{"type": "SequenceLength"}],
                                       "unused": [{"type": "SequenceLength"}]}), env)

    block.run(**{**params, "message_parameters": {"people": detections}})

    body = server.wait_for(1)[0].message().get_body(("plain",))
    assert body is not None and body.get_content().strip() == "2 people; not computed: {{ $parameters.unused }}."


@pytest.mark.parametrize(("field", "value", "error"), [
    ("receiver_email", [], "receiver_email must name at least one receiver"),
    ("receiver_email", 5, "receiver_email must be an e-mail address"),
    ("cc_receiver_email", ["ok@example.com", 3], "cc_receiver_email must be an e-mail address"),
    ("smtp_port", 70000, "smtp_port must be at most 65535"),
    ("subject", "two\nlines", "linefeed"),
    ("attachments", {"x.png": 3}, "attachments.x.png must be a string or bytes"),
])
def test_bad_inputs_fail_the_step(env: BlockEnvironment, field: str, value: Any, error: str) -> None:
    block, params = build_email(email(closed_port()), env)

    with pytest.raises(ValueError, match=error):
        block.run(**{**params, field: value})


def test_a_server_outside_the_allowed_hosts_is_refused(clock: FakeClock) -> None:
    block, params = build_email(email(465), make_env(clock, allowed_hosts=("smtp.example.com",)))

    with pytest.raises(ValueError, match="not among the hosts sinks may reach"):
        block.run(**params)


def test_the_password_is_a_secret_from_construction(env: BlockEnvironment) -> None:
    build_email(email(465), env)

    assert env.secrets == [PASSWORD]
