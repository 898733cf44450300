"""``roboflow_core/spacexai@v1``: xAI's Grok models with vision, through xAI's Responses API (``POST <base>/responses``
at the operator's ``WORKER_WORKFLOW_XAI_API_URL``, ``Authorization: Bearer <key>``) with the user's own key.

The request is the reference's: ``model`` (grok-4.6 or grok-4.5; a step's output may name another, sent as given),
the task's instruction as ``instructions`` (none for ``unconstrained`` and object detection), one user message in
``input`` with the task's text (``input_text``) and then the frame (``input_image``: a base64 JPEG data URL, quality
90, ``detail: "auto"``), ``store: false`` (xAI keeps no copy of the answer), and ``max_output_tokens``,
``temperature`` and ``reasoning: {"effort": ...}`` only when given. The prompts are open_ai v4's (``prompts``,
dialect ``xai``) but for object detection: the frame first, at its own size as a lossless PNG with ``detail:
"high"``, then a text asking for a JSON list of ``label`` and ``box_2d`` corners in percent of the image, which
``vlm_as_detector@v2`` reads with model type ``spacexai``. When xAI refuses ``reasoning`` (an HTTP 4xx naming it) the
request is asked once more without it, as the reference does with a key of the user's own.

``output`` is the text of the answer's ``message`` items, read as open_ai v4's answers are; a ``failed``,
``cancelled`` or ``incomplete`` answer, or one without text, fails the step on that frame. xAI's error answers
(``{"code": ..., "error": "<message>"}``) are surfaced in its own words, the key removed. Roboflow's proxy key
(``rf_key:...``, which the reference offers only where its operator turns the proxy on) is refused.
"""

import base64
import logging
from typing import Any

import cv2

from services.core.workflows.catalogue import llm as catalogue
from services.worker.workflows.blocks.llm import prompts
from services.worker.workflows.blocks.llm.client import (
    ApiRequest,
    HostedModelBlock,
    ProviderError,
    jpeg_base64,
    optional_number,
    rejects_reasoning,
    text,
)
from services.worker.workflows.blocks.llm.openai_responses import answer_text, max_output_tokens, responses_request
from services.worker.workflows.values import WorkflowImage

logger = logging.getLogger(__name__)

DIALECT: prompts.Dialect = "xai"
# What a refusal of ``reasoning`` says (besides "reasoning"), as the reference recognises one.
REASONING_REFUSALS = ("unsupported", "not supported", "unknown", "invalid")


def png_base64(image: Any) -> str:
    """The frame at its own size as a base64 PNG (lossless), for object detection."""
    if not isinstance(image, WorkflowImage):
        raise ValueError(f"images must be an image, got {type(image).__name__}")
    ok, encoded = cv2.imencode(".png", image.image)
    if not ok:
        raise ValueError("the image cannot be encoded as PNG")
    return base64.b64encode(encoded.tobytes()).decode("ascii")


def _picture(data: str, media_type: str, detail: str) -> dict[str, Any]:
    return {"type": "input_image", "image_url": f"data:{media_type};base64,{data}", "detail": detail}


def _words(value: str) -> dict[str, Any]:
    return {"type": "input_text", "text": value}


def _effort(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if value not in catalogue.XAI_REASONING_EFFORTS:
        raise ValueError(f"reasoning_effort must be one of {', '.join(catalogue.XAI_REASONING_EFFORTS)} or null, got "
                         f"{value!r}")
    return {"effort": value}


class SpaceXaiBlock(HostedModelBlock):
    provider = "xAI"
    url_setting = "xai_api_url"

    def run(self, *, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
            model_version: Any, reasoning_effort: Any, max_tokens: Any, temperature: Any,
            max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        key = self._key(api_key)
        task = self._task(task_type, catalogue.TASKS_WITH_DETECTION, prompt, classes, output_structure)
        model = text(model_version, "model_version")
        effort = _effort(reasoning_effort)
        limit = max_output_tokens(max_tokens)
        heat = optional_number(temperature, "temperature", 2.0)
        asked = prompts.build(DIALECT, task.task_type, task.prompt, task.classes, task.output_structure)
        if task.task_type == catalogue.OBJECT_DETECTION:
            content = [_picture(png_base64(images), "image/png", "high"), _words(text(asked.text, "classes"))]
        else:
            picture = _picture(jpeg_base64(images), "image/jpeg", "auto")
            content = [_words(asked.text), picture] if asked.text is not None else [picture]
        request = responses_request(key, model, asked.system, content, effort=effort, max_tokens=limit,
                                    temperature=heat)
        body = {**request.body, "store": False}
        try:
            answer = self._call(ApiRequest(request.path, body, request.headers), key)
        except ProviderError as error:
            if effort is None or not rejects_reasoning(error, REASONING_REFUSALS):
                raise
            logger.warning("xAI refused reasoning %s for %s (%s); asking again without it", effort, model, error)
            body = {field: value for field, value in body.items() if field != "reasoning"}
            answer = self._call(ApiRequest(request.path, body, request.headers), key)
        return self._outputs(answer_text(answer, key, self.provider), classes)
