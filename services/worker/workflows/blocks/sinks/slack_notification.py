"""``roboflow_core/slack_notification@v1``: posts a message to a Slack channel, with files if given.

As the reference: ``disable_sink``, cooldown, then the message with its ``{{ $parameters.x }}``
placeholders filled (as the e-mail's), sent inline or in the background (``fire_and_forget``). Without
attachments it is one ``chat.postMessage``; with attachments each file is uploaded the way Slack's
external upload works (``files.getUploadURLExternal`` for an upload URL, the bytes posted to it) and
``files.completeUploadExternal`` shares them in the channel with the message as their comment, as the
reference's ``files_upload_v2`` does. Slack answers HTTP 200 with ``{"ok": false, "error": ...}`` when it
refuses; that error is the failure message (``channel_not_found``, ``invalid_auth``, ...).

The Web API's address is the operator's (``SinkSettings.slack_api_url``), never the workflow's; the
token goes only there, as a bearer header, never to an upload URL. Every connection is checked as the
webhook's are (allowed hosts and networks, ``webhook_request.CheckedTransport``): Slack is not reachable
until the operator allows it. The token is registered as a secret: failure messages and logs never
carry it. ``cooldown_session_key`` is accepted (the reference keys its shared cache with it); cooldowns
here are per step and per video source, as for the other sinks.
"""

import json
from functools import partial
from typing import Any

import httpx

from services.worker.workflows.blocks.base import SinkSettings
from services.worker.workflows.blocks.sinks import inputs
from services.worker.workflows.blocks.sinks.email_message import attachments_of, render_message
from services.worker.workflows.blocks.sinks.notification import NotificationSink, check_destination
from services.worker.workflows.blocks.sinks.webhook_request import OperatorApi

SLACK_TIMEOUT_S = 10.0  # per request; a frame sent inline waits at most a few of these


class SlackNotification(NotificationSink):
    what = "Slack notification"
    secret_fields = ("slack_token",)

    def run(self, *, slack_token: Any, channel: Any, message: Any, message_parameters: Any,
            message_parameters_operations: Any, attachments: Any, fire_and_forget: Any, disable_sink: Any,
            cooldown_seconds: Any, cooldown_session_key: Any) -> dict[str, Any]:
        del cooldown_session_key  # see the module docstring
        self.register_secrets(slack_token)
        skipped = self.gate(disable_sink, cooldown_seconds)
        if skipped is not None:
            return skipped
        text = render_message(message, message_parameters, message_parameters_operations)
        files = {file.name: file.content for file in attachments_of(attachments, images=False)}
        api = SlackApi(self._env.sinks, inputs.as_str(slack_token, "slack_token"))
        check_destination(api.host, api.port, self._env.sinks)
        return self.deliver(partial(api.post, inputs.as_str(channel, "channel"), text, files), fire_and_forget)


class SlackApi(OperatorApi):
    """Slack's Web API at the operator's address, called with one token."""

    def __init__(self, sinks: SinkSettings, token: str) -> None:
        super().__init__(sinks, sinks.slack_api_url)
        self._token = token

    def post(self, channel: str, text: str, files: dict[str, bytes]) -> None:
        """Sends the message (and files); raises on a transport error, an HTTP error or Slack's refusal."""
        with self.client(SLACK_TIMEOUT_S) as client:
            if not files:
                self._call(client, "chat.postMessage", json={"channel": channel, "text": text})
                return
            shared = [{"id": self._upload(client, name, content), "title": name} for name, content in files.items()]
            self._call(client, "files.completeUploadExternal",
                       data={"files": json.dumps(shared), "channel_id": channel, "initial_comment": text})

    def _upload(self, client: httpx.Client, name: str, content: bytes) -> str:
        """Uploads one file (not shared yet); its Slack file id."""
        ticket = self._call(client, "files.getUploadURLExternal", data={"filename": name, "length": str(len(content))})
        upload_url, file_id = ticket.get("upload_url"), ticket.get("file_id")
        if not isinstance(upload_url, str) or not isinstance(file_id, str):
            raise RuntimeError("Slack gave no upload URL and file id for the attachment")
        response = client.post(upload_url, content=content)  # no token: the URL itself is the permission
        if response.is_error:
            raise RuntimeError(f"the upload of {name!r} was answered HTTP {response.status_code}")
        return file_id

    def _call(self, client: httpx.Client, method: str, **body: Any) -> dict[str, Any]:
        response = client.post(f"{self._base}/{method}", headers={"Authorization": f"Bearer {self._token}"}, **body)
        if response.is_error:
            raise RuntimeError(f"Slack's {method} answered HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise RuntimeError(f"Slack's {method} answered something other than JSON") from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            error = answer.get("error", "no error given") if isinstance(answer, dict) else "not an object"
            raise RuntimeError(f"Slack refused {method}: {error}")
        return answer
