"""``roboflow_core/open_ai@v4`` and ``@v5``: OpenAI's Responses API (``POST <base>/responses``, ``Authorization:
Bearer <key>``), the blocks Roboflow's app creates today.

The request: ``model``, the task's instruction as ``instructions`` (none for ``unconstrained``), one user message in
``input`` whose content is the task's text (``input_text``) then the frame (``input_image``: a base64 JPEG data URL
with the step's ``image_detail``); ``max_output_tokens`` and ``temperature`` only when given; ``reasoning:
{"effort": ...}`` only when ``reasoning_effort`` is given and the model reasons (a model that does not, gpt-4.x /
gpt-4o or a name the manifest does not list, gets none; an effort the model does not take fails the step, as the
reference's request does: at INIT when both are literals). The prompts are the reference's (``prompts``,
dialect ``openai_responses``).

v5 asks for object detection per model, as the reference's benchmark chose: the frame, scaled down to a 2048 px
long side (never up) and sent as a lossless PNG without a detail hint, and

- ``structured-absolute`` (gpt-5.2 and newer, and any model v5 does not list): the frame, then a text asking for
  ``{"detections": [{"box_2d": [x_min, y_min, x_max, y_max], "label": ...}]}`` in pixels of the image sent,
  enforced by a JSON schema (``text.format``);
- ``plain-absolute`` (gpt-4.x, gpt-4o, gpt-5.4-nano): the frame, then a text asking for a bare JSON list of such
  entries;
- ``normalized-legacy`` (the gpt-5 / gpt-5.1 generation): v4's instruction (corners as fractions) with the class
  list, then the frame.

``vlm_as_detector@v2`` (model type ``openai``) reads all three, mapping the pixels back with the same scaling.

``output`` is the text of the answer's ``message`` items (their ``output_text`` parts, joined: what the reference's
SDK calls ``output_text``). A ``failed``, ``cancelled`` or ``incomplete`` answer (``max_output_tokens``: raise
``max_tokens``) fails the step on that frame, as the reference's block does, and so does an answer with no text.
The proxy keys (``rf_key:...``, the manifests' default) are refused: there is no Roboflow API here.
"""

import base64
from typing import Any, ClassVar

import cv2

from services.core.redaction import redact_text
from services.core.workflows.blocks import is_int
from services.core.workflows.catalogue import llm as catalogue
from services.worker.workflows.blocks.llm import prompts
from services.worker.workflows.blocks.llm.client import (
    ApiRequest,
    HostedModelBlock,
    ProviderError,
    TaskInputs,
    jpeg_base64,
    optional_number,
    text,
)
from services.worker.workflows.blocks.vlm_parsers import OPENAI_UPLOAD_MAX_EDGE, upload_size
from services.worker.workflows.values import WorkflowImage

IMAGE_DETAILS = ("auto", "high", "low")
DIALECT: prompts.Dialect = "openai_responses"
_MESSAGE_CHARS = 300  # of the API's own error message, in ours

# v5's object-detection prompt styles (the reference's names).
STRUCTURED_ABSOLUTE = "structured-absolute"
NORMALIZED_LEGACY = "normalized-legacy"
PLAIN_ABSOLUTE = "plain-absolute"
_NORMALIZED_MODELS = ("gpt-5.1", "gpt-5", "gpt-5-mini", "gpt-5-nano")
_PLAIN_MODELS = ("gpt-5.4-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini")
DETECTION_STYLES: dict[str, str] = {
    **{model: STRUCTURED_ABSOLUTE for model in catalogue.OPENAI_RESPONSES_MODELS},
    **{model: NORMALIZED_LEGACY for model in _NORMALIZED_MODELS},
    **{model: PLAIN_ABSOLUTE for model in _PLAIN_MODELS},
}

# The reference's texts, word for word (the model reads them).
_BOX_2D = ('the 2D bounding box in the key "box_2d" and the text label in the key "label". '
           'The "box_2d" value must be [x_min, y_min, x_max, y_max]: the top-left and bottom-right corners in '
           "absolute pixel coordinates of the {width}x{height} pixel image. ")
