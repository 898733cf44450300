"""The layering the design promises: services import the shared core, never each other, and the
core does no I/O. Checked on the source (AST), so a violation fails whatever the tests import."""

import ast
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[1] / "services"
# Modules whose import means I/O or heavy native code: never in the shared core.
IO_MODULES = {"socket", "redis", "celery", "cv2", "onnxruntime", "onnx", "asyncio", "subprocess", "requests",
              "httpx", "urllib.request", "psutil", "threading"}
# Native libraries of the worker extra: only the worker imports them (the manager and API images lack them).
HEAVY_MODULES = {"cv2", "onnxruntime", "onnx", "numpy", "zxingcpp"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((SERVICES / package).rglob("*.py"))


@pytest.mark.parametrize("package", ["api", "manager", "worker", "client"])
def test_services_import_only_the_core_of_each_other(package: str) -> None:
    # The client is a library: anyone (the API, tools, users) may import it; it imports only the core.
    others = {"api", "manager", "worker"} - {package}
    for path in _modules(package):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "services" and len(parts) > 1:
                assert parts[1] not in others, f"{path} imports {name}"


def test_the_core_does_no_io() -> None:
    for path in _modules("core"):
        for name in _imports(path):
            assert name.split(".")[0] != "services" or name.startswith("services.core"), f"{path} imports {name}"
            assert name not in IO_MODULES and name.split(".")[0] not in IO_MODULES, f"{path} imports {name}"


def test_the_shared_adapters_import_only_the_core() -> None:
    for path in _modules("infra"):
        for name in _imports(path):
            parts = name.split(".")
            assert parts[0] != "services" or parts[1] in ("core", "infra"), f"{path} imports {name}"


def test_heavy_imports_stay_in_the_worker() -> None:
    for package in ("api", "manager", "core", "client", "infra"):
        for path in _modules(package):
            for name in _imports(path):
                assert name.split(".")[0] not in HEAVY_MODULES, f"{path} imports {name}"
