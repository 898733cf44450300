"""vlm_as_classifier and vlm_as_detector (v1, v2): a VLM's text answer (an LLM block's ``output``, or any string)
parsed into a classification or into object detections. Their catalogue entries (formatters family) and the
model type / task type pairs each version parses (the reference's registered parsers; any other pair is refused at
INIT, as the reference's manifest refuses it).
"""

from collections.abc import Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field, register_literals

VLM_AS_CLASSIFIER_V1 = "roboflow_core/vlm_as_classifier@v1"
VLM_AS_CLASSIFIER_V2 = "roboflow_core/vlm_as_classifier@v2"
VLM_AS_DETECTOR_V1 = "roboflow_core/vlm_as_detector@v1"
VLM_AS_DETECTOR_V2 = "roboflow_core/vlm_as_detector@v2"

FLORENCE_2 = "florence-2"
OBJECT_DETECTION = "object-detection"
# Florence-2's tasks and the task token its answer is keyed by.
FLORENCE_TASKS: dict[str, str] = {
    OBJECT_DETECTION: "<OD>",
    "open-vocabulary-object-detection": "<OPEN_VOCABULARY_DETECTION>",
    "object-detection-and-caption": "<DENSE_REGION_CAPTION>",
    "phrase-grounded-object-detection": "<CAPTION_TO_PHRASE_GROUNDING>",
    "region-proposal": "<REGION_PROPOSAL>",
    "ocr-with-text-detection": "<OCR_WITH_REGION>",
}
TASK_TYPES = tuple(FLORENCE_TASKS)
# model_type -> the task types it parses, per version (LLMs: object detection only).
DETECTOR_MODELS: dict[str, dict[str, tuple[str, ...]]] = {
    VLM_AS_DETECTOR_V1: {"google-gemini": (OBJECT_DETECTION,), "anthropic-claude": (OBJECT_DETECTION,),
                         FLORENCE_2: TASK_TYPES},
    VLM_AS_DETECTOR_V2: {"openai": (OBJECT_DETECTION,), "google-gemini": (OBJECT_DETECTION,),
                         "anthropic-claude": (OBJECT_DETECTION,), "spacexai": (OBJECT_DETECTION,),
                         "qwen": (OBJECT_DETECTION,), "muse": (OBJECT_DETECTION,), FLORENCE_2: TASK_TYPES},
}

register_literals({"vlm_class_names": (lambda value: isinstance(value, list) and all(isinstance(x, str) for x in value),
                                       "a list of class names (strings)")})


def detector_check(block: str) -> Any:
    """The manifest's validator: a pair of model type and task type that the version parses, and ``classes``
    for every model type but Florence-2."""
    models = DETECTOR_MODELS[block]

    def check(params: Mapping[str, Any], path: str) -> None:
        model_type, task_type = params.get("model_type"), params.get("task_type")
        if task_type not in models.get(str(model_type), ()):
            raise InvalidPayloadError(
                f"field '{path}.task_type': could not parse result of task {task_type!r} for model {model_type!r}; "
                f"{model_type!r} parses {', '.join(map(repr, models.get(str(model_type), ())))}"
            )
        if model_type != FLORENCE_2 and params.get("classes") is None:
            raise InvalidPayloadError(
                f"field '{path}.classes': must pass the list of classes for every model type except florence-2"
            )

    return check


def _classifier(name: str, inference_id_kind: str) -> BlockSpec:
    return BlockSpec(
        names=(name,),
        family="formatters",
        fields=(
            image_field("image", ()),
            # A selector of LANGUAGE_MODEL_OUTPUT in the reference only; any string here too (a workflow parameter,
            # a literal, string_template's output), as json_parser's raw_json.
            Field("vlm_output", kinds=(kinds.LANGUAGE_MODEL_OUTPUT, kinds.STRING), literal="str"),
            Field("classes", kinds=(kinds.LIST_OF_VALUES,), literal="vlm_class_names"),
        ),
        outputs={"error_status": (kinds.BOOLEAN,), "predictions": (kinds.CLASSIFICATION,),
                 "inference_id": (inference_id_kind,)},
    )


def _detector(name: str, inference_id_kind: str) -> BlockSpec:
    return BlockSpec(
        names=(name,),
        family="formatters",
        fields=(
            image_field("image", ()),
            Field("vlm_output", kinds=(kinds.LANGUAGE_MODEL_OUTPUT, kinds.STRING), literal="str"),
            Field("classes", kinds=(kinds.LIST_OF_VALUES,), literal="str_list", default=None),
            Field("model_type", literal="str", choices=tuple(DETECTOR_MODELS[name])),
            Field("task_type", literal="str", choices=TASK_TYPES),
        ),
        outputs={"error_status": (kinds.BOOLEAN,), "predictions": (kinds.OBJECT_DETECTION,),
                 "inference_id": (inference_id_kind,)},
        check=detector_check(name),
    )


VLM_BLOCKS = (
    _classifier(VLM_AS_CLASSIFIER_V1, kinds.STRING),
    _classifier(VLM_AS_CLASSIFIER_V2, kinds.INFERENCE_ID),
    _detector(VLM_AS_DETECTOR_V1, kinds.STRING),
    _detector(VLM_AS_DETECTOR_V2, kinds.INFERENCE_ID),
)
