"""``roboflow_core/twilio_sms_notification@v1`` (and v2, below): sends a text message through Twilio's REST API.

As the reference: ``disable_sink``, cooldown, then the message with its ``{{ $parameters.x }}``
placeholders filled (as the e-mail's) and cut to ``length_limit`` characters (the last ones replaced by
`` [...]``), sent inline or in the background (``fire_and_forget``): one ``POST
<api>/2010-04-01/Accounts/<sid>/Messages.json`` with ``To``, ``From`` and ``Body``, the account SID and
auth token as HTTP basic credentials. Twilio's refusal (its JSON ``message``, e.g. an invalid number) is
the failure message.

The API's address is the operator's (``SinkSettings.twilio_api_url``), never the workflow's; connections
are checked as the webhook's (allowed hosts and networks). The SID and the token are registered as
secrets: failure messages and logs never carry them. ``cooldown_session_key`` is accepted (the reference
keys its shared cache with it); cooldowns here are per step and per video source, as for the other sinks.

``roboflow_core/twilio_sms_notification@v2`` sends the same way with ``sms_provider`` "Custom Twilio" (the
only one here: "Roboflow Managed API Key", Roboflow's hosted SMS proxy, is refused at INIT). As the
reference's: no ``length_limit``: the message is cut at Twilio's limit, 1600 characters (`` [...]``
ending it); ``media_url`` (a URL or a list of them) makes it an MMS, each URL one ``MediaUrl``; a
``twilio_account_sid``, ``twilio_auth_token`` or ``sender_number`` fed by a step's output that turns out
empty is ``error_status`` ("Custom Twilio requires ..."), after ``disable_sink`` and the cooldown, which it
does not start.

Unlike the reference's: an image in ``media_url`` fails the step with an error saying why. Twilio fetches MMS
media from a public URL; the reference uploads the image to a third-party file host (tmpfiles.org) to get
one, which would publish the camera's frames and needs an outbound connection the operator never allowed,
so it is not done here: give the URL of an image Twilio can fetch. A URL must be http(s) (checked when the
step runs); Twilio, not this worker, fetches it. A message over 160 characters without media goes as a
long SMS, which Twilio splits into segments (the reference uploads a blank picture to send it as an MMS).
"""

from functools import partial
from typing import Any
from urllib.parse import quote

from services.core.workflows.catalogue.sinks import CUSTOM_TWILIO, TWILIO_FIELDS
from services.worker.workflows.blocks.base import SinkSettings
from services.worker.workflows.blocks.sinks import inputs
from services.worker.workflows.blocks.sinks.email_message import render_message
from services.worker.workflows.blocks.sinks.notification import NotificationSink, check_destination
from services.worker.workflows.blocks.sinks.webhook_request import OperatorApi, check_url
from services.worker.workflows.values import WorkflowImage

TWILIO_TIMEOUT_S = 10.0
TRUNCATION_MARKER = "[...]"
MMS_CHAR_LIMIT = 1600  # v2's cut: Twilio's longest message body
IMAGE_REFUSAL = ("media_url: an image cannot be sent here: Twilio fetches MMS media from a public URL and this "
                 "worker does not upload frames to a public file host (the reference does); give the URL of an "
                 "image Twilio can fetch")


class _TwilioSink(NotificationSink):
    what = "Twilio SMS notification"
    secret_fields = ("twilio_account_sid", "twilio_auth_token")

    def _send(self, text: str, media: list[str], *, twilio_account_sid: Any, twilio_auth_token: Any,
              sender_number: Any, receiver_number: Any, fire_and_forget: Any) -> dict[str, Any]:
        """Sends ``text`` (and ``media``, URLs) once Twilio's address is checked; the keywords are the step's
        fields both versions share (``run``'s ``**sms``)."""
        api = TwilioApi(self._env.sinks, inputs.as_str(twilio_account_sid, "twilio_account_sid"),
                        inputs.as_str(twilio_auth_token, "twilio_auth_token"))
        check_destination(api.host, api.port, self._env.sinks)
        sms = partial(api.send, inputs.as_str(sender_number, "sender_number"),
                      inputs.as_str(receiver_number, "receiver_number"), text, media)
        return self.deliver(sms, fire_and_forget)


