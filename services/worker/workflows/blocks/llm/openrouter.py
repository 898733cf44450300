"""The blocks served by OpenRouter: ``llama_3_2_vision@v1``, ``llama_vision@v2``, ``openrouter@v1``,
``kimi_openrouter@v1`` and ``@v2``, ``qwen3_5_openrouter@v1`` and ``qwen3_6_openrouter@v1``.

OpenRouter speaks OpenAI's chat completions (``POST <base>/chat/completions``, ``Authorization: Bearer <key>``):
the task's instruction as a system message, then the user's text (when the task has one) and the frame as a base64
JPEG data URL (no ``detail``, as the reference sends it), ``max_tokens`` and ``temperature``. The manifest's model
name becomes OpenRouter's slug through the block's table; ``openrouter@v1`` sends its ``model_id`` as given.

The second generation (``llama_vision@v2``, ``kimi_openrouter@v2``, ``openrouter@v1``) adds ``privacy_level``:
``deny`` (its default) sends ``provider: {"data_collection": "deny"}``, ``zdr`` adds ``"zdr": true`` and ``allow``
sends no preferences, as the reference's direct calls do. Its default key is Roboflow's proxy, refused here.

OpenRouter may answer HTTP 200 with an ``error`` and no choice (an upstream provider failed): the step fails with
OpenRouter's message. A choice without text (a reasoning model that spent ``max_tokens`` thinking) fails it too,
with the reference's hint.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from services.core.redaction import redact_text
from services.core.workflows.catalogue import llm as catalogue
from services.worker.workflows.blocks.llm import prompts
from services.worker.workflows.blocks.llm.client import (
    ApiRequest,
    HostedApi,
    HostedModelBlock,
    ProviderError,
    jpeg_base64,
    positive_int,
    text,
)

_DETAIL_CHARS = 300  # of OpenRouter's upstream provider's own message, in ours
_LENGTH_HINT = (" The model may be a reasoning model that ran out of tokens during its internal thinking step: raise "
                "max_tokens (e.g. 1000+) or pick a non-reasoning model.")


def chat_request(key: str, model: str, prompt: prompts.Prompt, image: str, max_tokens: int, temperature: float,
                 provider: dict[str, Any] | None) -> ApiRequest:
    picture = {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}}
    content = [{"type": "text", "text": prompt.text}, picture] if prompt.text is not None else [picture]
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if prompt.system is not None:
        messages.insert(0, {"role": "system", "content": prompt.system})
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens,
                            "temperature": temperature}
    if provider is not None:
        body["provider"] = provider
    return ApiRequest("/chat/completions", body, {"Authorization": f"Bearer {key}"})


def _error_message(answer: Mapping[str, Any]) -> str | None:
    error = answer.get("error")
    message = error.get("message") if isinstance(error, Mapping) else error
    return message[:_DETAIL_CHARS] if isinstance(message, str) and message else None


def answer_text(answer: dict[str, Any], key: str) -> str:
    """The first choice's text; ``key`` is removed from OpenRouter's message, whatever it echoes."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        detail = _error_message(answer)
        raise ProviderError(redact_text("OpenRouter API answered without a completion (its upstream provider failed; "
                                        "this happens now and then, free models most)"
                                        + (f": {detail}" if detail else ""), (key,)))
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, str):
        hint = _LENGTH_HINT if choices[0].get("finish_reason") == "length" else ""
        raise ProviderError(f"OpenRouter API answered with no text (the message's content is empty).{hint}")
    return content


class OpenRouterApi(HostedApi):
    """OpenRouter's errors: ``{"error": {"message", "code", "metadata": {"provider_name", "raw"}}}``; the upstream
    provider's own words (``raw``) say more than "Provider returned error", so they follow OpenRouter's."""

    def _detail(self, response: httpx.Response) -> str:
        detail = super()._detail(response)
        try:
            metadata = response.json()["error"]["metadata"]
            upstream, raw = metadata.get("provider_name"), metadata.get("raw")
        except (ValueError, KeyError, TypeError, AttributeError):
            return detail
        if not isinstance(raw, str) or not raw:
            return detail
        source = f"{upstream} says" if isinstance(upstream, str) and upstream else "upstream"
        return f"{detail} ({source}: {raw[:_DETAIL_CHARS]})"


