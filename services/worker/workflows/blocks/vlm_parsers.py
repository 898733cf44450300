"""``roboflow_core/vlm_as_classifier@v1/v2`` and ``roboflow_core/vlm_as_detector@v1/v2``: a VLM's text answer parsed
into a :class:`~services.worker.workflows.values.Classification` or into detections on ``image``, so that it feeds
every block a classifier's or a detector's predictions feed.

As the reference: the answer's first ```json block is read when it has one, else the whole text
(:func:`~services.worker.workflows.blocks.json_parser.load_answer`). ``classes`` numbers the class names (a name
the answer uses that is not in it gets id -1). An answer that is not JSON, or not in the format its model type and
task type give, sets ``error_status`` with null ``predictions`` (skipping the steps they feed); ``inference_id`` is
always new.

Classification answers: ``{"class_name": ..., "confidence": ...}`` (single-label: that class at that confidence,
every other class of ``classes`` at 0; an unknown class first, id -1) or ``{"predicted_classes": [{"class": ...,
"confidence": ...}, ...]}`` (multi-label: each listed class at its highest confidence, the others at 0; unknown
classes after ``classes``, id -1). Confidences are clipped to [0, 1].

Detection answers, per model type (LLMs: task ``object-detection`` only):

- google-gemini: a list of entries, or ``{"detections": [...]}``; each a ``box_2d`` ``[y_min, x_min, y_max,
  x_max]`` on a 0-1000 scale, or ``x_min``, ``y_min``, ``x_max``, ``y_max`` as fractions of the image;
- anthropic-claude: v1 as google-gemini; v2 ``{"detections": [...]}`` with the fractional corners only;
- openai (v2): ``{"detections": [...]}`` with fractional corners, or entries (a list, or ``{"detections": [...]}``)
  whose ``box_2d`` is ``[x_min, y_min, x_max, y_max]`` in pixels of the upload (the image scaled down to a
  2048 px long side), clipped to it;
- spacexai (v2): entries with ``box_2d`` ``[x_min, y_min, x_max, y_max]`` in percent, clipped to 0-100;
- qwen (v2): entries with ``box_2d`` (or ``bbox_2d``) ``[x_min, y_min, x_max, y_max]`` on a 0-1000 scale, clipped;
  an entry without four numbers is skipped; its class from ``label``, ``description``, ``class_name`` or ``class``;
- muse (v2): entries with ``x_min``, ``y_min``, ``x_max``, ``y_max`` on a 0-1000 scale, clipped (entries without
  four finite numbers skipped), class from ``label``; a list of objects without its brackets is read too;
- florence-2: the Florence-2 block's parsed answer in pixels: ``bboxes`` and ``labels`` (``<OD>``, dense region
  captions, phrase grounding), ``bboxes`` and ``bboxes_labels`` (open vocabulary), ``bboxes`` (region proposals,
  class ``roi``) or ``quad_boxes`` and ``labels`` (OCR with regions: each quadrilateral's bounding box). Class ids:
  the class name's MD5 (its first 9 hex digits modulo 10000) for ``<OD>`` and phrase grounding, the index in
  ``classes`` for open vocabulary, else 0.

An entry's class (google-gemini, openai, spacexai) is its ``class_name``, ``label`` or ``class``, else
``unknown``; its confidence its ``confidence`` clipped to [0, 1], else 1 (qwen, muse and florence-2: always 1).
LLM boxes are rounded to whole pixels. Detections keep the answer's order.
"""

import hashlib
import json
import math
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.plan import PlanStep
from services.core.workflows.vlm import (
    FLORENCE_2,
    FLORENCE_TASKS,
    VLM_AS_CLASSIFIER_V1,
    VLM_AS_CLASSIFIER_V2,
    VLM_AS_DETECTOR_V1,
    VLM_AS_DETECTOR_V2,
)
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory
from services.worker.workflows.blocks.json_parser import load_answer
from services.worker.workflows.values import Classification, WorkflowImage, detections_on

