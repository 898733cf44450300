"""The on-disk model repository: ids, registration, lookup errors."""

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from services.worker.detection.layouts import OutputLayout
from services.worker.models.build import build_default_model
from services.worker.models.errors import InvalidModelError, ModelNotFoundError
from services.worker.models.repository import ModelRepository, ModelSpec, validate_model_id
from tests.worker.conftest import DOWNLOADS, MODELS


def _tiny_onnx(output_shape: list[int]) -> bytes:
    """A graph [1,3,8,8] -> output_shape (a Reshape of a ReduceMean), enough to inspect shapes."""
    size = 1
    for dim in output_shape:
        size *= dim
    nodes = [
        helper.make_node("Flatten", ["images"], ["flat"], axis=0),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["cut"]),
        helper.make_node("Reshape", ["cut", "shape"], ["output"]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [size]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("shape", TensorProto.INT64, [len(output_shape)], output_shape),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, output_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return bytes(model.SerializeToString())


@pytest.mark.parametrize("model_id", ["x", "../etc", "a/..", "a/b/c", "a/", "/b", "a b/c", "./x", "a/.", ""])
def test_bad_ids_refused(tmp_path: Path, model_id: str) -> None:
    with pytest.raises(InvalidModelError, match="invalid model id"):
        ModelRepository(tmp_path).resolve(model_id)


def test_good_id_accepted() -> None:
    assert validate_model_id("yolov3-tiny/coco-416") == ("yolov3-tiny", "coco-416")
    assert validate_model_id("my_project/v1.2") == ("my_project", "v1.2")


def test_unknown_id_names_id_and_root(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        ModelRepository(tmp_path).resolve("nothing/here")
    assert "nothing/here" in str(info.value) and str(tmp_path.resolve()) in str(info.value)


def test_unknown_layout_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelError, match=r"unknown output layout: shape \[1, 7\]"):
        ModelRepository(tmp_path).register(
            "tiny/v1", _tiny_onnx([1, 7]), class_names=["a"], source="t", source_sha256="0"
        )
    assert ModelRepository(tmp_path).list() == []


def test_register_resolve_list(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    spec = repo.register(
        "tiny/v1", _tiny_onnx([1, 3, 6]), class_names=["a"], source="hand-made", source_sha256="ab"
    )
    assert spec.layout is OutputLayout.YOLOV5 and (spec.input_width, spec.input_height) == (8, 8)
    assert repo.resolve("tiny/v1") == spec
    yolov8 = repo.register(
        "tiny/v8", _tiny_onnx([1, 5, 3]), class_names=["a"], source="hand-made", source_sha256="ab"
    )
    assert yolov8.layout is OutputLayout.YOLOV8
    assert [s.model_id for s in repo.list()] == ["tiny/v1", "tiny/v8"]
    assert sorted(p.name for p in (tmp_path / "tiny" / "v1").iterdir()) == ["model.json", "model.onnx"]


def test_broken_metadata_is_invalid(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    repo.register("tiny/v1", _tiny_onnx([1, 3, 6]), class_names=["a"], source="s", source_sha256="ab")
    metadata = tmp_path / "tiny" / "v1" / "model.json"
    metadata.write_text("{not json")
    with pytest.raises(InvalidModelError, match="unreadable model metadata"):
        repo.resolve("tiny/v1")
    metadata.write_text(json.dumps({"model_id": "tiny/v1"}))
    with pytest.raises(InvalidModelError):
        repo.resolve("tiny/v1")
    assert repo.list() == []


def test_onnx_without_metadata_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "half" / "built").mkdir(parents=True)
    (tmp_path / "half" / "built" / "model.onnx").write_bytes(b"partial")
    with pytest.raises(ModelNotFoundError):
        ModelRepository(tmp_path).resolve("half/built")


def test_build_is_cached(default_model: ModelSpec) -> None:
    again = build_default_model(MODELS, DOWNLOADS)
    assert again == default_model
    assert onnx.load(str(again.onnx_path), load_external_data=False).graph.output[0].name == "output"


def test_build_rebuilds_when_source_differs(tmp_path: Path) -> None:
    built = build_default_model(tmp_path, DOWNLOADS, size=320)
    assert built.model_id == "yolov3-tiny/coco-320" and built.input_width == 320
    metadata = tmp_path / "yolov3-tiny" / "coco-320" / "model.json"
    data = json.loads(metadata.read_text())
    metadata.write_text(json.dumps({**data, "source_sha256": "stale", "created": "then"}))
    rebuilt = build_default_model(tmp_path, DOWNLOADS, size=320)
    assert rebuilt.source_sha256 == built.source_sha256 and rebuilt.created != "then"
    assert not [p for p in metadata.parent.iterdir() if p.suffix == ".tmp"]


def test_build_refuses_bad_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        build_default_model(tmp_path, DOWNLOADS, size=300)
