"""``roboflow_core/google_gemini@v3`` and ``@v4``: v2's ``generateContent`` request (``gemini``: the key in the
``x-goog-api-key`` header, the frame as ``inline_data``, a thinking level for the Gemini 3 models, a temperature for
the older ones) with the user's own key. Their ``api_key`` defaults to Roboflow's proxy (``rf_key:account``), which
this manager does not have: it is refused at INIT, or here when a selector gives it.

``google_code_execution`` (true) adds Gemini's ``code_execution`` tool for the models that run code natively (the
Gemini 3 family; the older ones get no tool, as the reference does). The answer may then be several parts (text,
``executableCode``, ``codeExecutionResult``): ``output`` is the first text part's, thought summaries skipped (they
come only when asked for, which these blocks never do). An answer cut at the token limit, or stopped for another
reason than its end, fails the step, as v2's.

v4 asks for object detection as Gemini was trained to answer it: no system instruction, a text asking for a JSON
list of ``{"box_2d": [y_min, x_min, y_max, x_max], "label": ...}`` on a 0-1000 scale, and a ``response_schema``
holding the answer to that shape, its labels to ``classes`` (``vlm_as_detector@v2``'s ``google-gemini`` parser reads
it). Every other task is asked as v3 (and v2) asks it.
"""

from typing import Any, ClassVar

from services.core.workflows.catalogue import llm as catalogue
from services.worker.workflows.blocks.llm import prompts
from services.worker.workflows.blocks.llm.client import HostedModelBlock, ProviderError, TaskInputs, jpeg_base64
from services.worker.workflows.blocks.llm.gemini import finished_candidate, generate_request, model_id, thinking_config

CODE_EXECUTION_TOOLS: list[dict[str, Any]] = [{"code_execution": {}}]
BOX_2D_DETECTION = (
    "Detect all objects in this image. Output a JSON list where each entry contains the 2D bounding box in the key "
    '"box_2d" and the text label in the key "label". The "box_2d" value must be [y_min, x_min, y_max, x_max]: '
    "integers between 0 and 1000, normalized to the image height and width. Return only the JSON list, with no "
    "extra text. Only use these labels: {classes}"
)


def box_2d_schema(classes: list[str]) -> dict[str, Any]:
    """The shape v4's detection answer must take (Gemini's ``response_schema``: an OpenAPI subset)."""
    box = {"type": "ARRAY", "items": {"type": "INTEGER", "minimum": 0, "maximum": 1000}, "minItems": 4,
           "maxItems": 4}
    entry = {"type": "OBJECT", "properties": {"box_2d": box, "label": {"type": "STRING", "enum": list(classes)}},
             "required": ["box_2d", "label"], "propertyOrdering": ["box_2d", "label"]}
    return {"type": "ARRAY", "items": entry}


def first_text_part(candidate: dict[str, Any]) -> str:
    """The first part holding text (code execution adds others; a thought summary is not the answer)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict) and isinstance(part.get("text"), str) and part.get("thought") is not True:
            return str(part["text"])
    raise ProviderError("Google Gemini API answered with no text in its candidate")


def _code_execution(value: Any) -> bool:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"google_code_execution must be true, false or null, got {value!r}")
    return value is True


class GeminiBlockV3(HostedModelBlock):
    provider = "Google Gemini"
    url_setting = "gemini_api_url"
    box_2d_detection: ClassVar[bool] = False  # v4: Gemini's own detection prompt and answer schema

    def run(self, *, images: Any, task_type: str, prompt: Any, output_structure: Any, classes: Any, api_key: Any,
            model_version: Any, thinking_level: Any, temperature: Any, max_tokens: Any, google_code_execution: Any,
            max_concurrent_requests: Any) -> dict[str, Any]:
        del max_concurrent_requests  # the executor calls a batch's items this many at a time
        key = self._key(api_key)
        task = self._task(task_type, catalogue.TASKS_WITH_DETECTION, prompt, classes, output_structure)
        model = model_id(model_version)
        config = thinking_config(model, thinking_level, temperature, max_tokens, catalogue.GEMINI_V3_THINKING_MODELS)
        runs_code = _code_execution(google_code_execution) and model in catalogue.GEMINI_V3_CODE_EXECUTION_MODELS
        asked = self._prompt(task, config)
        request = generate_request(key, model, asked, jpeg_base64(images), config,
                                   CODE_EXECUTION_TOOLS if runs_code else None)
        return self._outputs(first_text_part(finished_candidate(self._call(request, key))), classes)

    def _prompt(self, task: TaskInputs, config: dict[str, Any]) -> prompts.Prompt:
        """The task's prompt (``config``: the generation config, which v4's detection adds its schema to)."""
        if self.box_2d_detection and task.task_type == catalogue.OBJECT_DETECTION:
            classes = task.classes or []
            config["response_schema"] = box_2d_schema(classes)
            return prompts.Prompt(None, BOX_2D_DETECTION.format(classes=", ".join(classes)), json_answer=True)
        return prompts.build("gemini", task.task_type, task.prompt, task.classes, task.output_structure)


class GeminiBlockV4(GeminiBlockV3):
    box_2d_detection = True
