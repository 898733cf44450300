"""``roboflow_core/anthropic_claude@v1`` and ``@v2``: Anthropic's messages API (``POST <base>/v1/messages``,
``x-api-key: <key>``, ``anthropic-version: 2023-06-01``), the frame (scaled down to ``max_image_size``) as a base64
JPEG image block before the text, the task's instruction as ``system``.

v1 sends the manifest's model name as Anthropic's model id (its table) and answers the first content block's text.
v2 sends ``max_tokens`` or, when not given, the model's most output tokens; ``extended_thinking`` adds
``thinking`` with ``thinking_budget_tokens`` (else half the model's most) and drops the temperature; it answers
the first text block (thinking blocks skipped) and fails the step when the model stopped at ``max_tokens`` or for a
reason other than the end of its turn, as the reference's v2 does. The reference's v2 streams the answer (its SDK
refuses long non-streamed requests); here it is one request whose answer is the same final message, bounded by
the operator's timeout. v3 is v2 whose ``api_key`` defaults to Roboflow's proxy (refused: the user's own key).
"""

from typing import Any

from services.core.workflows.catalogue import llm as catalogue
from services.worker.workflows.blocks.llm import prompts
from services.worker.workflows.blocks.llm.client import (
    ApiRequest,
    HostedModelBlock,
    ProviderError,
    jpeg_base64,
    optional_number,
    positive_int,
    text,
)

ANTHROPIC_VERSION = "2023-06-01"
FINISHED = ("end_turn", "stop_sequence")


def messages_request(key: str, model: str, prompt: prompts.Prompt, image: str, max_tokens: int,
                     temperature: float | None, thinking_budget: int | None = None) -> ApiRequest:
    content: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": image}}]
    if prompt.text is not None:
        content.append({"type": "text", "text": prompt.text})
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens,
                            "messages": [{"role": "user", "content": content}]}
    if prompt.system is not None:
        body["system"] = prompt.system
    if temperature is not None and thinking_budget is None:
        body["temperature"] = temperature
    if thinking_budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking_budget}
    return ApiRequest("/v1/messages", body, {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION})


def _content(answer: dict[str, Any]) -> list[Any]:
    content = answer.get("content")
    if not isinstance(content, list):
        raise ProviderError("Anthropic API answered without content")
    return content


class ClaudeBlockV1(HostedModelBlock):
    provider = "Anthropic"
    url_setting = "anthropic_api_url"

    def run(self, *, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
            model_version: Any, max_tokens: Any, temperature: Any, max_image_size: Any,
            max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        key = self._key(api_key)
        task = self._task(task_type, catalogue.TASKS_WITH_DETECTION, prompt, classes, output_structure)
        name = text(model_version, "model_version")
        model = catalogue.CLAUDE_V1_MODELS.get(name) or catalogue.CLAUDE_V1_EXTRA_NAMES.get(name)
        if model is None:
            raise ValueError(f"model_version {name!r} is not one of {', '.join(catalogue.CLAUDE_V1_MODELS)}")
        request = messages_request(
            key, model, prompts.build("claude", task.task_type, task.prompt, task.classes, task.output_structure),
            jpeg_base64(images, positive_int(max_image_size, "max_image_size")),
            positive_int(max_tokens, "max_tokens"), optional_number(temperature, "temperature", 2.0))
        content = _content(self._call(request, key))
        first = content[0] if content else None
        if not isinstance(first, dict) or not isinstance(first.get("text"), str):
            raise ProviderError("Anthropic API answered with no text in its first content block")
        return self._outputs(first["text"], classes)


class ClaudeBlockV2(HostedModelBlock):
    provider = "Anthropic"
    url_setting = "anthropic_api_url"

    def run(self, *, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
            model_version: Any, extended_thinking: Any, thinking_budget_tokens: Any, max_tokens: Any,
            temperature: Any, max_image_size: Any, max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        key = self._key(api_key)
        task = self._task(task_type, catalogue.TASKS_WITH_DETECTION, prompt, classes, output_structure)
        name = text(model_version, "model_version")
        model, most = catalogue.CLAUDE_V2_MODELS.get(name, (name, catalogue.CLAUDE_V2_DEFAULT_MAX_OUTPUT))
        budget = None
        if extended_thinking:
            budget = most // 2 if thinking_budget_tokens is None else thinking_budget_tokens
        request = messages_request(
            key, model, prompts.build("claude", task.task_type, task.prompt, task.classes, task.output_structure),
            jpeg_base64(images, positive_int(max_image_size, "max_image_size")),
            most if max_tokens is None else max_tokens, optional_number(temperature, "temperature", 1.0), budget)
        answer = self._call(request, key)
        stop = answer.get("stop_reason")
        if stop == "max_tokens":
            raise ProviderError("Anthropic API stopped the answer at the max_tokens limit: raise max_tokens for a "
                                "complete answer")
        if stop not in FINISHED:
            raise ProviderError(f"Anthropic API stopped the answer for an unexpected reason: {stop!r}")
        for block in _content(answer):
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                return self._outputs(block["text"], classes)
        raise ProviderError("Anthropic API answered with no text content")


class ClaudeBlockV3(ClaudeBlockV2):
    """``anthropic_claude@v3``: v2's request and answer with the user's own key, as the reference's direct path; its
    default key (Roboflow's proxy, ``rf_key:account``) is refused (at INIT, or here when a selector gives one)."""