UNKNOWN_CLASS_ID = -1
OPENAI_UPLOAD_MAX_EDGE = 2048  # the OpenAI block scales an image down to this long side before sending it
_BOX_FIELDS = ("x_min", "y_min", "x_max", "y_max")
# What a malformed answer raises while it is read: the answer's fault, reported as error_status.
_MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError)


def _text(vlm_output: Any) -> str:
    if not isinstance(vlm_output, str):
        raise ValueError(f"vlm_output must be a VLM's text answer (a string), got {type(vlm_output).__name__}")
    return vlm_output


def _confidence(value: Any) -> float:
    confidence = float(value)
    if math.isnan(confidence):
        raise ValueError("a confidence is NaN")
    return min(max(confidence, 0.0), 1.0)


def class_index(classes: Sequence[str] | None) -> dict[str, int]:
    """Class name -> id: its position in ``classes`` (the last one for a repeated name)."""
    if classes is None:
        raise ValueError("this answer needs the list of classes")
    return {str(name): index for index, name in enumerate(classes)}


def _failed() -> dict[str, Any]:
    return {"error_status": True, "predictions": None, "inference_id": str(uuid.uuid4())}


# ---------------------------------------------------------------------------- classification


class VLMAsClassifier:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, vlm_output: Any, classes: list[str]) -> dict[str, Any]:
        parsed = load_answer(_text(vlm_output))
        inference_id = str(uuid.uuid4())
        try:
            if isinstance(parsed, dict) and "class_name" in parsed and "confidence" in parsed:
                result = single_label(image, parsed, classes, inference_id)
            elif isinstance(parsed, dict) and "predicted_classes" in parsed:
                result = multi_label(image, parsed, classes, inference_id)
            else:
                return _failed()
        except _MALFORMED:
            return _failed()
        return {"error_status": False, "predictions": result, "inference_id": inference_id}


def _class_name(value: Any) -> str:
    if isinstance(value, dict | list) or value is None:
        raise ValueError(f"a class name must be a string, got {value!r}")
    return str(value)


def single_label(image: WorkflowImage, answer: dict[str, Any], classes: list[str], inference_id: str
                 ) -> Classification:
    index = class_index(classes)
    top, confidence = _class_name(answer["class_name"]), _confidence(answer["confidence"])
    names = ([top] if top not in index else []) + list(index)
    ids = ([UNKNOWN_CLASS_ID] if top not in index else []) + list(index.values())
    scores = np.array([confidence if name == top else 0.0 for name in names], dtype=np.float32)
    return Classification(image, tuple(names), scores, inference_id, class_ids=tuple(ids), top_index=names.index(top))


def multi_label(image: WorkflowImage, answer: dict[str, Any], classes: list[str], inference_id: str
                ) -> Classification:
    index = class_index(classes)
    listed = answer["predicted_classes"]
    if not isinstance(listed, list):
        raise ValueError("predicted_classes must be a list")
    found: dict[str, float] = {}
    for entry in listed:
        name, confidence = _class_name(entry["class"]), _confidence(entry["confidence"])
        index.setdefault(name, UNKNOWN_CLASS_ID)
        found[name] = max(found.get(name, confidence), confidence)
    scores = np.array([found.get(name, 0.0) for name in index], dtype=np.float32)
    return Classification(image, tuple(index), scores, inference_id, multi_label=True, predicted=tuple(found),
                          class_ids=tuple(index.values()))


# ---------------------------------------------------------------------------- detection

# A parsed answer's boxes (x1, y1, x2, y2 in pixels), class names, class ids and confidences.
_Boxes = tuple[list[list[float]], list[str], list[int], list[float]]
_Parser = Callable[[WorkflowImage, Any, list[str] | None], _Boxes]


