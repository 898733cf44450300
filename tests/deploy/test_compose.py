"""The compose files, checked with the real Compose implementations (no Docker engine needed).

Every file must pass ``config`` in Compose v2 (the Go implementation behind ``docker compose``) and
in Compose v1.29 (Debian's ``docker-compose``, common on Jetsons); the assertions then read the
configuration Compose v2 renders: what ``up`` would run.
"""

import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.compose import (
    ENV_EXAMPLE,
    PROFILES,
    SECRETS,
    STACK_ENV,
    STACKS,
    WORKER_ENV,
    WORKER_ONLY,
    Result,
    compose_v1,
    compose_v2,
    render,
    run_compose,
)

DEVICE_OF_WORKER = {"worker-cpu": "cpu", "worker-gpu": "gpu", "worker-jetson": "jetson"}
PUBLISHED = {"api": 8080, "manager": 7070, "flower": 5555, "redis": 6379}
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|BASIC_AUTH|API_KEY")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every deployment as Compose v2 renders it: the three stacks, and the worker-only file per profile."""
    tmp = tmp_path_factory.mktemp("rendered")
    configs = {name: render(path, STACK_ENV, tmp / name) for name, path in STACKS.items()}
    for profile in PROFILES:
        configs[f"worker:{profile}"] = render(WORKER_ONLY, WORKER_ENV, tmp / f"worker-{profile}", [profile])
    return configs


