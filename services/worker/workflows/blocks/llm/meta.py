"""``roboflow_core/meta_vlm@v1``: Meta's Muse vision models, served by OpenRouter (its chat completions, ``POST
<base>/chat/completions`` at the operator's ``WORKER_WORKFLOW_OPENROUTER_API_URL``, ``Authorization: Bearer <key>``).

The request follows the reference's Muse contract: one user message, the frame first (a base64 JPEG data URL,
quality 90, scaled down by a tenth at a time while its base64 is over OpenRouter's 9.5 MB) and then one text: the
OpenRouter blocks' instruction and text joined by a blank line, with no system message (``prompts``, dialect
``muse``); object detection asks for a JSON array of ``label`` and ``x_min`` ... ``y_max`` on a 0-1000 scale, which
``vlm_as_detector@v2`` reads with model type ``muse``. ``model`` is the Muse name's OpenRouter slug, ``max_tokens``
2048 unless given (null: 2048 too), ``temperature`` only when given, ``reasoning: {"effort": ...}`` always (Muse
models do not answer without reasoning), and ``privacy_level``'s provider preferences as the other OpenRouter blocks
send them. When OpenRouter refuses the reasoning config (an HTTP 4xx naming it) the request is asked once more
without it, as the reference does.

``output`` is the answer's text, ``thinking`` the reasoning OpenRouter returns beside it (``message.reasoning``;
empty when there is none) and ``classes`` the step's. Roboflow's proxy key (the manifest's default) is refused.
"""

import base64
import logging
from typing import Any

import cv2
import numpy as np

from services.core.workflows.catalogue import llm as catalogue
from services.worker.workflows.blocks.llm import prompts
from services.worker.workflows.blocks.llm.client import (
    JPEG_QUALITY,
    ApiRequest,
    HostedModelBlock,
    ProviderError,
    optional_number,
    positive_int,
    rejects_reasoning,
    text,
)
from services.worker.workflows.blocks.llm.openrouter import OpenRouterApi, answer_text
from services.worker.workflows.blocks.vlm_parsers import upload_size
from services.worker.workflows.values import WorkflowImage

logger = logging.getLogger(__name__)

MAX_BASE64_CHARS = 9_500_000  # OpenRouter's payload limit for one image, as the reference counts it
# What a refusal of the reasoning config says (besides "reasoning"), as the reference recognises one.
REASONING_REFUSALS = ("unsupported", "not supported", "unknown", "invalid", "mandatory", "cannot be disabled")


def muse_jpeg(image: Any) -> str:
    """The frame as a base64 JPEG (quality 90), its long side cut by a tenth at a time until the base64 fits
    :data:`MAX_BASE64_CHARS`."""
    if not isinstance(image, WorkflowImage):
        raise ValueError(f"images must be an image, got {type(image).__name__}")
    pixels: np.ndarray = image.image
    while True:
        ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError("the image cannot be encoded as JPEG")
        data = base64.b64encode(encoded.tobytes()).decode("ascii")
        height, width = pixels.shape[:2]
        if len(data) <= MAX_BASE64_CHARS or max(width, height) <= 1:
            return data
        size = upload_size(width, height, max(int(max(width, height) * 0.9), 1))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def muse_request(key: str, model: str, asked: prompts.Prompt, image: str, max_tokens: int, temperature: float | None,
                 effort: str, provider: dict[str, Any] | None) -> ApiRequest:
    picture = {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}}
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "reasoning": {"effort": effort},
                            "messages": [{"role": "user", "content": [picture, {"type": "text", "text": asked.text}]}]}
    if temperature is not None:
        body["temperature"] = temperature
    if provider is not None:
        body["provider"] = provider
    return ApiRequest("/chat/completions", body, {"Authorization": f"Bearer {key}"})


def reasoning_of(answer: dict[str, Any]) -> str:
    """The reasoning OpenRouter returned with the first choice's message ("" when there is none)."""
    message = answer["choices"][0].get("message")
    trace = message.get("reasoning") if isinstance(message, dict) else None
    return trace if isinstance(trace, str) else ""


def _max_tokens(value: Any) -> int:
    if value is None:
        return catalogue.META_DEFAULT_MAX_TOKENS
    tokens = positive_int(value, "max_tokens")
    if tokens < 2:
        raise ValueError(f"max_tokens must be an integer greater than 1, got {value!r}")
    return tokens


def _routing(privacy_level: Any) -> dict[str, Any] | None:
    """OpenRouter's provider preferences for ``privacy_level`` (None: none sent), as the other blocks send them."""
    if privacy_level not in catalogue.PRIVACY_LEVELS:
        raise ValueError(f"privacy_level must be one of {', '.join(catalogue.PRIVACY_LEVELS)}, got {privacy_level!r}")
    routing = catalogue.PRIVACY_LEVELS[privacy_level]
    return dict(routing) if routing is not None else None


class MetaVlmBlock(HostedModelBlock):
    provider = "OpenRouter"
    url_setting = "openrouter_api_url"
    models = catalogue.META_MODELS

    def run(self, *, images: Any, model_version: Any, task_type: str, prompt: Any, output_structure: Any,
            classes: Any, reasoning_effort: Any, max_tokens: Any, temperature: Any, api_key: Any, privacy_level: Any,
            max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        key = self._key(api_key)
        task = self._task(task_type, catalogue.TASKS_WITH_DETECTION, prompt, classes, output_structure)
        name = text(model_version, "model_version")
        if name not in self.models:
            raise ValueError(f"model_version must be one of {', '.join(self.models)}, got {name!r}")
        if reasoning_effort not in catalogue.META_REASONING_EFFORTS:
            raise ValueError(f"reasoning_effort must be one of {', '.join(catalogue.META_REASONING_EFFORTS)}, got "
                             f"{reasoning_effort!r}")
        asked = prompts.build("muse", task.task_type, task.prompt, task.classes, task.output_structure)
        request = muse_request(key, self.models[name], asked, muse_jpeg(images), _max_tokens(max_tokens),
                               optional_number(temperature, "temperature", 2.0), reasoning_effort,
                               _routing(privacy_level))
        try:
            answer = self._call(request, key)
        except ProviderError as error:
            if not rejects_reasoning(error, REASONING_REFUSALS):
                raise
            logger.warning("OpenRouter refused the reasoning config %s for %s (%s); asking again without it",
                           request.body["reasoning"], request.body["model"], error)
            body = {field: value for field, value in request.body.items() if field != "reasoning"}
            answer = self._call(ApiRequest(request.path, body, request.headers), key)
        return {"output": answer_text(answer, key), "classes": classes, "thinking": reasoning_of(answer)}

    def _call(self, request: ApiRequest, key: str) -> dict[str, Any]:
        return OpenRouterApi(self._env.sinks, self._env.sinks.openrouter_api_url, self.provider, key).post(request)
