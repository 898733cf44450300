"""``roboflow_core/webhook_sink@v1``: sends workflow results to an HTTP endpoint.

As the reference: ``disable_sink``, then the cooldown, then the ``*_operations`` chains on the payloads,
then one request (inline with ``request_timeout``, or in the background with ``fire_and_forget``,
whose outcome is only logged). Credentials in the URL and in credential-named headers or query
parameters are registered as secrets; a bad URL, method, a host outside ``SinkSettings.allowed_hosts`` or
one that resolves to an address outside ``SinkSettings.allowed_networks`` fails the step with a clear error
instead of reporting a delivery failure. The request checks the addresses again on every connection it
opens (redirects included; ``webhook_request.CheckedTransport``): a refusal there is a delivery failure.
"""

from functools import partial
from typing import Any

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.sinks import credentials, inputs
from services.worker.workflows.blocks.sinks.notification import NotificationSink, check_destination, with_operations
from services.worker.workflows.blocks.sinks.webhook_request import WebhookRequest


class WebhookSink(NotificationSink):
    what = "webhook notification"

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        super().__init__(step, env)
        self._register_secrets(step.params.get("url"), step.params.get("query_parameters"),
                               step.params.get("headers"))

    def run(self, *, url: Any, method: Any, query_parameters: Any, headers: Any, json_payload: Any,
            json_payload_operations: Any, multi_part_encoded_files: Any, multi_part_encoded_files_operations: Any,
            form_data: Any, form_data_operations: Any, request_timeout: Any, fire_and_forget: Any,
            disable_sink: Any, cooldown_seconds: Any) -> dict[str, Any]:
        self._register_secrets(url, query_parameters, headers)
        skipped = self.gate(disable_sink, cooldown_seconds)
        if skipped is not None:
            return skipped
        request = WebhookRequest.build(
            method=inputs.as_str(method, "method"),
            url=inputs.as_str(url, "url"),
            query_parameters=inputs.as_mapping(query_parameters, "query_parameters"),
            headers=inputs.as_mapping(headers, "headers"),
            json_payload=_operated(json_payload, json_payload_operations, "json_payload"),
            files=_operated(multi_part_encoded_files, multi_part_encoded_files_operations, "multi_part_encoded_files"),
            form_data=_operated(form_data, form_data_operations, "form_data"),
        )
        check_destination(request.host, request.port, self._env.sinks)
        timeout = inputs.as_int(request_timeout, "request_timeout", 1)
        return self.deliver(partial(request.send, timeout, self._env.sinks), fire_and_forget)

    def _register_secrets(self, url: Any, query_parameters: Any, headers: Any) -> None:
        credentials.register(self._env, credentials.secrets_in_url(url))
        credentials.register(self._env, credentials.secrets_in_mapping(query_parameters))
        credentials.register(self._env, credentials.secrets_in_mapping(headers))


def _operated(values: Any, operations: Any, field: str) -> dict[str, Any]:
    return with_operations(inputs.as_mapping(values, field), inputs.as_operations(operations, f"{field}_operations"))