class _OpenRouterBlock(HostedModelBlock):
    """What every OpenRouter block does. ``managed``: the reference's second generation (its ``privacy_level``
    routes the request, its prompts are the shared ones)."""

    provider = "OpenRouter"
    url_setting = "openrouter_api_url"
    tasks: ClassVar[tuple[str, ...]] = catalogue.TASKS_WITH_DETECTION
    managed: ClassVar[bool] = False

    def _routing(self, privacy_level: Any) -> dict[str, Any] | None:
        if not self.managed:
            return None
        if privacy_level not in catalogue.PRIVACY_LEVELS:
            raise ValueError(f"privacy_level must be one of {', '.join(catalogue.PRIVACY_LEVELS)}, "
                             f"got {privacy_level!r}")
        routing = catalogue.PRIVACY_LEVELS[privacy_level]
        return dict(routing) if routing is not None else None

    def _ask(self, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
             model: str, max_tokens: Any, temperature: Any, privacy_level: Any) -> dict[str, Any]:
        key = self._key(api_key)
        task = self._task(task_type, self.tasks, prompt, classes, output_structure)
        provider = self._routing(privacy_level)
        dialect: prompts.Dialect = "openrouter" if self.managed else "openrouter_v1"
        request = chat_request(
            key, model, prompts.build(dialect, task.task_type, task.prompt, task.classes, task.output_structure),
            jpeg_base64(images), _max_tokens(max_tokens), _temperature(temperature), provider)
        return self._outputs(answer_text(self._call(request, key), key), classes)

    def _call(self, request: ApiRequest, key: str) -> dict[str, Any]:
        return OpenRouterApi(self._env.sinks, self._env.sinks.openrouter_api_url, self.provider, key).post(request)


class OpenRouterModelBlock(_OpenRouterBlock):
    """A block with a model table (every one but openrouter@v1): the manifest's name -> OpenRouter's slug."""

    models: ClassVar[Mapping[str, str]] = {}

    def run(self, *, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
            model_version: Any, max_tokens: Any, temperature: Any, max_concurrent_requests: Any,
            privacy_level: Any = None) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        name = text(model_version, "model_version")
        if name not in self.models:
            raise ValueError(f"model_version must be one of {', '.join(self.models)}, got {name!r}")
        return self._ask(images, task_type, prompt, output_structure, classes, api_key, self.models[name],
                         max_tokens, temperature, privacy_level)


def _max_tokens(value: Any) -> int:
    tokens = positive_int(value, "max_tokens")
    if tokens < 2:
        raise ValueError(f"max_tokens must be an integer greater than 1, got {value!r}")
    return tokens


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise ValueError(f"temperature must be a number from 0.0 to 2, got {value!r}")
    return float(value)


class LlamaVisionBlockV1(OpenRouterModelBlock):
    models = catalogue.LLAMA_V1_MODELS
    tasks = catalogue.OPENAI_TASKS  # no object detection in v1


class LlamaVisionBlockV2(OpenRouterModelBlock):
    models = catalogue.LLAMA_V2_MODELS
    managed = True


class KimiBlockV1(OpenRouterModelBlock):
    models = catalogue.KIMI_MODELS


class KimiBlockV2(OpenRouterModelBlock):
    models = catalogue.KIMI_MODELS
    managed = True


class Qwen35Block(OpenRouterModelBlock):
    models = catalogue.QWEN3_5_MODELS


class Qwen36Block(OpenRouterModelBlock):
    models = catalogue.QWEN3_6_MODELS


class OpenRouterAnyModelBlock(_OpenRouterBlock):
    """openrouter@v1: any OpenRouter model, its slug as given (``model_id``)."""

    managed = True

    def run(self, *, images: Any, model_id: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any,
            api_key: Any, privacy_level: Any, max_tokens: Any, temperature: Any,
            max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        return self._ask(images, task_type, prompt, output_structure, classes, api_key, text(model_id, "model_id"),
                         max_tokens, temperature, privacy_level)
