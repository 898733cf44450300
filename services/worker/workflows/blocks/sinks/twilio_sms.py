"""``roboflow_core/twilio_sms_notification@v1``: sends a text message through Twilio's REST API.

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
"""

from functools import partial
from typing import Any
from urllib.parse import quote

from services.worker.workflows.blocks.base import SinkSettings
from services.worker.workflows.blocks.sinks import inputs
from services.worker.workflows.blocks.sinks.email_message import render_message
from services.worker.workflows.blocks.sinks.notification import NotificationSink, check_destination
from services.worker.workflows.blocks.sinks.webhook_request import OperatorApi

TWILIO_TIMEOUT_S = 10.0
TRUNCATION_MARKER = "[...]"


class TwilioSmsNotification(NotificationSink):
    what = "Twilio SMS notification"
    secret_fields = ("twilio_account_sid", "twilio_auth_token")

    def run(self, *, twilio_account_sid: Any, twilio_auth_token: Any, message: Any, sender_number: Any,
            receiver_number: Any, message_parameters: Any, message_parameters_operations: Any, fire_and_forget: Any,
            disable_sink: Any, cooldown_seconds: Any, cooldown_session_key: Any, length_limit: Any) -> dict[str, Any]:
        del cooldown_session_key  # see the module docstring
        self.register_secrets(twilio_account_sid, twilio_auth_token)
        skipped = self.gate(disable_sink, cooldown_seconds)
        if skipped is not None:
            return skipped
        text = render_message(message, message_parameters, message_parameters_operations)
        api = TwilioApi(self._env.sinks, inputs.as_str(twilio_account_sid, "twilio_account_sid"),
                        inputs.as_str(twilio_auth_token, "twilio_auth_token"))
        check_destination(api.host, api.port, self._env.sinks)
        sms = partial(api.send, inputs.as_str(sender_number, "sender_number"),
                      inputs.as_str(receiver_number, "receiver_number"),
                      truncated(text, inputs.as_int(length_limit, "length_limit", 1)))
        return self.deliver(sms, fire_and_forget)


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

    def send(self, sender: str, receiver: str, body: str) -> None:
        """Sends one SMS; raises on a transport error or Twilio's refusal."""
        url = f"{self._base}/2010-04-01/Accounts/{quote(self._sid, safe='')}/Messages.json"
        with self.client(TWILIO_TIMEOUT_S) as client:
            response = client.post(url, auth=(self._sid, self._token), data={"To": receiver, "From": sender,
                                                                              "Body": body})
        if response.is_error:
            try:
                detail = response.json().get("message")
            except (ValueError, AttributeError):
                detail = None
            raise RuntimeError(f"Twilio answered HTTP {response.status_code}" + (f": {detail}" if detail else ""))