PLAIN_DETECTION_TEMPLATE = ("Detect all objects in this image. Output a JSON list where each entry contains "
                            + _BOX_2D + "Return only the JSON list, with no extra text. Only use these labels: "
                            "{class_list}")
STRUCTURED_DETECTION_TEMPLATE = ('Detect all objects in this image. Output JSON with the key "detections" holding a '
                                 "list where each entry contains " + _BOX_2D + "Only use these labels: {class_list}")
# structured-absolute's answer, enforced by OpenAI (``text`` of the request).
DETECTIONS_FORMAT: dict[str, Any] = {"format": {
    "type": "json_schema",
    "name": "detections",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {"detections": {"type": "array", "items": {
            "type": "object",
            "properties": {"label": {"type": "string"},
                           "box_2d": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4}},
            "required": ["label", "box_2d"],
            "additionalProperties": False,
        }}},
        "required": ["detections"],
        "additionalProperties": False,
    },
}}


def detection_style(model: str) -> str:
    return DETECTION_STYLES.get(model, STRUCTURED_ABSOLUTE)


def reasoning(model: str, effort: Any) -> dict[str, str] | None:
    """The request's ``reasoning`` (None: not sent). Raises ValueError for an effort the model does not take."""
    if effort is None:
        return None
    if not isinstance(effort, str):
        raise ValueError(f"reasoning_effort must be a string or null, got {type(effort).__name__}")
    refusal = catalogue.reasoning_effort_refusal(model, effort)
    if refusal is not None:
        raise ValueError(refusal)
    return {"effort": effort} if catalogue.OPENAI_RESPONSES_MODELS.get(model) else None


def max_output_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if not (is_int(value) and value >= catalogue.OPENAI_RESPONSES_MIN_TOKENS):
        raise ValueError(f"max_tokens must be an integer >= {catalogue.OPENAI_RESPONSES_MIN_TOKENS} or null, got "
                         f"{value!r}")
    return int(value)


def png_for_detection(image: Any) -> tuple[str, int, int]:
    """The frame scaled down to fit a 2048 px long side (Lanczos), as a base64 PNG, and the size sent."""
    if not isinstance(image, WorkflowImage):
        raise ValueError(f"images must be an image, got {type(image).__name__}")
    pixels = image.image
    height, width = pixels.shape[:2]
    size = upload_size(width, height, OPENAI_UPLOAD_MAX_EDGE)
    if size != (width, height):
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_LANCZOS4)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError("the image cannot be encoded as PNG")
    return base64.b64encode(encoded.tobytes()).decode("ascii"), size[0], size[1]


def _text_part(value: str) -> dict[str, Any]:
    return {"type": "input_text", "text": value}


def _image_part(data: str, media_type: str, detail: str | None = None) -> dict[str, Any]:
    part = {"type": "input_image", "image_url": f"data:{media_type};base64,{data}"}
    return part if detail is None else {**part, "detail": detail}


