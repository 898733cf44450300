"""``roboflow_core/google_gemini@v1`` and ``@v2``: Gemini's ``generateContent`` (``POST
<base>/v1beta/models/<model>:generateContent``, the key in the ``x-goog-api-key`` header, never in the URL), the
frame as ``inline_data`` (a base64 JPEG) before the task's text, the instruction as ``systemInstruction`` and
``generationConfig`` as the reference writes it: one candidate, a JSON answer asked for the tasks that expect one,
``max_output_tokens`` (v2: only when given) and ``temperature`` when given.

v2: ``thinking_level`` goes (as ``thinking_config``) only to the Gemini 3 models, which take no temperature; the
older ones get the temperature and no thinking level. An answer cut at the token limit, or stopped for a reason
other than its end, fails the step (v1 answers whatever text came). ``output``: the first candidate's first part.
The older preview names of gemini-2.5-pro are sent as gemini-2.5-pro. v3 and v4 (``gemini_v3``) build on v2's parts.
"""

from typing import Any
from urllib.parse import quote

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

THINKING_LEVELS = ("low", "high")
FINISHED = ("STOP", "FINISH_REASON_UNSPECIFIED")


def generate_request(key: str, model: str, prompt: prompts.Prompt, image: str, config: dict[str, Any],
                     tools: list[dict[str, Any]] | None = None) -> ApiRequest:
    parts: list[dict[str, Any]] = [{"inline_data": {"mime_type": "image/jpeg", "data": image}}]
    if prompt.text is not None:
        parts.append({"text": prompt.text})
    body: dict[str, Any] = {"contents": {"parts": parts, "role": "user"}}
    if prompt.system is not None:
        body["systemInstruction"] = {"role": "system", "parts": [{"text": prompt.system}]}
    body["generationConfig"] = {"response_mime_type": "application/json" if prompt.json_answer else "text/plain",
                                "candidate_count": 1, **config}
    if tools:
        body["tools"] = tools
    return ApiRequest(f"/v1beta/models/{quote(model, safe='')}:generateContent", body, {"x-goog-api-key": key})


def model_id(model_version: Any) -> str:
    name = text(model_version, "model_version")
    return catalogue.GEMINI_MODEL_ALIASES.get(name, name)


def thinking_config(model: str, thinking_level: Any, temperature: Any, max_tokens: Any,
                    thinking_models: tuple[str, ...]) -> dict[str, Any]:
    """v2 and later: ``generationConfig``'s limit, and a thinking level for ``thinking_models`` or a temperature for
    the others (each only when given)."""
    if thinking_level is not None and thinking_level not in THINKING_LEVELS:
        raise ValueError(f"thinking_level must be one of {', '.join(THINKING_LEVELS)}, got {thinking_level!r}")
    thinks = model in thinking_models
    config: dict[str, Any] = {}
    if max_tokens is not None:
        config["max_output_tokens"] = positive_int(max_tokens, "max_tokens")
    if thinking_level is not None and thinks:
        config["thinking_config"] = {"thinking_level": thinking_level}
    if (value := optional_number(temperature, "temperature", 2.0)) is not None and not thinks:
        config["temperature"] = value
    return config


def _first_candidate(answer: dict[str, Any]) -> dict[str, Any]:
    candidates = answer.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise ProviderError("Google Gemini API answered with no candidates")
    return candidates[0]


def finished_candidate(answer: dict[str, Any]) -> dict[str, Any]:
    """v2 and later: the first candidate, which must have come to its end (not cut at the limit, not stopped)."""
    candidate = _first_candidate(answer)
    finish = candidate.get("finishReason", "FINISH_REASON_UNSPECIFIED")
    if finish == "MAX_TOKENS":
        raise ProviderError("Google Gemini API stopped the answer at the max_tokens limit: raise max_tokens for "
                            "a complete answer")
    if finish not in FINISHED:
        raise ProviderError(f"Google Gemini API stopped the answer: finish reason {finish!r}")
    return candidate


def _first_text(candidate: dict[str, Any]) -> str:
    try:
        answer = candidate["content"]["parts"][0]["text"]
    except (KeyError, IndexError, TypeError):
        raise ProviderError("Google Gemini API answered with no text in its candidate") from None
    if not isinstance(answer, str):
        raise ProviderError("Google Gemini API answered with no text in its candidate")
    return answer


class GeminiBlockV1(HostedModelBlock):
    provider = "Google Gemini"
    url_setting = "gemini_api_url"

    def run(self, *, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
            model_version: Any, max_tokens: Any, temperature: Any, max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        key = self._key(api_key)
        task = self._task(task_type, catalogue.TASKS_WITH_DETECTION, prompt, classes, output_structure)
        config: dict[str, Any] = {"max_output_tokens": positive_int(max_tokens, "max_tokens")}
        if (value := optional_number(temperature, "temperature", 2.0)) is not None:
            config["temperature"] = value
        request = generate_request(
            key, model_id(model_version),
            prompts.build("gemini", task.task_type, task.prompt, task.classes, task.output_structure),
            jpeg_base64(images), config)
        return self._outputs(_first_text(_first_candidate(self._call(request, key))), classes)


class GeminiBlockV2(HostedModelBlock):
    provider = "Google Gemini"
    url_setting = "gemini_api_url"

    def run(self, *, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
            model_version: Any, thinking_level: Any, temperature: Any, max_tokens: Any,
            max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        key = self._key(api_key)
        task = self._task(task_type, catalogue.TASKS_WITH_DETECTION, prompt, classes, output_structure)
        model = model_id(model_version)
        config = thinking_config(model, thinking_level, temperature, max_tokens, catalogue.GEMINI_V2_THINKING_MODELS)
        request = generate_request(
            key, model, prompts.build("gemini", task.task_type, task.prompt, task.classes, task.output_structure),
            jpeg_base64(images), config)
        return self._outputs(_first_text(finished_candidate(self._call(request, key))), classes)
