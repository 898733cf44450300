"""The e-mail an ``email_notification`` step sends: its text with ``{{ $parameters.x }}`` filled in, and
the MIME message.

As the reference, a placeholder whose parameter is not given stays as written, a parameter's value
goes in as ``str(value)`` after its operations chain, and only parameters the text uses are computed.
Unlike the reference, the ``Bcc`` receivers are not written in the headers (they are only envelope
receivers, see ``email_notification``).

v1 sends a plain-text body, one ``application/octet-stream`` part per attachment (a string or bytes).
v2 (its "Custom SMTP" provider) sends HTML, as the reference's: the message is HTML as written, each
parameter's value is HTML-escaped, an image-valued parameter becomes ``<img src="cid:image_<name>">``
with its JPEG in a ``multipart/related`` part of that Content-ID, and line breaks become ``<br>``. Its
attachments may also be images: sent as ``image/jpeg`` (the reference: ``application/octet-stream``),
``.jpg`` appended to a name that does not end in ``.jpg`` or ``.jpeg``.
"""

import html
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from services.worker.workflows.blocks.sinks import inputs
from services.worker.workflows.blocks.sinks.images import jpeg_bytes
from services.worker.workflows.blocks.sinks.notification import with_operations
from services.worker.workflows.values import WorkflowImage

PLACEHOLDER = re.compile(r"{{\s*\$parameters\.(?P<name>\w+)\s*}}")

Shown = Callable[[str, Any], str]  # (parameter's name, its value after the operations) -> its text in the message


def as_text(name: str, value: Any) -> str:
    return str(value)


def render(text: str, parameters: Mapping[str, Any], operations: Mapping[str, list[dict[str, Any]]],
           show: Shown = as_text) -> str:
    used = {match["name"] for match in PLACEHOLDER.finditer(text) if match["name"] in parameters}
    values = with_operations({name: parameters[name] for name in used}, operations, used)

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        return show(name, values[name]) if name in values else match.group(0)

    return PLACEHOLDER.sub(fill, text)


def render_message(message: Any, parameters: Any, operations: Any, show: Shown = as_text) -> str:
    """A notification's ``message`` with its placeholders filled from ``message_parameters`` (after
    ``message_parameters_operations``), each input checked first (e-mail, Slack, SMS)."""
    return render(inputs.as_str(message, "message"), inputs.as_mapping(parameters, "message_parameters"),
                  inputs.as_operations(operations, "message_parameters_operations"), show)


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content: bytes
    maintype: str = "application"
    subtype: str = "octet-stream"


@dataclass(slots=True)
class Body:
    """A mail's body: plain text, or HTML with the pictures its ``cid:`` links name (Content-ID -> JPEG)."""

    text: str
    html: bool = False
    pictures: dict[str, bytes] = field(default_factory=dict)


def html_body(message: Any, parameters: Any, operations: Any) -> Body:
    """v2's HTML body (see the module's docstring)."""
    body = Body("", html=True)

    def show(name: str, value: Any) -> str:
        if not isinstance(value, WorkflowImage):
            return html.escape(str(value))
        cid = f"image_{name}"  # the reference's; ``name`` is a word (\w+): safe in the attributes
        if cid not in body.pictures:
            body.pictures[cid] = jpeg_bytes(value)
        return f'<img src="cid:{cid}" alt="{name}" style="max-width: 600px; height: auto;">'

    body.text = render_message(message, parameters, operations, show).replace("\n", "<br>\n")
    return body


def compose(sender: str, to: list[str], cc: list[str], subject: str, body: Body,
            attachments: Iterable[Attachment]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message.set_content(body.text, subtype="html" if body.html else "plain")
    for cid, picture in body.pictures.items():  # each makes the body multipart/related
        message.add_related(picture, maintype="image", subtype="jpeg", cid=f"<{cid}>", disposition="inline")
    for attachment in attachments:  # the first makes the message multipart/mixed
        message.add_attachment(attachment.content, maintype=attachment.maintype, subtype=attachment.subtype,
                               filename=attachment.name)
    return message


def attachments_of(value: Any, images: bool) -> list[Attachment]:
    """The step's ``attachments`` (file name -> a string or bytes; with ``images``, an image too)."""
    return [attachment(name, content, images) for name, content in inputs.as_mapping(value, "attachments").items()]


def attachment(name: str, content: Any, images: bool) -> Attachment:
    if isinstance(content, bytes):
        return Attachment(name, content)
    if isinstance(content, str):
        return Attachment(name, content.encode("utf-8"))
    if images and isinstance(content, WorkflowImage):
        named = name if name.lower().endswith((".jpg", ".jpeg")) else f"{name}.jpg"
        return Attachment(named, jpeg_bytes(content), "image", "jpeg")
    expected = "a string, bytes or an image" if images else "a string or bytes"
    raise ValueError(f"attachments.{name} must be {expected}, got {type(content).__name__}")
