"""compose/docker/worker-entrypoint.sh, run by the system's /bin/sh on real directories."""

import json
import os
import subprocess
from pathlib import Path

from tests.deploy.compose import COMPOSE

ENTRYPOINT = COMPOSE / "docker" / "worker-entrypoint.sh"


def _seed(root: Path) -> Path:
    model = root / "yolov3-tiny" / "coco-416"
    model.mkdir(parents=True)
    (model / "model.onnx").write_bytes(b"onnx bytes")
    (model / "model.json").write_text(json.dumps({"model_id": "yolov3-tiny/coco-416"}))
    return root


def _run(seed: Path, repository: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "VSIM_SEED_MODELS": str(seed), "WORKER_MODEL_REPOSITORY": str(repository)}
    return subprocess.run(["/bin/sh", str(ENTRYPOINT), *command], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


def test_it_installs_a_missing_model_then_runs_the_command(tmp_path: Path) -> None:
    seed, repository = _seed(tmp_path / "seed"), tmp_path / "models"
    result = _run(seed, repository, "sh", "-c", 'echo "ran $0 with $WORKER_MODEL_REPOSITORY"', "worker")
    assert result.returncode == 0, result.stderr
    assert f"ran worker with {repository}" in result.stdout
    assert "installed model yolov3-tiny/coco-416" in result.stdout
    assert (repository / "yolov3-tiny" / "coco-416" / "model.onnx").read_bytes() == b"onnx bytes"
    assert sorted(p.name for p in (repository / "yolov3-tiny").iterdir()) == ["coco-416"], "no staging left over"


def test_it_never_touches_a_model_already_in_the_repository(tmp_path: Path) -> None:
    seed, repository = _seed(tmp_path / "seed"), tmp_path / "models"
    existing = repository / "yolov3-tiny" / "coco-416"
    existing.mkdir(parents=True)
    (existing / "model.json").write_text("{}")
    (existing / "model.onnx").write_bytes(b"rebuilt by the operator")
    result = _run(seed, repository, "true")
    assert result.returncode == 0, result.stderr
    assert (existing / "model.onnx").read_bytes() == b"rebuilt by the operator"
    assert "installed" not in result.stdout


def test_the_commands_exit_status_is_the_containers(tmp_path: Path) -> None:
    result = _run(_seed(tmp_path / "seed"), tmp_path / "models", "sh", "-c", "exit 7")
    assert result.returncode == 7


def test_a_directory_in_the_way_is_reported_and_the_worker_still_starts(tmp_path: Path) -> None:
    seed, repository = _seed(tmp_path / "seed"), tmp_path / "models"
    in_the_way = repository / "yolov3-tiny" / "coco-416"
    in_the_way.mkdir(parents=True)
    (in_the_way / "notes.txt").write_text("not a model")
    result = _run(seed, repository, "echo", "started")
    assert result.returncode == 0 and "started" in result.stdout
    assert "is in the way" in result.stderr
    assert sorted(p.name for p in (repository / "yolov3-tiny").iterdir()) == ["coco-416"]


def test_without_seed_models_it_just_runs_the_command(tmp_path: Path) -> None:
    result = _run(tmp_path / "no-seed", tmp_path / "models", "echo", "started")
    assert result.returncode == 0 and result.stdout.strip() == "started"
