"""ClassificationPropertyExtract: the top class, its confidence, or every class and confidence.

Works on :class:`~services.worker.workflows.values.Classification` and on the reference's serialised
classification dict (``top``/``confidence``/``predictions``, or multi-label ``predicted_classes``).
"""

from collections.abc import Mapping
from typing import Any

from services.worker.workflows.operations.base import Context, describe
from services.worker.workflows.values import Classification

Operation = Mapping[str, Any]


def extract_property(value: Any, operation: Operation, context: Context) -> Any:
    name = operation["property_name"]
    if isinstance(value, Classification):
        return _from_result(value, name)
    if isinstance(value, dict) and "predictions" in value:
        try:
            return _from_dict(value, name)
        except (KeyError, TypeError) as exc:
            raise context.fail(f"the classification result lacks {exc}") from exc
    raise context.fail(f"expected a classification result, got {describe(value)}")


def _from_result(result: Classification, name: str) -> Any:
    if result.multi_label and name in ("top_class", "top_class_confidence", "top_class_confidence_single"):
        # As from the reference's multi-label dict: the predicted classes, their confidences, or the highest.
        found = [float(result.confidences[result.class_names.index(c)]) for c in result.predicted]
        if name == "top_class":
            return list(result.predicted)
        return found if name == "top_class_confidence" else max(found, default=0.0)
    if name == "top_class":
        return result.top
    if name in ("top_class_confidence", "top_class_confidence_single"):
        return result.top_confidence
    if name == "all_classes":
        return list(result.class_names)
    return [float(c) for c in result.confidences.tolist()]


def _from_dict(prediction: dict[str, Any], name: str) -> Any:
    predictions = prediction["predictions"]
    if name == "top_class":
        return prediction["top"] if "top" in prediction else prediction.get("predicted_classes", [])
    if name in ("top_class_confidence", "top_class_confidence_single"):
        if "confidence" in prediction:
            return prediction["confidence"]
        found = [predictions[c]["confidence"] for c in prediction.get("predicted_classes", [])]
        return found if name == "top_class_confidence" else max(found, default=0.0)
    if isinstance(predictions, list):
        return [p["class"] if name == "all_classes" else p["confidence"] for p in predictions]
    by_id = sorted(predictions.items(), key=lambda item: item[1]["class_id"])
    return [class_name if name == "all_classes" else p["confidence"] for class_name, p in by_id]