def _entries(answer: Any, model: str) -> list[Any]:
    """A list of entries, or the list under ``detections``."""
    if isinstance(answer, list):
        return answer
    if isinstance(answer, dict) and "detections" in answer:
        detections = answer["detections"]
        if isinstance(detections, list):
            return detections
    raise ValueError(f"unexpected {model} object detection answer")


def _label(entry: dict[str, Any], keys: tuple[str, ...] = ("class_name", "label", "class")) -> str:
    for key in keys:
        if entry.get(key) is not None:
            return str(entry[key])
    return "unknown"


def _numbers(values: Any, count: int = 4) -> list[float] | None:
    """``values`` as ``count`` finite numbers (no booleans, no numeric strings), else None."""
    if not isinstance(values, list) or len(values) != count:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]


def _clip(box: Sequence[Any], width: float, height: float) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height)]


def _labelled(image: WorkflowImage, entries: list[Any], classes: list[str] | None,
              box: Callable[[dict[str, Any], int, int], list[float] | None],
              label: Callable[[dict[str, Any]], str] = _label, scored: bool = True, skip: bool = False) -> _Boxes:
    """Each entry's box (``box``: None skips the entry when ``skip``), class and confidence."""
    index = class_index(classes)
    boxes: _Boxes = ([], [], [], [])
    for entry in entries:
        if skip and not isinstance(entry, dict):
            continue
        xyxy = box(entry, image.width, image.height)
        if xyxy is None:
            if skip:
                continue
            raise ValueError(f"an entry has no box: {entry!r}")
        name = label(entry)
        boxes[0].append([float(round(v)) for v in xyxy])
        boxes[1].append(name)
        boxes[2].append(index.get(name, UNKNOWN_CLASS_ID))
        boxes[3].append(_confidence(entry.get("confidence", 1.0)) if scored else 1.0)
    return boxes


def _fractions(entry: dict[str, Any], width: int, height: int) -> list[float]:
    x1, y1, x2, y2 = (float(entry[field]) for field in _BOX_FIELDS)
    return [x1 * width, y1 * height, x2 * width, y2 * height]


def _gemini_box(entry: dict[str, Any], width: int, height: int) -> list[float]:
    if "box_2d" in entry:  # Gemini's own: [y_min, x_min, y_max, x_max] on 0-1000
        y1, x1, y2, x2 = (float(v) for v in entry["box_2d"])
        return [x1 / 1000 * width, y1 / 1000 * height, x2 / 1000 * width, y2 / 1000 * height]
    return _fractions(entry, width, height)


def upload_size(width: int, height: int, max_edge: int = OPENAI_UPLOAD_MAX_EDGE) -> tuple[int, int]:
    """The size an image is sent at: its long side scaled down to ``max_edge`` (never up), as the reference."""
    if max(width, height) <= max_edge:
        return width, height
    if width >= height:
        return max_edge, max(round(height * max_edge / width), 1)
    return max(round(width * max_edge / height), 1), max_edge


def _openai_box(entry: dict[str, Any], width: int, height: int) -> list[float]:
    sent_width, sent_height = upload_size(width, height)
    x1, y1, x2, y2 = _clip(entry["box_2d"], sent_width, sent_height)
    sx, sy = width / sent_width, height / sent_height
    return [x1 * sx, y1 * sy, x2 * sx, y2 * sy]


def _scaled_box(scale: float, keys: tuple[str, ...]) -> Callable[[dict[str, Any], int, int], list[float] | None]:
    """[x_min, y_min, x_max, y_max] on a 0-``scale`` range under the first of ``keys`` that holds four numbers
    (``keys`` of one name each: that name's number each), clipped to the range."""
    def box(entry: dict[str, Any], width: int, height: int) -> list[float] | None:
        if len(keys) == 4 and keys == _BOX_FIELDS:
            found = _numbers([entry.get(key) for key in keys])
        else:
            found = next((b for b in (_numbers(entry.get(key)) for key in keys) if b is not None), None)
        if found is None:
            return None
        x1, y1, x2, y2 = _clip(found, scale, scale)
        return [x1 / scale * width, y1 / scale * height, x2 / scale * width, y2 / scale * height]
    return box


