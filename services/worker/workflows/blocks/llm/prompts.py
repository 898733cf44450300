"""What each task type asks a hosted model: a system instruction and a text beside the image, as the reference's
prompt builders write them for each provider (their wording differs a little: OpenAI's JSON answers come in
Markdown code blocks, Gemini gets a text with every image, Claude's detection prompt reminds it to close the JSON).
The OpenRouter blocks ask as OpenAI's do, and forbid discussing a JSON answer; the reference's first-generation
OpenRouter blocks (``openrouter_v1``: llama_3_2_vision@v1, kimi_openrouter@v1, qwen3_5/qwen3_6_openrouter@v1) keep
the VQA instruction's "questionsubmitted", which its shared OpenRouter prompts (``openrouter``) corrected.
Two blocks ask for object detection in their own format: meta_vlm@v1 (``muse``: a JSON array of labels with corners
on a 0-1000 scale; its other prompts are the OpenRouter ones, the instruction and the text joined by a blank line in
one user text, no system message) and spacexai@v1 (``xai``: ``box_2d`` corners in percent; its other prompts are
open_ai v4's).

The texts are the reference's, word for word (its typos too: the model reads them, so changing one changes the
answers users get compared with the reference).
"""

import json
from dataclasses import dataclass
from typing import Any, Literal

from services.core.workflows.catalogue import llm as catalogue

Dialect = Literal["openai", "claude", "gemini", "openrouter", "openrouter_v1", "openai_responses", "muse", "xai"]
# (openai_responses: open_ai v4/v5, OpenAI's wording with "question submitted" and plain JSON for detection)
_MARKDOWN_JSON = frozenset({"openai", "openrouter", "openrouter_v1", "openai_responses", "xai"})  # JSON in Markdown
_VQA_SPACED_DIALECTS = frozenset({"openrouter", "openai_responses", "xai"})
# The detection prompts of meta_vlm@v1 and spacexai@v1 (the user's text, no instruction), {class_list} filled in.
MUSE_DETECTION = (
    "You are an object grounding expert. Detect all objects in this image matching these labels: {class_list}. "
    "Ensure the objects accurately match the request and do not miss any objects. For each object, answer in the "
    'format {{"label": "<name>", "x_min": <int>, "y_min": <int>, "x_max": <int>, "y_max": <int>}}. The coordinates '
    "should be in the 0-1000 range. Return a JSON array of results. If you cannot find an object, omit it from the "
    "results."
)
XAI_DETECTION = (
    'Detect all objects in this image. Output a JSON list where each entry contains the text label in the key "label" '
    'and the 2D bounding box in the key "box_2d". The "box_2d" value must be [x_min, y_min, x_max, y_max] as '
    "percentages of image width and height (floats between 0 and 100). Return only the JSON list, with no extra "
    "text. Only use these labels: {class_list}"
)
_OWN_DETECTION = {"muse": MUSE_DETECTION, "xai": XAI_DETECTION}
_OPENROUTER = frozenset({"openrouter", "openrouter_v1"})


@dataclass(frozen=True, slots=True)
class Prompt:
    """``system``: the system instruction (None: none). ``text``: the user's text beside the image (None: the image
    alone). ``json_answer``: the task expects JSON (Gemini is asked for an ``application/json`` answer)."""

    system: str | None
    text: str | None
    json_answer: bool = False


_OCR = ("You act as OCR model. Your task is to read text from the image and return it in paragraphs representing "
        "the structure of texts in the image. You should only return recognised text, nothing else.")
# (sic: "questionsubmitted")
_VQA = ("You act as Visual Question Answering model. Your task is to provide answer to questionsubmitted by user. "
        "If this is open-question - answer with few sentences, for ABCD question, return only the indicator of the "
        "answer.")
