"""roboflow_core/email_notification@v1 and @v2 ("Custom SMTP") against a real SMTP server on 127.0.0.1 speaking TLS
with a certificate made for the test (trusted through ``SSL_CERT_FILE``, as an operator would): the mail that
arrives (placeholders, receivers, attachments; v2's HTML, inline pictures and image attachments), TLS modes,
failures, cooldown and the password's secrecy."""

import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import cv2
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


def email_v2(port: int, **fields: Any) -> dict[str, Any]:
    return email(port, type="roboflow_core/email_notification@v2", email_provider="Custom SMTP", **fields)


Step = Callable[..., dict[str, Any]]
BOTH_VERSIONS = pytest.mark.parametrize("step", [email, email_v2], ids=["v1", "v2"])
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


@BOTH_VERSIONS
def test_starttls_on_the_submission_ports(step: Step, trusted: Certificate, smtp_server: Callable[..., SmtpRecorder],
                                          env: BlockEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    server = smtp_server(trusted, mode="starttls")
    # 587 and 25 need root to listen on here: the test's port stands for them.
    monkeypatch.setattr(email_notification, "STARTTLS_PORTS", frozenset({server.port}))
    block, params = build_email(step(server.port), env)

    assert block.run(**params)["message"] == SENT
    (mail,) = server.wait_for(1)
    assert mail.tls and mail.receivers == ["ops@example.com"]


@BOTH_VERSIONS
def test_a_server_without_starttls_never_gets_the_password(step: Step, trusted: Certificate,
                                                           smtp_server: Callable[..., SmtpRecorder],
                                                           env: BlockEnvironment,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    server = smtp_server(trusted, mode="plain")
    monkeypatch.setattr(email_notification, "STARTTLS_PORTS", frozenset({server.port}))
    block, params = build_email(step(server.port), env)

    result = block.run(**params)

    assert result["error_status"] is True and "SMTPNotSupportedError" in result["message"]
    assert server.logins == [] and server.mails == []


@BOTH_VERSIONS
def test_an_untrusted_certificate_is_refused(step: Step, certificate: Certificate,
                                             smtp_server: Callable[..., SmtpRecorder],
                                             env: BlockEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    server = smtp_server(certificate)
    block, params = build_email(step(server.port), env)

    result = block.run(**params)

    assert result["error_status"] is True and "CERTIFICATE_VERIFY_FAILED" in result["message"]
    assert server.logins == []


@BOTH_VERSIONS
def test_a_wrong_password_is_an_error_status_without_the_password(
        step: Step, trusted: Certificate, smtp_server: Callable[..., SmtpRecorder], env: BlockEnvironment,
        caplog: pytest.LogCaptureFixture) -> None:
    server = smtp_server(trusted, password="the-right-one")
    block, params = build_email(step(server.port), env)
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


@BOTH_VERSIONS
def test_fire_and_forget_delivers_in_the_background(step: Step, trusted: Certificate,
                                                    smtp_server: Callable[..., SmtpRecorder],
                                                    env: BlockEnvironment) -> None:
    server = smtp_server(trusted)
    block, params = build_email(step(server.port, fire_and_forget=True), env)

    assert block.run(**params)["message"] == "Notification sent in the background task"
    assert len(server.wait_for(1)) == 1


@BOTH_VERSIONS
def test_cooldown_and_disable_sink(step: Step, trusted: Certificate, smtp_server: Callable[..., SmtpRecorder],
                                   env: BlockEnvironment, clock: FakeClock) -> None:
    server = smtp_server(trusted)
    block, params = build_email(step(server.port, cooldown_seconds=10), env)

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


@BOTH_VERSIONS
def test_a_server_outside_the_allowed_hosts_is_refused(step: Step, clock: FakeClock) -> None:
    block, params = build_email(step(465), make_env(clock, allowed_hosts=("smtp.example.com",)))

    with pytest.raises(ValueError, match="not among the hosts sinks may reach"):
        block.run(**params)


@BOTH_VERSIONS
def test_the_password_is_a_secret_from_construction(step: Step, env: BlockEnvironment) -> None:
    build_email(step(465), env)

    assert env.secrets == [PASSWORD]


# ----------------------------------------------------------------------------- v2 ("Custom SMTP")


def picture(colour: tuple[int, int, int] = (0, 128, 255)) -> WorkflowImage:
    pixels = np.full((40, 60, 3), colour, np.uint8)
    return WorkflowImage.frame(pixels, "image", VideoMetadata("cam", 0, datetime(2026, 1, 1)))


def decoded(jpeg: bytes) -> np.ndarray:
    assert jpeg[:2] == b"\xff\xd8", "a JPEG"
    pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None
    return pixels


def near(pixels: np.ndarray, image: WorkflowImage) -> bool:
    return pixels.shape == image.image.shape and float(np.abs(pixels.astype(int) - image.image).mean()) < 4


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None and body.get_content_type() == "text/html"
    return str(body.get_content()).replace("\r\n", "\n")  # as SMTP carried it


def test_v2_sends_html_with_escaped_values_and_the_picture_inline(
        trusted: Certificate, smtp_server: Callable[..., SmtpRecorder], env: BlockEnvironment) -> None:
    server = smtp_server(trusted)
    frame = picture()
    block, params = build_email(email_v2(
        server.port, message="<b>{{ $parameters.count }}</b> at {{ $parameters.camera }}: {{ $parameters.label }}\n"
                             "{{ $parameters.frame }} {{$parameters.frame}} {{ $parameters.unknown }}",
        message_parameters={"count": 3, "camera": "$inputs.camera", "label": '<script>"x" & y</script>'},
    ), env)

    result = block.run(**{**params, "message_parameters": {**params["message_parameters"], "frame": frame}})

    assert result == {"error_status": False, "throttling_status": False, "message": SENT}
    message = server.wait_for(1)[0].message()
    assert message.get_content_type() == "multipart/related" and message["Subject"] == "Workflow alert"
    image = '<img src="cid:image_frame" alt="frame" style="max-width: 600px; height: auto;">'
    assert html_of(message).strip() == (
        "<b>3</b> at gate: &lt;script&gt;&quot;x&quot; &amp; y&lt;/script&gt;<br>\n"
        f"{image} {image} {{{{ $parameters.unknown }}}}")
    [inline] = [part for part in message.iter_parts() if part.get_content_maintype() == "image"]
    assert inline["Content-ID"] == "<image_frame>" and inline.get_content_type() == "image/jpeg"
    assert inline.get_content_disposition() == "inline"
    assert near(decoded(inline.get_content()), frame)


def test_v2_operations_run_before_the_value_is_escaped_or_inlined(
        trusted: Certificate, smtp_server: Callable[..., SmtpRecorder], env: BlockEnvironment) -> None:
    server = smtp_server(trusted)
    block, params = build_email(email_v2(
        server.port, message="{{ $parameters.size }} / {{ $parameters.name }}",
        message_parameters_operations={"size": [{"type": "ExtractImageProperty", "property_name": "width"}],
                                       "name": [{"type": "StringToUpperCase"}]}), env)

    block.run(**{**params, "message_parameters": {"size": picture(), "name": "a<b"}})

    message = server.wait_for(1)[0].message()
    assert html_of(message).strip() == "60 / A&lt;B"
    assert message.get_content_type() == "text/html", "no picture: a single HTML part"


def test_v2_attaches_images_as_jpeg_beside_the_inline_picture(
        trusted: Certificate, smtp_server: Callable[..., SmtpRecorder], env: BlockEnvironment) -> None:
    server = smtp_server(trusted)
    frame, snapshot = picture(), picture((200, 10, 10))
    block, params = build_email(email_v2(server.port, message="{{ $parameters.frame }}"), env)

    block.run(**{**params, "message_parameters": {"frame": frame}, "attachments": {
        "snapshot": snapshot, "kept.JPEG": snapshot, "report.csv": "a,b\n", "raw.bin": b"\x00\xff"}})

    message = server.wait_for(1)[0].message()
    assert message.get_content_type() == "multipart/mixed"
    related = next(part for part in message.iter_parts() if part.get_content_type() == "multipart/related")
    assert [part["Content-ID"] for part in related.iter_parts()] == [None, "<image_frame>"]
    files = {part.get_filename(): part for part in message.iter_attachments()}
    assert list(files) == ["snapshot.jpg", "kept.JPEG", "report.csv", "raw.bin"]
    assert [part.get_content_type() for part in files.values()] == ["image/jpeg", "image/jpeg",
                                                                    "application/octet-stream",
                                                                    "application/octet-stream"]
    assert near(decoded(files["snapshot.jpg"].get_content()), snapshot)
    assert files["report.csv"].get_content() == b"a,b\n" and files["raw.bin"].get_content() == b"\x00\xff"


@pytest.mark.parametrize("field", ["sender_email", "smtp_server", "sender_email_password"])
@pytest.mark.parametrize("value", [None, ""])
def test_v2_an_smtp_field_a_step_left_empty_is_an_error_status(
        trusted: Certificate, smtp_server: Callable[..., SmtpRecorder], env: BlockEnvironment, field: str,
        value: Any) -> None:
    server = smtp_server(trusted)
    block, params = build_email(email_v2(server.port, cooldown_seconds=60), env)

    # What a selector of a step's output (``$steps.vault.smtp_password``) may resolve to when the step runs.
    assert block.run(**{**params, field: value}) == {
        "error_status": True, "throttling_status": False,
        "message": "Custom SMTP requires sender_email, smtp_server, and sender_email_password"}
    assert server.logins == []
    assert block.run(**params)["message"] == SENT, "no cooldown started"


def test_v2_a_step_s_password_is_a_secret_kept_out_of_outputs_and_logs(
        trusted: Certificate, smtp_server: Callable[..., SmtpRecorder], env: BlockEnvironment,
        caplog: pytest.LogCaptureFixture) -> None:
    server = smtp_server(trusted, password="the-right-one")
    block, params = build_email(email_v2(server.port, message="{{ $parameters.p }}",
                                         message_parameters={"p": "$inputs.camera"}), env)
    caplog.set_level(logging.DEBUG)
    stolen = "step-fed-Pa55"  # not a literal: registered when the step runs

    result = block.run(**{**params, "sender_email_password": stolen})

    assert stolen in env.secrets
    assert result["error_status"] is True and "SMTPAuthenticationError" in result["message"]
    assert stolen not in json.dumps(result) and server.logins == [(SENDER, False)]
    assert all(stolen not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(("field", "value", "error"), [
    ("attachments", {"x.bin": 3}, "attachments.x.bin must be a string, bytes or an image, got int"),
    ("email_provider", "Roboflow Managed API Key", "email_provider must be 'Custom SMTP' here"),
    ("receiver_email", [], "receiver_email must name at least one receiver"),
])
def test_v2_bad_inputs_fail_the_step(env: BlockEnvironment, field: str, value: Any, error: str) -> None:
    block, params = build_email(email_v2(closed_port()), env)

    with pytest.raises(ValueError, match=error):
        block.run(**{**params, field: value})
