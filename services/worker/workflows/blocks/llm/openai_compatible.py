"""``roboflow_core/openai_compatible@v1``: a prompt to any OpenAI-compatible chat completions API (vLLM, Ollama,
LM Studio, a gateway) at the workflow's own ``base_url`` (``POST <base_url>/chat/completions``).

The request, as the reference's (the OpenAI SDK's) is: ``model`` (``model_name``), ``messages`` (the
``system_prompt`` when given, then one user message: the instruction's text, when not empty, and one ``image_url``
part per image), ``max_tokens``, ``temperature`` when given, and ``extra_body``'s keys merged at the top level
(``guided_choice``, ``chat_template_kwargs``: a key there replaces the block's own). The key, when given, goes as
``Authorization: Bearer <key>``; with none, no Authorization header is sent (the reference's SDK sends
``Bearer no-key``).

``prompt_parameters`` feed the instruction: each value goes through its ``prompt_parameters_operations`` (operations
for a name the parameters do not declare are ignored, as there); an image (a workflow image, sent as a base64 JPEG,
or JPEG bytes, e.g. ``ConvertImageToJPEG``'s) or a list holding images becomes image parts (its non-image items are
dropped) and its ``{{ $parameters.<name> }}`` placeholders are removed from the text; anything else replaces its
placeholders as ``str(value)``; a placeholder naming no parameter stays as written. The images go in a fixed order,
the parameters the text names first (in the order it first names them), then the others in the order given (the
reference's order among the named ones changes from one process to the next).

The base URL is the workflow's, so it is outbound traffic like a webhook's: before the request the host must be
allowed (``WORKER_WORKFLOW_ALLOWED_HOSTS``) and every address it resolves to must lie in the allowed networks
(``WORKER_WORKFLOW_ALLOWED_NETWORKS``: loopback only unless the operator allows more), else the step fails on that
frame with a clear error. The connection checks the addresses again (``CheckedTransport``). As in the reference,
whatever goes wrong with the request itself (refused, unreachable, an HTTP error, a timeout, an answer without
text) does not fail the step: ``output`` is ``""`` and ``error_status`` says what happened (``""`` on success),
without the key or the URL's credentials, which are registered as the step's secrets.
"""

import base64
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from services.core.networks import DestinationRefusedError
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.llm.client import (
    ApiRequest,
    HostedApi,
    ProviderError,
    jpeg_base64,
    optional_number,
    text,
)
from services.worker.workflows.blocks.sinks import credentials, inputs
from services.worker.workflows.blocks.sinks.email_message import PLACEHOLDER
from services.worker.workflows.blocks.sinks.notification import check_destination, with_operations
from services.worker.workflows.values import WorkflowImage

PROVIDER = "OpenAI-compatible"
_DETAIL_CHARS = 300

logger = logging.getLogger(__name__)


def _is_image(value: Any) -> bool:
    return isinstance(value, WorkflowImage | bytes)


def image_urls(value: Any) -> list[str]:
    """The data URLs of an image, or of the images in a list (empty: not an image)."""
    items = [value] if _is_image(value) else value if isinstance(value, list) else []
    return [_data_url(item) for item in items if _is_image(item)]


def _data_url(image: WorkflowImage | bytes) -> str:
    data = base64.b64encode(image).decode("ascii") if isinstance(image, bytes) else jpeg_base64(image)
    return f"data:image/jpeg;base64,{data}"


def prompt_content(prompt: str, values: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The instruction's text with its placeholders filled, and the images' data URLs (see the module's doc)."""
    named = list(dict.fromkeys(match["name"] for match in PLACEHOLDER.finditer(prompt) if match["name"] in values))
    urls: list[str] = []
    images: set[str] = set()
    for name in [*named, *(name for name in values if name not in named)]:
        found = image_urls(values[name])
        if found:
            urls.extend(found)
            images.add(name)

    def fill(match: Any) -> str:
        name = match["name"]
        if name not in values:
            return str(match.group(0))
        return "" if name in images else str(values[name])

    return PLACEHOLDER.sub(fill, prompt).strip(), urls


def chat_request(model: str, system_prompt: str | None, prompt: str, urls: list[str], max_tokens: int,
                 temperature: float | None, extra_body: Mapping[str, Any] | None, key: str | None) -> ApiRequest:
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt}] if prompt else []
    content.extend({"type": "image_url", "image_url": {"url": url}} for url in urls)
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if temperature is not None:
        body["temperature"] = temperature
    body.update(extra_body or {})
    return ApiRequest("/chat/completions", body, {"Authorization": f"Bearer {key}"} if key else {})


def answer_text(answer: Mapping[str, Any]) -> str:
    """The first choice's text; raises :class:`ProviderError` when there is none."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        error = answer.get("error")
        detail = error.get("message") if isinstance(error, Mapping) else error
        detail = detail[:_DETAIL_CHARS] if isinstance(detail, str) and detail else "no response choices returned"
        raise ProviderError(f"{PROVIDER} API returned no choices: {detail}")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, str):
        raise ProviderError(f"{PROVIDER} API returned empty message content "
                            f"(finish_reason={choices[0].get('finish_reason')})")
    return content


def checked_base_url(value: Any) -> str:
    url = text(value, "base_url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if host is None or parts.scheme not in ("http", "https") or parts.query or parts.fragment:
        raise ValueError("base_url must be an http:// or https:// URL with a host and no query or fragment")
    return url


class OpenAiCompatibleBlock:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._env = env
        self._register(step.params.get("api_key"), step.params.get("base_url"))

    def _register(self, key: Any, url: Any) -> None:
        """The key and the URL's credentials: redacted from errors, logs and ``error_status``."""
        if isinstance(key, str) and not key.startswith("$"):
            credentials.register(self._env, [key])
        if isinstance(url, str):
            credentials.register(self._env, credentials.secrets_in_url(url))

    def run(self, *, base_url: Any, model_name: Any, api_key: Any, system_prompt: Any, prompt: Any,
            prompt_parameters: Any, prompt_parameters_operations: Any, max_tokens: Any, temperature: Any,
            extra_body: Any) -> dict[str, Any]:
        self._register(api_key, base_url)
        url = checked_base_url(base_url)
        key = _optional_text(api_key, "api_key") or None
        values = with_operations(inputs.as_mapping(prompt_parameters, "prompt_parameters"),
                                 inputs.as_operations(prompt_parameters_operations, "prompt_parameters_operations"))
        instruction, urls = prompt_content(inputs.as_str(prompt, "prompt"), values)
        request = chat_request(
            text(model_name, "model_name"), _optional_text(system_prompt, "system_prompt"), instruction, urls,
            _max_tokens(max_tokens), optional_number(temperature, "temperature", 2.0), _extra_body(extra_body), key)
        api = HostedApi(self._env.sinks, url, PROVIDER, key or "")
        check_destination(api.host, api.port, self._env.sinks)  # a refused destination fails the step
        try:
            output = answer_text(api.post(request))
        except (ProviderError, DestinationRefusedError) as error:
            status = credentials.redact(self._env, str(error))
            logger.warning("%s request to %s failed: %s", PROVIDER, credentials.redact(self._env, url), status)
            return {"output": "", "error_status": status}
        return {"output": output, "error_status": ""}


def _optional_text(value: Any, name: str) -> str | None:
    return None if value is None else inputs.as_str(value, name)


def _max_tokens(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(f"max_tokens must be an integer greater than 1, got {value!r}")
    return value


def _extra_body(value: Any) -> Mapping[str, Any] | None:
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"extra_body must be an object, got {type(value).__name__}")
    return value
