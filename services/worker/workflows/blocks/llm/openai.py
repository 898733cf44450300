"""``roboflow_core/open_ai@v2`` and ``@v3``: OpenAI's chat completions (``POST <base>/chat/completions``,
``Authorization: Bearer <key>``), the frame as a base64 JPEG data URL with its ``image_detail``.

v2 sends ``max_tokens``, v3 ``max_completion_tokens`` (what its newer models take), as the reference's blocks do;
``temperature`` only when given. ``output`` is the first choice's message text. v3's proxy keys (``rf_key:...``, its
default) are refused: there is no Roboflow API here.
"""

from typing import Any, ClassVar

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

IMAGE_DETAILS = ("auto", "high", "low")


def chat_request(key: str, model: str, prompt: prompts.Prompt, image: str, detail: str, max_tokens: int,
                 temperature: float | None, tokens_field: str) -> ApiRequest:
    picture = {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}", "detail": detail}}
    content = [{"type": "text", "text": prompt.text}, picture] if prompt.text is not None else [picture]
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if prompt.system is not None:
        messages.insert(0, {"role": "system", "content": prompt.system})
    body: dict[str, Any] = {"model": model, "messages": messages, tokens_field: max_tokens}
    if temperature is not None:
        body["temperature"] = temperature
    return ApiRequest("/chat/completions", body, {"Authorization": f"Bearer {key}"})


def answer_text(answer: dict[str, Any]) -> str:
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ProviderError("OpenAI API answered without a choice's message") from None
    if not isinstance(content, str):
        raise ProviderError("OpenAI API answered with no text (the message's content is empty)")
    return content


class OpenAiBlock(HostedModelBlock):
    provider = "OpenAI"
    url_setting = "openai_api_url"
    tokens_field: ClassVar[str] = "max_tokens"

    def run(self, *, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
            model_version: Any, image_detail: Any, max_tokens: Any, temperature: Any,
            max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        key = self._key(api_key)
        task = self._task(task_type, catalogue.OPENAI_TASKS, prompt, classes, output_structure)
        if image_detail not in IMAGE_DETAILS:
            raise ValueError(f"image_detail must be one of {', '.join(IMAGE_DETAILS)}, got {image_detail!r}")
        request = chat_request(
            key, text(model_version, "model_version"),
            prompts.build("openai", task.task_type, task.prompt, task.classes, task.output_structure),
            jpeg_base64(images), image_detail, positive_int(max_tokens, "max_tokens"),
            optional_number(temperature, "temperature", 2.0), self.tokens_field)
        return self._outputs(answer_text(self._call(request, key)), classes)


class OpenAiBlockV3(OpenAiBlock):
    tokens_field = "max_completion_tokens"
