"""The e-mail an ``email_notification`` step sends: its text with ``{{ $parameters.x }}`` filled in, and
the MIME message (plain-text body, one ``application/octet-stream`` part per attachment).

As the reference, a placeholder whose parameter is not given stays as written, a parameter's value
goes in as ``str(value)`` after its operations chain, and only parameters the text uses are computed.
Unlike the reference, the ``Bcc`` receivers are not written in the headers (they are only envelope
receivers, see ``email_notification``).
"""

import re
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from services.worker.workflows.blocks.sinks import inputs
from services.worker.workflows.blocks.sinks.notification import with_operations

PLACEHOLDER = re.compile(r"{{\s*\$parameters\.(?P<name>\w+)\s*}}")


def render(text: str, parameters: Mapping[str, Any], operations: Mapping[str, list[dict[str, Any]]]) -> str:
    used = {match["name"] for match in PLACEHOLDER.finditer(text) if match["name"] in parameters}
    values = with_operations({name: parameters[name] for name in used}, operations, used)

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        return str(values[name]) if name in values else match.group(0)

    return PLACEHOLDER.sub(fill, text)


def render_message(message: Any, parameters: Any, operations: Any) -> str:
    """A notification's ``message`` with its placeholders filled from ``message_parameters`` (after
    ``message_parameters_operations``), each input checked first (e-mail, Slack, SMS)."""
    return render(inputs.as_str(message, "message"), inputs.as_mapping(parameters, "message_parameters"),
                  inputs.as_operations(operations, "message_parameters_operations"))


def compose(sender: str, to: list[str], cc: list[str], subject: str, body: str,
            attachments: Mapping[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message.set_content(body)
    for name, content in attachments.items():
        message.add_attachment(attachment_bytes(name, content), maintype="application", subtype="octet-stream",
                               filename=name)
    return message


def attachment_bytes(name: str, content: Any) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    raise ValueError(f"attachments.{name} must be a string or bytes, got {type(content).__name__}")