def parse_gemini(image: WorkflowImage, answer: Any, classes: list[str] | None) -> _Boxes:
    return _labelled(image, _entries(answer, "Gemini"), classes, _gemini_box)


def parse_llm(image: WorkflowImage, answer: Any, classes: list[str] | None) -> _Boxes:
    """``{"detections": [...]}`` with fractional corners and a ``class_name`` each (Claude v2, OpenAI's older)."""
    return _labelled(image, answer["detections"], classes, _fractions, label=lambda entry: str(entry["class_name"]))


def parse_openai(image: WorkflowImage, answer: Any, classes: list[str] | None) -> _Boxes:
    if isinstance(answer, dict) and "detections" in answer:
        entries = answer["detections"]
        if isinstance(entries, list) and entries and isinstance(entries[0], dict) and "box_2d" in entries[0]:
            return _labelled(image, entries, classes, _openai_box)
        return parse_llm(image, answer, classes)
    if not isinstance(answer, list):
        raise ValueError("unexpected OpenAI object detection answer")
    return _labelled(image, answer, classes, _openai_box)


def parse_spacexai(image: WorkflowImage, answer: Any, classes: list[str] | None) -> _Boxes:
    def box(entry: dict[str, Any], width: int, height: int) -> list[float]:
        x1, y1, x2, y2 = _clip(entry["box_2d"], 100.0, 100.0)
        return [x1 / 100 * width, y1 / 100 * height, x2 / 100 * width, y2 / 100 * height]
    return _labelled(image, _entries(answer, "SpaceXAI"), classes, box)


def parse_qwen(image: WorkflowImage, answer: Any, classes: list[str] | None) -> _Boxes:
    return _labelled(image, _entries(answer, "Qwen"), classes, _scaled_box(1000.0, ("box_2d", "bbox_2d")),
                     label=lambda entry: _label(entry, ("label", "description", "class_name", "class")),
                     scored=False, skip=True)


def muse_entries(answer: Any) -> list[dict[str, Any]]:
    if isinstance(answer, list):
        return [entry for entry in answer if isinstance(entry, dict)]
    if isinstance(answer, dict):
        if isinstance(answer.get("detections"), list):
            return [entry for entry in answer["detections"] if isinstance(entry, dict)]
        if all(field in answer for field in _BOX_FIELDS):
            return [answer]
    raise ValueError("unexpected Muse object detection answer")


def loose_objects(text: str) -> list[dict[str, Any]]:
    """The objects with a box (``x_min`` ... ``y_max``) in text that is not JSON as a whole (Muse sometimes answers
    ``{...}, {...}`` without the list's brackets)."""
    decoder, found, start = json.JSONDecoder(), [], text.find("{")
    while start != -1:
        try:
            entry, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(entry, dict) and all(field in entry for field in _BOX_FIELDS):
            found.append(entry)
        start = text.find("{", end)
    return found


def parse_muse(image: WorkflowImage, answer: Any, classes: list[str] | None) -> _Boxes:
    return _labelled(image, muse_entries(answer), classes, _scaled_box(1000.0, _BOX_FIELDS),
                     label=lambda entry: str(entry.get("label") or "unknown"), scored=False, skip=True)


def md5_class_id(name: str) -> int:
    """Florence-2's class id of a free-form class name, as the reference computes it."""
    return int(hashlib.md5(name.encode("utf-8")).hexdigest()[:9], 16) % 10000