def responses_request(key: str, model: str, instructions: str | None, content: list[dict[str, Any]], *,
                      effort: dict[str, str] | None = None, max_tokens: int | None = None,
                      temperature: float | None = None, text_format: dict[str, Any] | None = None) -> ApiRequest:
    body: dict[str, Any] = {"model": model, "input": [{"role": "user", "content": content}]}
    if instructions is not None:
        body["instructions"] = instructions
    if text_format is not None:
        body["text"] = text_format
    if max_tokens is not None:
        body["max_output_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    if effort is not None:
        body["reasoning"] = effort
    return ApiRequest("/responses", body, {"Authorization": f"Bearer {key}"})


def answer_text(answer: dict[str, Any], key: str, provider: str = "OpenAI") -> str:
    """The answer's text, or :class:`ProviderError` (naming ``provider``: xAI's API answers alike) for an answer that
    did not finish or has none."""
    status = answer.get("status")
    if status == "failed":
        error = answer.get("error")
        error = error if isinstance(error, dict) else {}
        what = f"{error.get('code', 'unknown')}: {str(error.get('message', 'unknown error'))[:_MESSAGE_CHARS]}"
        raise ProviderError(redact_text(f"{provider} API request failed: {what}", (key,)))
    if status == "cancelled":
        raise ProviderError(f"{provider} API request was cancelled")
    if status == "incomplete":
        details = answer.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        if reason == "max_output_tokens":
            raise ProviderError(f"{provider} API stopped the answer at the max_tokens limit: raise max_tokens for a "
                                "complete answer")
        raise ProviderError(redact_text(f"{provider} API answered incompletely: {str(reason)[:_MESSAGE_CHARS]}",
                                        (key,)))
    if status not in ("completed", "in_progress", "queued", None):
        raise ProviderError(redact_text(f"{provider} API answered with an unexpected status: {str(status)[:80]}",
                                        (key,)))
    items = answer.get("output")
    messages = [item for item in items if isinstance(item, dict) and item.get("type") == "message"] \
        if isinstance(items, list) else []
    parts = [part for message in messages for part in (message.get("content") or []) if isinstance(part, dict)]
    joined = "".join(part["text"] for part in parts if part.get("type") == "output_text"
                     and isinstance(part.get("text"), str))
    if not joined:
        raise ProviderError(f"{provider} API answered with no text content")
    return joined


class OpenAiResponsesBlock(HostedModelBlock):
    """open_ai@v4: every task type as ``prompts`` words it, the frame as a JPEG."""

    provider = "OpenAI"
    url_setting = "openai_api_url"
    detection_by_model: ClassVar[bool] = False  # v5: object detection asked per model

    def run(self, *, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
            model_version: Any, reasoning_effort: Any, image_detail: Any, max_tokens: Any, temperature: Any,
            max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        key = self._key(api_key)
        task = self._task(task_type, catalogue.TASKS_WITH_DETECTION, prompt, classes, output_structure)
        model = text(model_version, "model_version")
        effort = reasoning(model, reasoning_effort)
        limit = max_output_tokens(max_tokens)
        heat = optional_number(temperature, "temperature", 2.0)
        if self.detection_by_model and task.task_type == catalogue.OBJECT_DETECTION:
            instructions, content, text_format = self._detection(task, model, images)
        else:
            if image_detail not in IMAGE_DETAILS:
                raise ValueError(f"image_detail must be one of {', '.join(IMAGE_DETAILS)}, got {image_detail!r}")
            asked = prompts.build(DIALECT, task.task_type, task.prompt, task.classes, task.output_structure)
            picture = _image_part(jpeg_base64(images), "image/jpeg", image_detail)
            content = [_text_part(asked.text), picture] if asked.text is not None else [picture]
            instructions, text_format = asked.system, None
        request = responses_request(key, model, instructions, content, effort=effort, max_tokens=limit,
                                    temperature=heat, text_format=text_format)
        return self._outputs(answer_text(self._call(request, key), key), classes)

    def _detection(self, task: TaskInputs, model: str,
                   images: Any) -> tuple[str | None, list[dict[str, Any]], dict[str, Any] | None]:
        """v5's object detection: (instructions, content, text format) in the model's style."""
        data, width, height = png_for_detection(images)
        picture = _image_part(data, "image/png")
        style = detection_style(model)
        if style == NORMALIZED_LEGACY:
            asked = prompts.build(DIALECT, task.task_type, task.prompt, task.classes, task.output_structure)
            return asked.system, [_text_part(text(asked.text, "classes")), picture], None
        template = STRUCTURED_DETECTION_TEMPLATE if style == STRUCTURED_ABSOLUTE else PLAIN_DETECTION_TEMPLATE
        asking = template.format(width=width, height=height, class_list=", ".join(task.classes or []))
        return None, [picture, _text_part(asking)], DETECTIONS_FORMAT if style == STRUCTURED_ABSOLUTE else None


class OpenAiResponsesBlockV5(OpenAiResponsesBlock):
    """open_ai@v5: v4, with object detection asked per model."""

    detection_by_model = True
