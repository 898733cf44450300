"""Registering the OCR models: PP-OCRv4 mobile ("small") text detection and recognition and PP-OCR's text line
orientation classifier, fetched from PyPI.

The three ONNX graphs ship in the ``rapidocr-onnxruntime==1.4.4`` wheel (Apache-2.0); they are read straight out
of the wheel (never installed, none of its code used) and checked against pinned sha256s. The recogniser's
characters are the ONNX metadata's ``character`` list, with the space PaddleOCR appends (class 0 is the CTC blank).
Normalisation, as PaddleOCR's: the detector reads BGR / 255 less ImageNet's mean over its std, the recogniser and
the classifier BGR / 255 less 0.5 over 0.5. Cached: models registered from the same files are left alone.

``register_ocr_model`` registers another PP-OCR model (e.g. ``pp-ocr/det-medium`` for ``text_detection: medium``)
from its ONNX file; ``python -m services.worker.models register-ocr`` is its command line.
"""

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from services.core.workflows.ocr import ORIENTATION_MODEL_ID, detection_model_id, recognition_model_id
from services.worker.models.errors import InvalidModelError, ModelNotFoundError, ModelSourceError
from services.worker.models.repository import (
    TASK_OCR_DETECTION,
    TASK_OCR_ORIENTATION,
    TASK_OCR_RECOGNITION,
    ModelRepository,
    ModelSpec,
)

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "rapidocr-onnxruntime==1.4.4"
WHEEL_FILE = "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"
WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
_MODELS = "rapidocr_onnxruntime/models/"
# model id -> (member of the wheel, its sha256)
SMALL_MODELS: dict[str, tuple[str, str]] = {
    detection_model_id("small"): (
        _MODELS + "ch_PP-OCRv4_det_infer.onnx", "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
    recognition_model_id("small"): (
        _MODELS + "ch_PP-OCRv4_rec_infer.onnx", "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
    ORIENTATION_MODEL_ID: (
        _MODELS + "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
LINE_HEIGHT = 48
ORIENTATION_WIDTH = 192
ORIENTATIONS = ("0", "180")
CHARACTERS_KEY = "character"  # the recogniser's ONNX metadata key holding its characters, one a line


def build_ocr_models(repository: Path, downloads: Path) -> list[ModelSpec]:
    """The small OCR models, registered in ``repository`` unless already there from the same files."""
    repo = ModelRepository(repository)
    registered = [_registered(repo, model_id, sha256) for model_id, (_, sha256) in SMALL_MODELS.items()]
    if all(spec is not None for spec in registered):
        log.debug("OCR models already registered")
        return [spec for spec in registered if spec is not None]
    wheel = fetch_wheel(downloads)
    specs = []
    with zipfile.ZipFile(wheel) as archive:
        for model_id, (member, sha256) in SMALL_MODELS.items():
            try:
                onnx_bytes = archive.read(member)
            except KeyError:
                raise ModelSourceError(f"{wheel} has no file {member}") from None
            _verify(onnx_bytes, sha256, member)
            specs.append(register_ocr_model(repo, model_id, onnx_bytes,
                                            source=f"PyPI wheel {WHEEL_REQUIREMENT}: {member}", source_sha256=sha256))
    return specs


def register_ocr_model(repo: ModelRepository, model_id: str, onnx_bytes: bytes, *, source: str,
                       source_sha256: str | None = None, characters: list[str] | None = None) -> ModelSpec:
    """Register a PP-OCR ONNX model under ``model_id``, its role told by its name: ``pp-ocr/det-<size>`` a text
    detector, ``pp-ocr/rec-<size>`` a recogniser (``characters``: its character list, else its ONNX metadata's),
    ``pp-ocr/cls-<size>`` a text line orientation classifier (0 / 180 degrees)."""
    digest = source_sha256 or hashlib.sha256(onnx_bytes).hexdigest()
    role = model_id.split("/", 1)[1].split("-", 1)[0] if model_id.startswith("pp-ocr/") else ""
    if role == "det":
        return repo.register_ocr(model_id, onnx_bytes, task=TASK_OCR_DETECTION, class_names=("text",), source=source,
                                 source_sha256=digest, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    if role == "rec":
        labels = (characters if characters is not None else _metadata_characters(onnx_bytes)) + [" "]
        return repo.register_ocr(model_id, onnx_bytes, task=TASK_OCR_RECOGNITION, class_names=labels, source=source,
                                 source_sha256=digest, input_height=LINE_HEIGHT, mean=HALF, std=HALF)
    if role == "cls":
        return repo.register_ocr(model_id, onnx_bytes, task=TASK_OCR_ORIENTATION, class_names=ORIENTATIONS,
                                 source=source, source_sha256=digest, input_width=ORIENTATION_WIDTH,
                                 input_height=LINE_HEIGHT, mean=HALF, std=HALF)
    raise InvalidModelError(f"an OCR model id is pp-ocr/det-<size>, pp-ocr/rec-<size> or pp-ocr/cls-<size>, "
                            f"got {model_id!r}")


def fetch_wheel(downloads: Path) -> Path:
    """The verified wheel in ``downloads``, fetched with pip unless already there."""
    target = downloads / WHEEL_FILE
    if target.is_file() and _sha256(target.read_bytes()) == WHEEL_SHA256:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   WHEEL_REQUIREMENT, "-d", tmp]
        log.info("downloading %s", WHEEL_REQUIREMENT)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        fetched = Path(tmp) / WHEEL_FILE
        if result.returncode != 0 or not fetched.is_file():
            raise ModelSourceError(f"pip download {WHEEL_REQUIREMENT} failed: {result.stderr[-500:]}")
        _verify(fetched.read_bytes(), WHEEL_SHA256, WHEEL_FILE)
        os.replace(fetched, target)
    return target


def _registered(repo: ModelRepository, model_id: str, sha256: str) -> ModelSpec | None:
    try:
        spec = repo.resolve(model_id)
    except (ModelNotFoundError, InvalidModelError):
        return None
    return spec if spec.source_sha256 == sha256 else None


def _metadata_characters(onnx_bytes: bytes) -> list[str]:
    import onnxruntime as ort  # not onnx: registering needs only the worker's packages

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable graphs
        raise InvalidModelError(f"onnxruntime cannot load the model: {exc}") from exc
    characters = session.get_modelmeta().custom_metadata_map.get(CHARACTERS_KEY)
    if characters is None:
        raise InvalidModelError(f"the recogniser's ONNX metadata has no {CHARACTERS_KEY!r} list: give its characters")
    return str(characters).removesuffix("\n").split("\n")  # not splitlines(): some characters would split


def _verify(data: bytes, expected: str, name: str) -> None:
    actual = _sha256(data)
    if actual != expected:
        raise ModelSourceError(f"{name}: sha256 {actual} does not match the pinned {expected}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