# (the OpenRouter blocks' shared prompts: "question submitted")
_VQA_SPACED = _VQA.replace("questionsubmitted", "question submitted")
_NO_DISCUSSION = " You cannot discuss the result, you are only allowed to return JSON document."
_CAPTION = "You act as image caption model. Your task is to provide description of the image. "
_ONLY_JSON = "You are only allowed to produce JSON document. "
_MARKDOWN_ONLY_JSON = "You are only allowed to produce JSON document in Markdown ```json``` markers. "
_CLASSIFICATION = (
    "You act as single-class classification model. You must provide reasonable predictions. {json_rule}"
    'Expected structure of json: {{"class_name": "class-name", "confidence": 0.4}}. '
    "`class-name` must be one of the class names defined by user. You are only allowed to return single JSON "
    "document, even if there are potentially multiple classes. You are not allowed to return list."
)
_MULTI_LABEL = (
    "You act as multi-label classification model. You must provide reasonable predictions. {json_rule}"
    'Expected structure of json: {{"predicted_classes": [{{"class": "class-name-1", "confidence": 0.9}}, '
    '{{"class": "class-name-2", "confidence": 0.7}}]}}.{gap}'
    "`class-name-X` must be one of the class names defined by user and `confidence` is a float value in range "
    "0.0-1.0 that {represent} how sure you are that the class is present in the image. Only return class names that "
    "are visible."
)
_STRUCTURED_OPENAI = (
    "You are supposed to produce responses in JSON wrapped in Markdown markers: ```json\nyour-response\n```. "
    "User is to provide you dictionary with keys and values. Each key must be present in your response. Values in "
    "user dictionary represent descriptions for JSON fields to be generated. Provide only JSON Markdown in response."
)
_STRUCTURED = (
    "You are supposed to produce responses in JSON. User is to provide you dictionary with keys and values. Each key "
    "must be present in your response. Values in user dictionary represent descriptions for JSON fields to be "
    "generated. Provide only JSON in response."
)
_DETECTION = (
    "You act as object-detection model. You must provide reasonable predictions. {json_rule}"
    'Expected structure of json: {{"detections": [{{"x_min": 0.1, "y_min": 0.2, "x_max": 0.3, '
    '"y_max": 0.4, "class_name": "my-class-X", "confidence": 0.7}}]}}{close}'
    "`my-class-X` must be one of the class names defined by user. All coordinates must be in range 0.0-1.0, "
    "representing percentage of image dimensions. `confidence` is a value in range 0.0-1.0 representing your "
    "confidence in prediction. You should detect all instances of classes provided by user."
)


def build(dialect: Dialect, task_type: str, prompt: str | None, classes: list[str] | None,
          output_structure: dict[str, Any] | None) -> Prompt:
    """The prompt of ``task_type`` for one provider (its inputs already checked: what the task needs is there)."""
    if task_type == catalogue.OBJECT_DETECTION and dialect in _OWN_DETECTION:
        return Prompt(None, _OWN_DETECTION[dialect].format(class_list=", ".join(classes or [])), json_answer=True)
    if dialect == "muse":  # the OpenRouter prompt as one text
        asked = build("openrouter", task_type, prompt, classes, output_structure)
        parts = [part for part in (asked.system, asked.text) if part is not None]
        return Prompt(None, "\n\n".join(parts), asked.json_answer)
    gemini, markdown = dialect == "gemini", dialect in _MARKDOWN_JSON
    tail = _NO_DISCUSSION if dialect in _OPENROUTER else ""
    listed = f"List of all classes to be recognised by model: {', '.join(classes or [])}"
    if task_type == catalogue.UNCONSTRAINED:
        return Prompt(None, prompt)
    if task_type == catalogue.VQA:
        return Prompt(_VQA_SPACED if dialect in _VQA_SPACED_DIALECTS else _VQA, f"Question: {prompt}")
    if task_type == catalogue.OCR:
        return Prompt(_OCR, "Read the text" if gemini else None)
    if task_type in (catalogue.CAPTION, catalogue.DETAILED_CAPTION):
        detail = "short" if task_type == catalogue.CAPTION else "extensive"
        return Prompt(f"{_CAPTION}Caption should be {detail}.", "Caption the image" if gemini else None)
    if task_type == catalogue.CLASSIFICATION:
        rule = "You are only allowed to produce JSON document in Markdown ```json [...]``` markers. " if markdown \
            else _ONLY_JSON
        return Prompt(_CLASSIFICATION.format(json_rule=rule) + tail, listed, json_answer=True)
    if task_type == catalogue.MULTI_LABEL:
        rule = _MARKDOWN_ONLY_JSON if markdown else _ONLY_JSON
        system = _MULTI_LABEL.format(json_rule=rule, gap="" if dialect == "claude" else " ",
                                     represent="represent" if markdown else "represents")
        return Prompt(system + tail, listed, json_answer=True)
    if task_type == catalogue.STRUCTURED:
        text = f"Specification of requirements regarding output fields: \n{json.dumps(output_structure, indent=4)}"
        return Prompt(_STRUCTURED_OPENAI if markdown else _STRUCTURED, text, json_answer=True)
    if task_type == catalogue.OBJECT_DETECTION and dialect != "openai":
        close = " - remember to close top-level dictionary at the end. " if dialect == "claude" else ". "
        rule = _MARKDOWN_ONLY_JSON if markdown and dialect != "openai_responses" else _ONLY_JSON
        return Prompt(_DETECTION.format(json_rule=rule, close=close) + tail, listed, json_answer=True)
    raise ValueError(f"task_type {task_type!r} is not supported by this block")
