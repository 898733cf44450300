"""``roboflow_core/google_vision_ocr@v1``: the text in an image, read by Google Cloud Vision's ``images:annotate``.

One request per image (``POST <base>/v1/images:annotate``, the base the worker operator's
``WORKER_WORKFLOW_GOOGLE_VISION_API_URL``): the image as a base64 JPEG (quality 95, its own size, as the reference
sends it), one feature (``ocr_type`` ``text_detection``: ``TEXT_DETECTION``; ``ocr_text_detection``:
``DOCUMENT_TEXT_DETECTION``) and, when given, ``imageContext.languageHints``.

The outputs are the reference's (``models/foundation/google_vision_ocr/v1.py``): ``text`` the first text annotation's
``description`` (the whole text) and ``language`` its ``locale``; ``predictions`` one object detection per block of
the full text annotation, in the API's order: its box the block's vertices' extent (a vertex leaves out a zero
coordinate), its confidence the block's (1.0 where the API gives none: ``TEXT_DETECTION``), its class id its index
and its class the block's words joined with spaces (each word its symbols), ``prediction_type`` ``"ocr"``, with the
image's lineage, so they go wherever a detector's do (filters, crops, drawing, ``stitch_ocr_detections``). An
image without text gives ``""``, ``""`` and no predictions (which still carry the image's size).

As the LLM blocks (:mod:`services.worker.workflows.blocks.llm.client`): the key goes only to the operator's address,
in the ``x-goog-api-key`` header (the reference puts it in the URL's query), is a secret of the step, and never
appears in an error; the host must be allowed by ``WORKER_WORKFLOW_ALLOWED_NETWORKS``; an HTTP error, a timeout, an
answer that is not the API's JSON, or an error the API reports for the image fails the step on that frame, naming
the API. Roboflow's proxy keys (``rf_key:...``, the manifest's default) are refused.
"""

import base64
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

import cv2
import numpy as np
import supervision as sv

from services.core.redaction import redact_text
from services.core.workflows.catalogue.models import GOOGLE_VISION_FEATURES, GOOGLE_VISION_PROVIDER
from services.worker.workflows.blocks.llm.client import ApiRequest, HostedModelBlock, ProviderError
from services.worker.workflows.values import CLASS_NAME, WorkflowImage, detections_on

ANNOTATE_PATH = "/v1/images:annotate"
JPEG_QUALITY = 95  # the reference's WorkflowImageData.base64_image
PREDICTION_TYPE = "ocr"
_DETAIL_CHARS = 300