class TwilioSmsNotification(_TwilioSink):
    """v1: an SMS cut to ``length_limit``. ``sms``: the credentials, the numbers and ``fire_and_forget``."""

    def run(self, *, message: Any, message_parameters: Any, message_parameters_operations: Any, disable_sink: Any,
            cooldown_seconds: Any, cooldown_session_key: Any, length_limit: Any, **sms: Any) -> dict[str, Any]:
        del cooldown_session_key  # see the module docstring
        self.register_secrets(sms["twilio_account_sid"], sms["twilio_auth_token"])
        skipped = self.gate(disable_sink, cooldown_seconds)
        if skipped is not None:
            return skipped
        text = render_message(message, message_parameters, message_parameters_operations)
        return self._send(truncated(text, inputs.as_int(length_limit, "length_limit", 1)), [], **sms)


class TwilioSmsNotificationV2(_TwilioSink):
    """v2 with "Custom Twilio": an SMS, or an MMS with ``media_url`` (``sms``: as v1's)."""

    def run(self, *, sms_provider: Any, message: Any, message_parameters: Any, message_parameters_operations: Any,
            media_url: Any, disable_sink: Any, cooldown_seconds: Any, **sms: Any) -> dict[str, Any]:
        skipped = self.gate_custom("sms_provider", sms_provider, CUSTOM_TWILIO,
                                   {name: sms[name] for name in TWILIO_FIELDS}, disable_sink, cooldown_seconds)
        if skipped is not None:
            return skipped
        text = render_message(message, message_parameters, message_parameters_operations)
        return self._send(truncated(text, MMS_CHAR_LIMIT), media_urls(media_url), **sms)


def media_urls(value: Any) -> list[str]:
    """``media_url``: none (null), a URL or a list of them; an image is refused (see the module docstring)."""
    items = [] if value is None else value if isinstance(value, list | tuple) else [value]
    for item in items:
        if isinstance(item, WorkflowImage):
            raise ValueError(IMAGE_REFUSAL)
        if not isinstance(item, str):
            raise ValueError(f"media_url must be a URL or a list of URLs, got {type(item).__name__}")
        try:
            check_url(item)
        except ValueError:
            raise ValueError("media_url must be http:// or https:// URLs with a host") from None
    return list(items)


def truncated(text: str, limit: int) -> str:
    """``text``, or its start and `` [...]`` in ``limit`` characters when it is longer (as the reference)."""
    if len(text) <= limit:
        return text
    return f"{text[:max(0, limit - 1 - len(TRUNCATION_MARKER))]} {TRUNCATION_MARKER}"


class TwilioApi(OperatorApi):
    """Twilio's REST API at the operator's address, for one account."""

    def __init__(self, sinks: SinkSettings, account_sid: str, auth_token: str) -> None:
        super().__init__(sinks, sinks.twilio_api_url)
        self._sid, self._token = account_sid, auth_token

    def send(self, sender: str, receiver: str, body: str, media: list[str]) -> None:
        """Sends one SMS (an MMS with ``media``, URLs); raises on a transport error or Twilio's refusal."""
        url = f"{self._base}/2010-04-01/Accounts/{quote(self._sid, safe='')}/Messages.json"
        data: dict[str, str | list[str]] = {"To": receiver, "From": sender, "Body": body}
        if media:
            data["MediaUrl"] = media  # one field per URL
        with self.client(TWILIO_TIMEOUT_S) as client:
            response = client.post(url, auth=(self._sid, self._token), data=data)
        if response.is_error:
            try:
                detail = response.json().get("message")
            except (ValueError, AttributeError):
                detail = None
            raise RuntimeError(f"Twilio answered HTTP {response.status_code}" + (f": {detail}" if detail else ""))
