"""Classification models in the repository: registration, metadata, task checks, the demo builder and its CLI."""

import json
from pathlib import Path

import pytest

from services.worker.models.__main__ import main
from services.worker.models.classification_demo import (
    CLASS_NAMES,
    DEMO_CLASSIFIER_ID,
    build_demo_classifier,
    demo_classifier_onnx,
)
from services.worker.models.errors import InvalidModelError, ModelNotFoundError
from services.worker.models.repository import TASK_CLASSIFICATION, TASK_DETECTION, ModelRepository
from tests.worker.models.test_repository import _tiny_onnx


def test_classifier_metadata_round_trip(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    spec = repo.register_classifier(
        "colours/2", demo_classifier_onnx(softmax=False), class_names=CLASS_NAMES, source="test",
        source_sha256="00", color="BGR", scale=1.0, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), logits=True,
    )
    assert spec.task_type == TASK_CLASSIFICATION and spec.layout is None
    assert (spec.input_name, spec.input_width, spec.input_height) == ("images", 64, 64)
    assert repo.resolve("colours/2") == spec == repo.resolve("colours/2", task=TASK_CLASSIFICATION)
    written = json.loads((tmp_path / "colours" / "2" / "model.json").read_text())
    assert written["task_type"] == "classification" and written["logits"] is True
    assert written["mean"] == [0.5, 0.4, 0.3] and written["layout"] is None


def test_wrong_task_named_with_the_model(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    build_demo_classifier(tmp_path)
    repo.register("tiny/v1", _tiny_onnx([1, 3, 6]), class_names=["a"], source="s", source_sha256="ab")
    with pytest.raises(InvalidModelError, match=r"model 'demo-colours/1' is a classification model; this step "
                                                r"needs an object-detection model"):
        repo.resolve(DEMO_CLASSIFIER_ID, task=TASK_DETECTION)
    with pytest.raises(InvalidModelError, match=r"model 'tiny/v1' is an object-detection model; this step needs a "
                                                r"classification model"):
        repo.resolve("tiny/v1", task=TASK_CLASSIFICATION)
    with pytest.raises(ModelNotFoundError, match="'colours/9'"):
        repo.resolve("colours/9", task=TASK_CLASSIFICATION)
    assert [(s.model_id, s.task_type) for s in repo.list()] == [(DEMO_CLASSIFIER_ID, "classification"),
                                                               ("tiny/v1", "object-detection")]


def test_metadata_written_before_classifiers_reads_as_a_detector(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    spec = repo.register("tiny/v1", _tiny_onnx([1, 3, 6]), class_names=["a"], source="s", source_sha256="ab")
    metadata = tmp_path / "tiny" / "v1" / "model.json"
    old = {k: v for k, v in json.loads(metadata.read_text()).items() if k not in ("task_type", "mean", "std", "logits")}
    metadata.write_text(json.dumps(old))
    assert repo.resolve("tiny/v1", task=TASK_DETECTION) == spec


@pytest.mark.parametrize(("change", "message"), [
    ({"task_type": "segmentation"}, "task_type 'segmentation'"),
    ({"layout": None}, "needs an output layout"),
    ({"std": [1, 0, 1]}, "std > 0"),
    ({"color": "HSV"}, "color must be RGB or BGR"),
])
def test_bad_metadata_refused(tmp_path: Path, change: dict[str, object], message: str) -> None:
    repo = ModelRepository(tmp_path)
    repo.register("tiny/v1", _tiny_onnx([1, 3, 6]), class_names=["a"], source="s", source_sha256="ab")
    metadata = tmp_path / "tiny" / "v1" / "model.json"
    metadata.write_text(json.dumps({**json.loads(metadata.read_text()), **change}))
    with pytest.raises(InvalidModelError, match=message):
        repo.resolve("tiny/v1")


def test_classifier_graph_checked_at_registration(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    with pytest.raises(InvalidModelError, match=r"expected one output \[B, 4\]"):
        repo.register_classifier("c/1", demo_classifier_onnx(), class_names=["a", "b", "c", "d"], source="s",
                                 source_sha256="0")
    with pytest.raises(InvalidModelError, match=r"expected one output \[B, 1\]"):
        repo.register_classifier("c/1", _tiny_onnx([1, 3, 6]), class_names=["a"], source="s", source_sha256="0")
    with pytest.raises(InvalidModelError, match="color must be RGB or BGR"):
        repo.register_classifier("c/1", demo_classifier_onnx(), class_names=CLASS_NAMES, source="s",
                                 source_sha256="0", color="rgb")
    assert repo.list() == []


def test_demo_build_is_deterministic(tmp_path: Path) -> None:
    assert demo_classifier_onnx() == demo_classifier_onnx()
    first = build_demo_classifier(tmp_path / "a")
    second = build_demo_classifier(tmp_path / "b")
    assert first.source_sha256 == second.source_sha256 and first.onnx_path.read_bytes() == demo_classifier_onnx()


def test_cli_builds_and_lists_the_demo_classifier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build-demo-classifier", "--repository", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"{DEMO_CLASSIFIER_ID}\t{tmp_path.resolve()}/demo-colours/1/model.onnx")
    assert main(["list", "--repository", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"{DEMO_CLASSIFIER_ID}\tclassification\t64x64\t3 classes\t")