def image_base64(image: Any) -> str:
    """The image as a base64 JPEG of its own size."""
    if not isinstance(image, WorkflowImage):
        raise ValueError(f"image must be an image, got {type(image).__name__}")
    ok, encoded = cv2.imencode(".jpg", image.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the image cannot be encoded as JPEG")
    return base64.b64encode(encoded.tobytes()).decode("ascii")


def feature_of(ocr_type: Any) -> str:
    feature = GOOGLE_VISION_FEATURES.get(ocr_type) if isinstance(ocr_type, str) else None
    if feature is None:
        raise ValueError(f"ocr_type must be one of {', '.join(GOOGLE_VISION_FEATURES)}, got {ocr_type!r}")
    return feature


def hints_of(language_hints: Any) -> list[str] | None:
    if language_hints is None:
        return None
    if not isinstance(language_hints, list) or not all(isinstance(hint, str) for hint in language_hints):
        raise ValueError(f"language_hints must be a list of language codes (strings) or null, got {language_hints!r}")
    return list(language_hints)


def annotate_request(key: str, image: str, feature: str, language_hints: list[str] | None) -> ApiRequest:
    """One ``AnnotateImageRequest`` of one image and one feature."""
    request: dict[str, Any] = {"image": {"content": image}, "features": [{"type": feature}]}
    if language_hints is not None:
        request["imageContext"] = {"languageHints": language_hints}
    return ApiRequest(ANNOTATE_PATH, {"requests": [request]}, {"x-goog-api-key": key})


def first_response(answer: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The answer's one ``AnnotateImageResponse``; an error the API reports for the image fails the step."""
    responses = answer.get("responses")
    if not isinstance(responses, list) or not responses or not isinstance(responses[0], Mapping):
        raise ProviderError(f"{GOOGLE_VISION_PROVIDER} API answered with no responses")
    response = responses[0]
    error = response.get("error")
    if error:  # a google.rpc.Status: HTTP 200, but this image was not read
        message = error.get("message") if isinstance(error, Mapping) else None
        code = error.get("code") if isinstance(error, Mapping) else None
        what = f": {str(message)[:_DETAIL_CHARS]}" if message else ""
        raise ProviderError(redact_text(f"{GOOGLE_VISION_PROVIDER} API could not annotate the image (error code "
                                        f"{code}){what}", (key,)))
    return response


def _block_box(block: Mapping[str, Any]) -> list[float]:
    vertices = (block.get("boundingBox") or {}).get("vertices") or []
    xs = [float(vertex.get("x", 0)) for vertex in vertices]
    ys = [float(vertex.get("y", 0)) for vertex in vertices]
    if not xs:
        raise ProviderError(f"{GOOGLE_VISION_PROVIDER} API answered with a text block without a bounding box")
    return [min(xs), min(ys), max(xs), max(ys)]


def _block_text(block: Mapping[str, Any]) -> str:
    return " ".join("".join(str(symbol.get("text", "")) for symbol in word.get("symbols") or [])
                    for paragraph in block.get("paragraphs") or [] for word in paragraph.get("words") or [])


def text_blocks(response: Mapping[str, Any]) -> list[tuple[list[float], float, str]]:
    """(xyxy, confidence, text) of every block of every page of the full text annotation, in the API's order."""
    pages: Sequence[Any] = (response.get("fullTextAnnotation") or {}).get("pages") or []
    return [(_block_box(block), float(block.get("confidence", 1.0)), _block_text(block))
            for page in pages for block in page.get("blocks") or []]


def vision_outputs(image: WorkflowImage, response: Mapping[str, Any]) -> dict[str, Any]:
    """The block's outputs for the API's response about ``image``."""
    annotations = response.get("textAnnotations") or []
    first = annotations[0] if annotations and isinstance(annotations[0], Mapping) else None
    try:
        blocks = text_blocks(response) if first is not None else []
    except (AttributeError, TypeError, ValueError):  # not the API's structure (a list where an object goes, ...)
        raise ProviderError(f"{GOOGLE_VISION_PROVIDER} API answered with a full text annotation it does not write "
                            "that way") from None
    count = len(blocks)
    xyxy = np.array([box for box, _, _ in blocks], dtype=np.float32).reshape(-1, 4)
    confidence = np.array([score for _, score, _ in blocks], dtype=np.float32)
    texts = [text for _, _, text in blocks]
    detections = detections_on(image, xyxy, confidence, np.arange(count, dtype=np.int64), texts,
                               str(uuid.uuid4()), PREDICTION_TYPE)
    # detections_on sorts by confidence: back to the API's order (each block's class id is its index there).
    detections = cast(sv.Detections, detections[np.argsort(np.argsort(-confidence, kind="stable"), kind="stable")])
    detections.data[CLASS_NAME] = np.array(texts, dtype=object)
    return {
        "text": str(first.get("description", "")) if first is not None else "",
        "language": str(first.get("locale", "")) if first is not None else "",
        "predictions": detections,
    }


class GoogleVisionOcrV1(HostedModelBlock):
    """``roboflow_core/google_vision_ocr@v1``: one ``images:annotate`` request per image."""

    provider = GOOGLE_VISION_PROVIDER
    url_setting = "google_vision_api_url"

    def run(self, *, image: Any, ocr_type: Any, api_key: Any, language_hints: Any = None) -> dict[str, Any]:
        key = self._key(api_key)
        request = annotate_request(key, image_base64(image), feature_of(ocr_type), hints_of(language_hints))
        return vision_outputs(image, first_response(self._call(request, key), key))
