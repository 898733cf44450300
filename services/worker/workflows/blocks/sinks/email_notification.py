"""``roboflow_core/email_notification@v1`` (and v2, below): sends an e-mail through the user's SMTP server.

As the reference: ``disable_sink``, cooldown, then the message with its placeholders filled, sent
inline or in the background (``fire_and_forget``), after logging in with ``sender_email`` and
``sender_email_password`` (registered as a secret). The connection is always encrypted and verified
against the system's CAs (``SSL_CERT_FILE`` points OpenSSL at others): implicit TLS, as the reference
on every port, except on the ports defined for STARTTLS (25, 587), where the reference cannot connect
and this block requires STARTTLS. The password is never sent in clear.

The server's host must be an allowed name (``SinkSettings.allowed_hosts``) whose every address lies in
``SinkSettings.allowed_networks``: checked when the step runs (a refusal fails the step), and again
when the connection is opened, which goes to one of the checked addresses (``connect_checked``), never
to a later answer of the name's DNS. TLS still verifies the certificate against the host's name.

Unlike the reference, Cc and Bcc receivers do get the message (the reference gives only the ``To``
addresses to the server) and Bcc addresses are not written in its headers.

``roboflow_core/email_notification@v2`` sends the same way with ``email_provider`` "Custom SMTP" (the
only one here: "Roboflow Managed API Key", Roboflow's hosted e-mail proxy, is refused at INIT), as HTML
with inline pictures and image attachments (``email_message``). A ``sender_email``, ``smtp_server`` or
``sender_email_password`` fed by a step's output that turns out empty is the reference's ``error_status``
("Custom SMTP requires ..."), after ``disable_sink`` and the cooldown, which it does not start.
"""

import smtplib
import socket
import ssl
from email.message import EmailMessage
from functools import partial
from typing import Any

from services.core.networks import NetworkPolicy
from services.core.workflows.catalogue.sinks import CUSTOM_SMTP, SMTP_FIELDS
from services.infra.destinations import connect_checked
from services.worker.workflows.blocks.sinks import inputs
from services.worker.workflows.blocks.sinks.email_message import (
    Attachment,
    Body,
    attachments_of,
    compose,
    html_body,
    render_message,
)
from services.worker.workflows.blocks.sinks.notification import NotificationSink, check_destination

STARTTLS_PORTS = frozenset({25, 587})
SMTP_TIMEOUT_S = 10.0  # the reference waits forever; a frame sent inline waits at most this per step


class _EmailSink(NotificationSink):
    what = "e-mail"
    secret_fields = ("sender_email_password",)

    def _send(self, body: Body, attachments: list[Attachment], *, subject: Any, sender_email: Any,
              receiver_email: Any, cc_receiver_email: Any, bcc_receiver_email: Any, smtp_server: Any,
              sender_email_password: Any, smtp_port: Any, fire_and_forget: Any) -> dict[str, Any]:
        """Composes the mail and sends it (inline or in the background) once the server is checked; the
        keywords are the step's fields both versions share (``run``'s ``**mail``)."""
        to = inputs.as_addresses(receiver_email, "receiver_email", required=True)
        cc = inputs.as_addresses(cc_receiver_email, "cc_receiver_email", required=False)
        bcc = inputs.as_addresses(bcc_receiver_email, "bcc_receiver_email", required=False)
        sender = inputs.as_str(sender_email, "sender_email")
        mail = compose(sender, to, cc, inputs.as_str(subject, "subject"), body, attachments)
        server = SmtpServer(inputs.as_str(smtp_server, "smtp_server"), _port(smtp_port),
                            sender, inputs.as_str(sender_email_password, "sender_email_password"),
                            self._env.sinks.allowed_networks)
        check_destination(server.host, server.port, self._env.sinks)
        return self.deliver(partial(server.send, mail, [*to, *cc, *bcc]), fire_and_forget)


class EmailNotification(_EmailSink):
    """v1: a plain-text mail. ``mail``: subject, the sender and receivers, the SMTP server, its port and
    password, and ``fire_and_forget`` (``_send``)."""

    def run(self, *, message: Any, message_parameters: Any, message_parameters_operations: Any, attachments: Any,
            disable_sink: Any, cooldown_seconds: Any, **mail: Any) -> dict[str, Any]:
        self.register_secrets(mail["sender_email_password"])
        skipped = self.gate(disable_sink, cooldown_seconds)
        if skipped is not None:
            return skipped
        body = Body(render_message(message, message_parameters, message_parameters_operations))
        return self._send(body, attachments_of(attachments, images=False), **mail)


class EmailNotificationV2(_EmailSink):
    """v2 with "Custom SMTP": an HTML mail, its pictures inline, images as JPEG attachments (``mail``: as v1's)."""

    def run(self, *, email_provider: Any, message: Any, message_parameters: Any, message_parameters_operations: Any,
            attachments: Any, disable_sink: Any, cooldown_seconds: Any, **mail: Any) -> dict[str, Any]:
        skipped = self.gate_custom("email_provider", email_provider, CUSTOM_SMTP,
                                   {name: mail[name] for name in SMTP_FIELDS}, disable_sink, cooldown_seconds)
        if skipped is not None:
            return skipped
        body = html_body(message, message_parameters, message_parameters_operations)
        return self._send(body, attachments_of(attachments, images=True), **mail)


class SmtpServer:
    """One SMTP server and the account that sends through it."""

    def __init__(self, host: str, port: int, user: str, password: str, networks: NetworkPolicy) -> None:
        self.host, self.port, self._user, self._password = host, port, user, password
        self._networks = networks

    def __repr__(self) -> str:  # never the password, even in a traceback's locals
        return f"SmtpServer({self.host!r}, {self.port})"

    def send(self, mail: EmailMessage, receivers: list[str]) -> None:
        context = ssl.create_default_context()
        if self.port in STARTTLS_PORTS:
            with _CheckedSMTP(self._networks, self.host, self.port, timeout=SMTP_TIMEOUT_S) as smtp:
                smtp.starttls(context=context)  # raises when the server does not offer it: never in clear
                self._login_and_send(smtp, mail, receivers)
        else:
            with _CheckedSMTPSSL(self._networks, self.host, self.port, timeout=SMTP_TIMEOUT_S,
                                 context=context) as smtp:
                self._login_and_send(smtp, mail, receivers)

    def _login_and_send(self, smtp: smtplib.SMTP, mail: EmailMessage, receivers: list[str]) -> None:
        smtp.login(self._user, self._password)
        smtp.send_message(mail, from_addr=self._user, to_addrs=receivers)


class _CheckedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` whose socket goes only to an address ``networks`` allows (``_get_socket`` is the hook
    both ``SMTP.connect`` and ``SMTP_SSL``'s own ``_get_socket`` call)."""

    def __init__(self, networks: NetworkPolicy, *args: Any, **kwargs: Any) -> None:
        self._networks = networks  # before connecting: SMTP(host) connects in __init__
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return connect_checked(host, port, self._networks, timeout)


class _CheckedSMTPSSL(smtplib.SMTP_SSL, _CheckedSMTP):
    """``smtplib.SMTP_SSL`` over a checked socket: its ``_get_socket`` wraps what ``_CheckedSMTP``'s returns."""

    def __init__(self, networks: NetworkPolicy, *args: Any, **kwargs: Any) -> None:
        self._networks = networks
        smtplib.SMTP_SSL.__init__(self, *args, **kwargs)


def _port(value: Any) -> int:
    port = inputs.as_int(value, "smtp_port", 1)
    if port > 65535:
        raise ValueError(f"smtp_port must be at most 65535, got {port}")
    return port
