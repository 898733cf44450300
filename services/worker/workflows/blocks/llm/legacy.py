"""The reference's first-generation GPT-4V blocks: ``roboflow_core/open_ai@v1`` (``OpenAI``), ``roboflow_core/lmm@v1``
(``LMM``) and ``roboflow_core/lmm_for_classification@v1`` (``LMMForClassification``).

Each asks OpenAI's chat completions (at the operator's ``WORKER_WORKFLOW_OPENAI_API_URL``, through
:func:`openai.chat_request`) with one user message: the prompt's text and the frame as a base64 JPEG data URL with
its ``detail``, ``max_tokens`` and no temperature, as the reference's blocks send them. The key (``openai_api_key``
/ ``remote_api_key``) goes as ``Authorization: Bearer <key>``; these blocks never used Roboflow's proxy, so any key
is sent as given.

A JSON format (``json_output_format`` / ``json_output``: field -> description) is appended to the prompt as the
reference writes it, and the answer's JSON (the text itself, or each ```json block in it) gives one output per
field, ``"not_detected"`` for a field the answer lacks or an answer that is not JSON. ``structured_output`` holds
those fields (a list of them when the answer has several JSON blocks; the fields' own outputs then come from the
first, where the reference fails the step). ``lmm_for_classification`` asks for ``{"top": <class>}`` in the
reference's words and gives ``top`` and ``prediction_type: "classification"``. Each block gives the image's lineage
(``parent_id``, ``root_parent_id``) and its size (``image``: width and height).

``lmm_type`` ``gpt_4v`` is the only model: ``cog_vlm`` (Roboflow's hosted CogVLM) is refused at INIT, or on the
frame when a step's output gives it.
"""

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from services.core.workflows.catalogue import llm as catalogue
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.llm import openai, prompts
from services.worker.workflows.blocks.llm.client import HostedModelBlock, jpeg_base64, positive_int, text
from services.worker.workflows.values import WorkflowImage

NOT_DETECTED = "not_detected"
JSON_BLOCK = re.compile(r"```json\n([\s\S]*?)\n```")
CLASSIFIER_FORMAT = {"top": "name of the class"}


def with_json_format(prompt: str, expected: Mapping[str, str] | None) -> str:
    if not expected:
        return prompt
    return f"{prompt}\n\nVALID response format is JSON:\n{json.dumps(expected, indent=4)}"


def classification_prompt(classes: list[str]) -> str:
    """The reference's (its local mode's; its remote mode's lost the word "perform"); ``classes`` as Python lists
    print."""
    return (f"You are supposed to perform image classification task. You are given image that should be assigned "
            f"one of the following classes: {classes}. "
            'Your response must be JSON in format: {"top": "some_class"}')


def structured(raw: str, expected: Mapping[str, str] | None) -> dict[str, Any] | list[dict[str, Any]]:
    """The expected fields of the answer's JSON: ``{}`` without a format, a list when it has several JSON blocks."""
    if expected is None:
        return {}
    blocks = JSON_BLOCK.findall(raw)
    if not blocks:
        return _fields(raw, expected)
    parsed = [_fields(block, expected) for block in blocks]
    return parsed if len(parsed) > 1 else parsed[0]


def _fields(document: str, expected: Mapping[str, str]) -> dict[str, Any]:
    try:
        data = json.loads(document)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {name: NOT_DETECTED for name in expected}
    return {name: data.get(name, NOT_DETECTED) for name in expected}


def first(found: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(found, list):
        return found[0] if found else {}
    return found


def lineage(image: WorkflowImage) -> dict[str, Any]:
    return {"parent_id": image.parent_id, "root_parent_id": image.root_origin.parent_id,
            "image": {"width": image.width, "height": image.height}}


class _GptVisionBlock(HostedModelBlock):
    """One question to OpenAI about one image."""

    provider = "OpenAI"
    url_setting = "openai_api_url"
    key_field: ClassVar[str] = "remote_api_key"

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._env = env
        self._register(step.params.get(self.key_field))

    def _openai_key(self, value: Any) -> str:
        if value is None:
            raise ValueError(f"{self.key_field} is required: a step that prompts GPT-4V needs an OpenAI API key")
        key = text(value, self.key_field)
        self._register(key)
        return key

    def _ask(self, image: Any, prompt: str, key: str, model: str, detail: Any, max_tokens: Any) -> str:
        if not isinstance(image, WorkflowImage):
            raise ValueError(f"images must be an image, got {type(image).__name__}")
        if detail not in catalogue.IMAGE_DETAILS:
            raise ValueError(f"image_detail must be one of {', '.join(catalogue.IMAGE_DETAILS)}, got {detail!r}")
        request = openai.chat_request(key, model, prompts.Prompt(None, prompt), jpeg_base64(image),
                                      detail, positive_int(max_tokens, "max_tokens"), None, "max_tokens")
        return openai.answer_text(self._call(request, key))

    def _lmm_config(self, lmm_type: Any, lmm_config: Any) -> dict[str, Any]:
        if lmm_type == catalogue.COG_VLM:
            raise ValueError(f"lmm_type {catalogue.COG_VLM_REFUSAL}")
        if lmm_type != catalogue.GPT_4V:
            raise ValueError(f"lmm_type must be {catalogue.GPT_4V!r}, got {lmm_type!r}")
        config = catalogue.lmm_config(lmm_config)
        if config is None:
            raise ValueError(f"lmm_config is not the reference's LMMConfig: {lmm_config!r}")
        return config


def _prompt(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"prompt must be a string, got {type(value).__name__}")
    return value


def _answered(image: WorkflowImage, raw: str, expected: Mapping[str, str] | None) -> dict[str, Any]:
    found = structured(raw, expected)
    return {**first(found), "raw_output": raw, "structured_output": found, **lineage(image)}


class OpenAiBlockV1(_GptVisionBlock):
    key_field = "openai_api_key"

    def run(self, *, images: Any, prompt: Any, openai_api_key: Any, openai_model: Any, json_output_format: Any,
            image_detail: Any, max_tokens: Any) -> dict[str, Any]:
        key = self._openai_key(openai_api_key)
        raw = self._ask(images, with_json_format(_prompt(prompt), json_output_format), key,
                        text(openai_model, "openai_model"), image_detail, max_tokens)
        return _answered(images, raw, json_output_format)


class LmmBlockV1(_GptVisionBlock):
    def run(self, *, images: Any, prompt: Any, lmm_type: Any, lmm_config: Any, remote_api_key: Any,
            json_output: Any) -> dict[str, Any]:
        config = self._lmm_config(lmm_type, lmm_config)
        key = self._openai_key(remote_api_key)
        raw = self._ask(images, with_json_format(_prompt(prompt), json_output), key, config["gpt_model_version"],
                        config["gpt_image_detail"], config["max_tokens"])
        return _answered(images, raw, json_output)


class LmmForClassificationBlockV1(_GptVisionBlock):
    def run(self, *, images: Any, lmm_type: Any, classes: Any, lmm_config: Any, remote_api_key: Any
            ) -> dict[str, Any]:
        config = self._lmm_config(lmm_type, lmm_config)
        if not isinstance(classes, list) or not all(isinstance(name, str) for name in classes):
            raise ValueError(f"classes must be a list of class names (strings), got {classes!r}")
        key = self._openai_key(remote_api_key)
        raw = self._ask(images, classification_prompt(classes), key, config["gpt_model_version"],
                        config["gpt_image_detail"], config["max_tokens"])
        return {"raw_output": raw, "top": first(structured(raw, CLASSIFIER_FORMAT))["top"], **lineage(images),
                "prediction_type": "classification"}