def florence_parser(task: str) -> _Parser:
    def parse(image: WorkflowImage, answer: Any, classes: list[str] | None) -> _Boxes:
        if not isinstance(answer, dict):
            raise ValueError("a Florence-2 answer is an object")
        if task == "<OCR_WITH_REGION>":
            quads = np.asarray(answer["quad_boxes"], dtype=np.float32).reshape(-1, 4, 2)
            xyxy = [[*quad.min(axis=0).tolist(), *quad.max(axis=0).tolist()] for quad in quads]
        else:
            xyxy = np.asarray(answer["bboxes"], dtype=np.float32).reshape(-1, 4).tolist()
        if task == "<REGION_PROPOSAL>":
            names = ["roi"] * len(xyxy)
        else:
            key = "bboxes_labels" if task == "<OPEN_VOCABULARY_DETECTION>" else "labels"
            names = [str(name) for name in answer[key]]
        if len(names) != len(xyxy):
            raise ValueError(f"{len(xyxy)} boxes but {len(names)} labels")
        if task in ("<OD>", "<CAPTION_TO_PHRASE_GROUNDING>"):
            ids = [md5_class_id(name) for name in names]
        elif task == "<OPEN_VOCABULARY_DETECTION>":
            index = class_index(classes)
            ids = [index.get(name, UNKNOWN_CLASS_ID) for name in names]
        else:
            ids = [0] * len(names)
        return xyxy, names, ids, [1.0] * len(names)
    return parse


_LLM_PARSERS_V1: dict[str, _Parser] = {"google-gemini": parse_gemini, "anthropic-claude": parse_gemini}
_LLM_PARSERS_V2: dict[str, _Parser] = {
    "openai": parse_openai, "google-gemini": parse_gemini, "anthropic-claude": parse_llm,
    "spacexai": parse_spacexai, "qwen": parse_qwen, "muse": parse_muse,
}


def parser_of(block: str, model_type: str, task_type: str) -> _Parser:
    if model_type == FLORENCE_2:
        return florence_parser(FLORENCE_TASKS[task_type])
    return (_LLM_PARSERS_V1 if block == VLM_AS_DETECTOR_V1 else _LLM_PARSERS_V2)[model_type]


def detections_of(image: WorkflowImage, boxes: _Boxes, inference_id: str) -> sv.Detections:
    """Detections on ``image`` in the answer's order, with every lineage field a model's detections carry."""
    xyxy, names, ids, confidences = boxes
    count = len(names)
    # Equal confidences while they are made: detections_on keeps that order (it sorts by confidence, stably).
    detections = detections_on(image, np.asarray(xyxy, dtype=np.float32).reshape(-1, 4), np.ones(count),
                               np.arange(count), names, inference_id)
    detections.confidence = np.asarray(confidences, dtype=np.float32)
    detections.class_id = np.asarray(ids, dtype=np.int64)
    detections.data[values.CLASS_NAME] = np.array(names, dtype=object)
    return detections


class VLMAsDetector:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del env
        self._block = step.type

    def run(self, image: WorkflowImage, vlm_output: Any, model_type: str, task_type: str,
            classes: list[str] | None = None) -> dict[str, Any]:
        text = _text(vlm_output)
        parsed = load_answer(text)
        if model_type == "muse" and self._block == VLM_AS_DETECTOR_V2 and not isinstance(parsed, dict | list):
            parsed = loose_objects(text) or None
        if not isinstance(parsed, dict | list):
            return _failed()
        inference_id = str(uuid.uuid4())
        try:
            boxes = parser_of(self._block, model_type, task_type)(image, parsed, classes)
        except _MALFORMED:
            return _failed()
        return {"error_status": False, "predictions": detections_of(image, boxes, inference_id),
                "inference_id": inference_id}


VLM_BLOCKS: dict[str, BlockFactory] = {
    VLM_AS_CLASSIFIER_V1: VLMAsClassifier,
    VLM_AS_CLASSIFIER_V2: VLMAsClassifier,
    VLM_AS_DETECTOR_V1: VLMAsDetector,
    VLM_AS_DETECTOR_V2: VLMAsDetector,
}
