"""The Sentinel override (compose/sentinel.yaml) on the CPU stack, checked with the real Compose
implementations (no Docker engine needed): it renders in Compose v2 and v1, every service gets the
Sentinel URL (which the services parse) and waits for the sentinels, and it refuses to render without
the sentinels' password."""

import json
import os
import subprocess
from pathlib import Path

from services.infra.redis_connect import parse_redis_url
from tests.deploy.compose import COMPOSE, SECRETS, STACK_ENV, STACKS, Result, compose_v1, compose_v2


def test_the_sentinel_override_points_every_service_at_the_sentinels(tmp_path: Path) -> None:
    env = {**STACK_ENV, "SENTINEL_PASSWORD": "sentinel-pw-2c4e6a"}
    for binary in (compose_v2(), compose_v1()):
        result = run_compose_files(binary, [STACKS["cpu"], COMPOSE / "sentinel.yaml"], env, tmp_path)
        assert result.returncode == 0, result.stderr
    config = json.loads(run_compose_files(compose_v2(), [STACKS["cpu"], COMPOSE / "sentinel.yaml"], env, tmp_path,
                                          ("config", "--format", "json")).stdout)
    services = config["services"]
    assert {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"} <= set(services)
    url = (f"redis+sentinel://:{SECRETS['REDIS_PASSWORD']}@sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/vsim/0"
           "?sentinel_password=sentinel-pw-2c4e6a")
    for name, variable in (("manager", "MANAGER_REDIS_URL"), ("worker-cpu", "WORKER_REDIS_URL"),
                           ("api", "API_REDIS_URL"), ("flower", "FLOWER_REDIS_URL")):
        assert services[name]["environment"][variable] == url, name
        assert {"sentinel-1", "sentinel-2", "sentinel-3"} <= set(services[name]["depends_on"]), name
    for name in ("redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"):
        assert services[name].get("healthcheck"), name
    parse_redis_url(url, "MANAGER_REDIS_URL")  # the services accept what the override writes
    missing = run_compose_files(compose_v2(), [STACKS["cpu"], COMPOSE / "sentinel.yaml"], STACK_ENV, tmp_path)
    assert missing.returncode != 0 and "SENTINEL_PASSWORD" in missing.stderr


def run_compose_files(binary: Path, files: list[Path], env: dict[str, str], tmp: Path,
                      args: tuple[str, ...] = ("config", "-q")) -> Result:
    """``run_compose`` with several ``-f`` files (a stack and an override)."""
    env_file = tmp / "override.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    command = [str(binary), *(item for file in files for item in ("-f", str(file))), "--env-file", str(env_file)]
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "LANG": "C.UTF-8"}
    completed = subprocess.run([*command, *args], cwd=tmp, env=clean, capture_output=True, text=True, timeout=60,
                               check=False)
    return Result(completed.returncode, completed.stdout, completed.stderr)