def _services(rendered: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for deployment, config in rendered.items():
        for name, service in config["services"].items():
            yield deployment, name, service


def _workers(rendered: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for deployment, name, service in _services(rendered):
        if name in DEVICE_OF_WORKER:
            yield deployment, name, service


# --- both implementations accept every file -------------------------------------------------------------

# Compose v1 takes about a second a run (Python start-up): its cases run once, concurrently.
V1_CASES: dict[str, tuple[Path, dict[str, str]]] = {
    **{f"{stack} renders": (path, STACK_ENV) for stack, path in STACKS.items()},
    **{f"{stack} without secrets": (path, {}) for stack, path in STACKS.items()},
    # v1's config checks every service whatever the profile: one run covers the three workers.
    "worker renders": (WORKER_ONLY, WORKER_ENV),
    "worker without REDIS_URL": (WORKER_ONLY, {"REDIS_URL": ""}),
}


@pytest.fixture(scope="module")
def v1_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    binary, tmp = compose_v1(), tmp_path_factory.mktemp("v1")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(run_compose, binary, path, env, tmp / str(number))
                   for number, (case, (path, env)) in enumerate(V1_CASES.items())}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_every_stack_passes_config_in_compose_v2(stack: str, tmp_path: Path) -> None:
    result = run_compose(compose_v2(), STACKS[stack], STACK_ENV, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_the_worker_only_file_passes_config_in_compose_v2(profile: str, tmp_path: Path) -> None:
    result = run_compose(compose_v2(), WORKER_ONLY, WORKER_ENV, tmp_path, profiles=[profile])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", [case for case in V1_CASES if case.endswith("renders")])
def test_every_file_passes_config_in_compose_v1(case: str, v1_results: dict[str, Result]) -> None:
    assert v1_results[case].returncode == 0, v1_results[case].stderr


def test_each_worker_only_profile_runs_one_worker_of_its_device(rendered: dict[str, dict[str, Any]]) -> None:
    for profile in PROFILES:
        assert list(rendered[f"worker:{profile}"]["services"]) == [f"worker-{profile}"]


def test_the_compose_binaries_are_real_compose_implementations() -> None:
    v2 = subprocess.run([compose_v2(), "version"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Docker Compose version v[2-9]\.", v2), v2
    v1 = subprocess.run([compose_v1(), "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert v1.startswith("1.29."), v1


# --- required settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_the_worker_only_file_refuses_to_render_without_the_remote_redis(profile: str, tmp_path: Path) -> None:
    for env in ({}, {"REDIS_URL": ""}):
        result = run_compose(compose_v2(), WORKER_ONLY, env, tmp_path, profiles=[profile])
        assert result.returncode != 0
        assert "required variable REDIS_URL is missing" in result.stderr


def test_compose_v1_refuses_what_compose_v2_refuses(v1_results: dict[str, Result]) -> None:
    for stack in STACKS:
        result = v1_results[f"{stack} without secrets"]
        assert result.returncode != 0 and "set REDIS_PASSWORD" in result.stderr, result.stderr
    result = v1_results["worker without REDIS_URL"]
    assert result.returncode != 0 and "set REDIS_URL" in result.stderr, result.stderr


@pytest.mark.parametrize("stack", sorted(STACKS))
@pytest.mark.parametrize("missing", ["REDIS_PASSWORD", "FLOWER_BASIC_AUTH"])
def test_a_stack_refuses_to_render_without_its_secrets(stack: str, missing: str, tmp_path: Path) -> None:
    env = {key: value for key, value in STACK_ENV.items() if key != missing}
    result = run_compose(compose_v2(), STACKS[stack], env, tmp_path)
    assert result.returncode != 0, f"rendered {stack} without {missing}"
    assert f"required variable {missing} is missing" in result.stderr


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_the_example_env_file_renders_once_its_secrets_are_filled_in(stack: str, tmp_path: Path) -> None:
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    assert example["REDIS_PASSWORD"] == "" and example["FLOWER_BASIC_AUTH"] == "", "the example holds no secret"
    refused = run_compose(compose_v2(), STACKS[stack], example, tmp_path)
    assert refused.returncode != 0, "an unedited copy of env.example must not start a stack"
    filled = {**example, "REDIS_PASSWORD": SECRETS["REDIS_PASSWORD"], "FLOWER_BASIC_AUTH": SECRETS["FLOWER_BASIC_AUTH"]}
    config = render(STACKS[stack], filled, tmp_path)
    assert config["name"] == example["COMPOSE_PROJECT_NAME"]


# --- health and start order ---------------------------------------------------------------------------------


def test_every_service_has_a_healthcheck(rendered: dict[str, dict[str, Any]]) -> None:
    for deployment, name, service in _services(rendered):
        health = service.get("healthcheck")
        assert health, f"{deployment}: {name} has no healthcheck"
        assert not health.get("disable"), f"{deployment}: {name} disables its healthcheck"
        assert health["test"][0] in {"CMD", "CMD-SHELL"} and len(health["test"]) > 1
        assert health.get("interval") and health.get("timeout") and health.get("retries")


def test_every_dependency_waits_for_health(rendered: dict[str, dict[str, Any]]) -> None:
    for deployment, name, service in _services(rendered):
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert condition["condition"] == "service_healthy", f"{deployment}: {name} -> {dependency}"


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_start_order_keeps_the_api_from_answering_503(stack: str, rendered: dict[str, dict[str, Any]]) -> None:
    """The reference's Jetson problem: its API started before the manager listened and answered 503.

    Here the manager waits for Redis; the API for the manager and the worker; the healthchecks are
    the services' own probes (the manager answers list_pipelines, the worker is registered)."""
    services = rendered[stack]["services"]
    worker = f"worker-{stack}"
    assert set(services) == {"redis", "manager", "api", "flower", worker}
    assert set(services["manager"]["depends_on"]) == {"redis"}
    assert set(services[worker]["depends_on"]) == {"redis"}
    assert set(services["api"]["depends_on"]) == {"manager", worker}
    assert set(services["flower"]["depends_on"]) == {"redis"}
    assert "list" in services["manager"]["healthcheck"]["test"]
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "/healthcheck" in " ".join(services["flower"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert services[worker]["healthcheck"]["test"] == ["CMD", "python", "-m", "services.worker.health"]


# --- network exposure ------------------------------------------------------------------------------------------


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(port.get("host_ip", ""), int(port["published"]), int(port["target"])) for port in service.get("ports", [])]


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_ports_are_published_on_loopback_by_default(stack: str, rendered: dict[str, dict[str, Any]]) -> None:
    services = rendered[stack]["services"]
    for name, port in PUBLISHED.items():
        assert _published(services[name]) == [("127.0.0.1", port, port)], name
    assert _webrtc_range(services[f"worker-{stack}"]) == ("127.0.0.1", WEBRTC_PORTS)


WEBRTC_PORTS = list(range(47000, 47100))


def _webrtc_range(service: dict[str, Any]) -> tuple[str, list[int]]:
    """A worker publishes only its WebRTC UDP range, 1:1, on one address, and advertises that range."""
    ports = service.get("ports", [])
    assert all(port["protocol"] == "udp" for port in ports)
    addresses = {port.get("host_ip", "") for port in ports}
    published = [int(port["published"]) for port in ports]
    assert published == [int(port["target"]) for port in ports] and len(addresses) == 1
    environment = service["environment"]
    assert environment["WORKER_WEBRTC_PORT_RANGE"] == f"{min(published)}-{max(published)}"
    return addresses.pop(), published


def test_the_worker_only_file_publishes_only_the_webrtc_range(rendered: dict[str, dict[str, Any]]) -> None:
    for profile in PROFILES:
        for service in rendered[f"worker:{profile}"]["services"].values():
            assert _webrtc_range(service) == ("127.0.0.1", WEBRTC_PORTS)
            assert service["environment"]["WORKER_WEBRTC_ADVERTISED_ADDRESS"] == "127.0.0.1"


def test_the_webrtc_range_and_address_are_settings(tmp_path: Path) -> None:
    env = {**STACK_ENV, "WEBRTC_PUBLISH_ADDRESS": "0.0.0.0", "WEBRTC_ADVERTISED_ADDRESS": "192.0.2.7",
           "WEBRTC_PORT_MIN": "50000", "WEBRTC_PORT_MAX": "50009"}
    worker = render(STACKS["cpu"], env, tmp_path)["services"]["worker-cpu"]
    assert _webrtc_range(worker) == ("0.0.0.0", list(range(50000, 50010)))
    assert worker["environment"]["WORKER_WEBRTC_ADVERTISED_ADDRESS"] == "192.0.2.7"
    assert _published(render(STACKS["cpu"], env, tmp_path)["services"]["api"])[0][0] == "127.0.0.1"


def test_every_worker_may_be_limited_to_some_cpus_and_none_is_by_default(
        rendered: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    workers = list(_workers(rendered))
    assert {float(service.get("cpus", 0)) for _, _, service in workers} == {0.0}  # 0: no limit
    assert "WORKER_CPUS" in ENV_EXAMPLE.read_text()
    limited = {**STACK_ENV, "WORKER_CPUS": "1.5"}
    for stack, path in STACKS.items():
        services = render(path, limited, tmp_path / stack)["services"]
        assert [float(services[name]["cpus"]) for name in services if name in DEVICE_OF_WORKER] == [1.5], stack
    for profile in PROFILES:
        services = render(WORKER_ONLY, {**WORKER_ENV, "WORKER_CPUS": "1.5"}, tmp_path / profile, [profile])["services"]
        assert [float(service["cpus"]) for service in services.values()] == [1.5], profile


def test_publishing_is_a_documented_setting(tmp_path: Path) -> None:
    env = {**STACK_ENV, "PUBLISH_ADDRESS": "0.0.0.0", "API_PUBLISH_PORT": "18080"}
    services = render(STACKS["cpu"], env, tmp_path)["services"]
    assert _published(services["api"]) == [("0.0.0.0", 18080, 8080)]
    assert _published(services["manager"])[0][0] == "0.0.0.0"
    assert _published(services["redis"])[0][0] == "127.0.0.1", "Redis is exposed only on its own setting"
    services = render(STACKS["cpu"], {**STACK_ENV, "REDIS_PUBLISH_ADDRESS": "0.0.0.0"}, tmp_path)["services"]
    assert _published(services["redis"])[0][0] == "0.0.0.0"
    assert _published(services["api"])[0][0] == "127.0.0.1"


def test_services_bind_every_interface_inside_their_container(rendered: dict[str, dict[str, Any]]) -> None:
    """Loopback is the services' default bind address; in a container only 0.0.0.0 is reachable."""
    for stack in STACKS:
        services = rendered[stack]["services"]
        assert services["manager"]["environment"]["STREAM_MANAGER_HOST"] == "0.0.0.0"
        assert services["manager"]["environment"]["STREAM_MANAGER_PORT"] == "7070"
        assert services["api"]["environment"]["STREAM_MANAGEMENT_API_HOST"] == "0.0.0.0"
        assert services["api"]["environment"]["STREAM_MANAGEMENT_API_PORT"] == "8080"
        assert services["api"]["environment"]["API_MANAGER_HOST"] == "manager"
        assert services["flower"]["environment"]["FLOWER_ADDRESS"] == "0.0.0.0"
        assert services["flower"]["environment"]["FLOWER_PORT"] == "5555"


# --- secrets ----------------------------------------------------------------------------------------------------


def test_no_secret_is_written_in_a_compose_file() -> None:
    literal_url_password = re.compile(r"redis://:(?!\$\{|PASSWORD@)[^@\s]+@")  # PASSWORD: the placeholder
    for path in [*STACKS.values(), WORKER_ONLY]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split(" #", 1)[0]
            if code.lstrip().startswith("#"):
                continue
            assert not literal_url_password.search(code), f"{path.name}:{number}: a password in a URL"
            match = re.match(r"\s*([A-Z_]+):\s*(\S.*)?$", code)
            if match and SECRET_NAME.search(match.group(1)) and match.group(2):
                assert match.group(2).startswith("${"), f"{path.name}:{number}: {match.group(1)} is not from .env"


def test_secrets_come_from_the_env_file_and_reach_only_their_services(rendered: dict[str, dict[str, Any]]) -> None:
    for deployment, name, service in _services(rendered):
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if SECRET_NAME.search(key) and value:
                assert value in SECRETS.values(), f"{deployment}: {name}.{key} is not from the env file"
            if key.endswith("REDIS_URL"):
                assert f":{SECRETS['REDIS_PASSWORD']}@" in value, f"{deployment}: {name}.{key} has no password"
        flower_auth = environment.get("FLOWER_BASIC_AUTH")
        assert (flower_auth is not None) == (name == "flower"), f"{deployment}: {name} gets Flower's password"
        if name == "flower":
            assert flower_auth == SECRETS["FLOWER_BASIC_AUTH"]


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_the_manager_token_is_shared_by_the_manager_the_api_and_the_healthcheck(
    stack: str, rendered: dict[str, dict[str, Any]]
) -> None:
    services = rendered[stack]["services"]
    token = SECRETS["MANAGER_AUTH_TOKEN"]
    assert services["manager"]["environment"]["MANAGER_AUTH_TOKEN"] == token
    assert services["manager"]["environment"]["STREAM_MANAGER_TOKEN"] == token
    assert services["api"]["environment"]["API_MANAGER_TOKEN"] == token


def test_without_a_token_the_manager_runs_open(tmp_path: Path) -> None:
    env = {key: value for key, value in STACK_ENV.items() if key != "MANAGER_AUTH_TOKEN"}
    services = render(STACKS["cpu"], env, tmp_path)["services"]
    assert services["manager"]["environment"]["MANAGER_AUTH_TOKEN"] == ""
    assert services["api"]["environment"]["API_MANAGER_TOKEN"] == ""


def test_every_service_restarts_and_rotates_its_logs(rendered: dict[str, dict[str, Any]]) -> None:
    for deployment, name, service in _services(rendered):
        assert service["restart"] == "unless-stopped", f"{deployment}: {name}"
        assert service["logging"]["driver"] == "json-file", f"{deployment}: {name}"
        assert service["logging"]["options"]["max-size"] and service["logging"]["options"]["max-file"]


# --- state: Redis and the model repository ----------------------------------------------------------------------


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_redis_persists_its_state(stack: str, rendered: dict[str, dict[str, Any]]) -> None:
    redis = rendered[stack]["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command, "pipeline state is never evicted"
    assert "--requirepass" in command and SECRETS["REDIS_PASSWORD"] not in command, "the password stays in the env"
    assert redis["user"] == "redis", "not root: the shell command bypasses the image's own privilege drop"
    assert redis["image"].startswith("redis:7.") and "latest" not in redis["image"]
    volumes = [volume for volume in redis["volumes"] if volume["target"] == "/data"]
    assert len(volumes) == 1 and volumes[0]["type"] == "volume"
    assert volumes[0]["source"] in rendered[stack]["volumes"]


def test_every_worker_mounts_the_model_repository_volume(rendered: dict[str, dict[str, Any]]) -> None:
    for deployment, name, worker in _workers(rendered):
        repository = worker["environment"]["WORKER_MODEL_REPOSITORY"]
        mounts = [volume for volume in worker.get("volumes", []) if volume["target"] == repository]
        assert len(mounts) == 1, f"{deployment}: {name} does not mount {repository}"
        assert mounts[0]["type"] == "volume" and mounts[0]["source"] == "models"
        assert "models" in rendered[deployment]["volumes"]


# --- devices ------------------------------------------------------------------------------------------------------


def test_each_worker_serves_its_device_queue(rendered: dict[str, dict[str, Any]]) -> None:
    for deployment, name, worker in _workers(rendered):
        device = DEVICE_OF_WORKER[name]
        environment = worker["environment"]
        assert environment["WORKER_DEVICE"] == device, f"{deployment}: {name}"
        assert environment.get("WORKER_QUEUES", f"pipelines.{device}") == f"pipelines.{device}"
        assert worker["build"]["target"] == name
        assert worker.get("stop_grace_period"), "SIGTERM hands pipelines over; give it time"


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_a_stack_sends_device_less_inits_to_its_own_worker(stack: str, rendered: dict[str, dict[str, Any]]) -> None:
    assert rendered[stack]["services"]["manager"]["environment"]["MANAGER_DEFAULT_DEVICE"] == stack


def test_gpu_workers_reserve_an_nvidia_gpu(rendered: dict[str, dict[str, Any]]) -> None:
    for deployment in ("gpu", "worker:gpu"):
        worker = rendered[deployment]["services"]["worker-gpu"]
        devices = worker["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1
        assert devices[0]["driver"] == "nvidia"
        assert devices[0]["capabilities"] == ["gpu"]
        assert devices[0]["device_ids"] == ["0"]


def test_jetson_workers_use_the_nvidia_runtime(rendered: dict[str, dict[str, Any]]) -> None:
    for deployment in ("jetson", "worker:jetson"):
        assert rendered[deployment]["services"]["worker-jetson"]["runtime"] == "nvidia"


def test_cpu_workers_ask_for_no_accelerator(rendered: dict[str, dict[str, Any]]) -> None:
    for deployment in ("cpu", "worker:cpu"):
        worker = rendered[deployment]["services"]["worker-cpu"]
        assert "runtime" not in worker and "deploy" not in worker


def test_images_are_built_from_the_one_dockerfile(rendered: dict[str, dict[str, Any]]) -> None:
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (Path(STACKS["cpu"]).parent / "Dockerfile").read_text(), re.M))
    for deployment, name, service in _services(rendered):
        if name == "redis":
            continue
        build = service["build"]
        assert Path(build["context"]).resolve() == STACKS["cpu"].parents[1], f"{deployment}: {name}"
        assert build["dockerfile"] == "compose/Dockerfile"
        assert build["target"] == name and name in targets
        assert service["image"] == f"vsim/{name}:local"
        assert service.get("init") is True, "an init reaps the children of every service"


def test_the_jetson_build_arguments_default_to_the_dockerfiles(rendered: dict[str, dict[str, Any]]) -> None:
    dockerfile = (Path(STACKS["cpu"]).parent / "Dockerfile").read_text()
    defaults = dict(re.findall(r"^ARG (JETSON_[A-Z_]+)=(\S+)$", dockerfile, re.M))
    for deployment in ("jetson", "worker:jetson"):
        args = rendered[deployment]["services"]["worker-jetson"]["build"]["args"]
        assert args == defaults, deployment
