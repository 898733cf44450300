"""``python -m services.worker.health``, the workers' container healthcheck, against a real Redis."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import redis

from services.core import keys
from services.worker.health import check, nodename
from services.worker.settings import WorkerSettings
from tests.support.pipelines import wait_for
from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_node_name_is_celerys() -> None:
    assert nodename(WorkerSettings(hostname=None)) == f"celery@{socket.gethostname()}"
    assert nodename(WorkerSettings(hostname="")) == f"celery@{socket.gethostname()}"
    assert nodename(WorkerSettings(hostname="gpu-1@%h")) == f"gpu-1@{socket.gethostname()}"
    assert nodename(WorkerSettings(hostname="edge")) == "celery@edge"  # a bare name is the host part


def test_healthy_only_while_registered(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    settings = WorkerSettings(redis_url=redis_server.url, hostname="w1@box")
    healthy, detail = check(settings)
    assert not healthy and "w1@box: not registered" in detail
    redis_client.set(keys.worker_registration("w1@box"), "{}", ex=5)
    assert check(settings) == (True, "worker w1@box: registered")
    assert not check(WorkerSettings(redis_url=redis_server.url, hostname="w2@box"))[0], "another worker's key"


def test_unreachable_redis_is_unhealthy_without_leaking_the_password() -> None:
    settings = WorkerSettings(redis_url=f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0", hostname="w@box")
    healthy, detail = check(settings, timeout=1.0)
    assert not healthy and "redis unreachable" in detail
    assert "hunter2-secret" not in detail


def test_the_command_exits_0_when_registered_and_1_when_not(redis_server: RedisServer,
                                                             redis_client: redis.Redis) -> None:
    env = {**os.environ, "WORKER_REDIS_URL": redis_server.url, "WORKER_HOSTNAME": "probe@%h"}
    command = [sys.executable, "-m", "services.worker.health"]
    missing = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 1 and "not registered" in missing.stdout
    redis_client.set(keys.worker_registration(f"probe@{socket.gethostname()}"), "{}", ex=5)
    present = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert present.returncode == 0, present.stdout + present.stderr


def test_it_follows_a_real_worker_from_start_to_shutdown(redis_server: RedisServer, tmp_path: Path) -> None:
    """The probe and ``python -m services.worker`` agree on the node name, whatever the container's hostname."""
    env = {**os.environ, "WORKER_REDIS_URL": redis_server.url, "WORKER_MODEL_REPOSITORY": str(tmp_path)}
    env.pop("WORKER_HOSTNAME", None)  # the containers' case: Celery's default celery@<hostname>
    probe = [sys.executable, "-m", "services.worker.health"]

    def healthy() -> bool:
        result = subprocess.run(probe, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        return result.returncode == 0

    worker = subprocess.Popen([sys.executable, "-m", "services.worker", "--concurrency", "1"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(healthy, timeout=60, interval=0.5)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert not healthy(), "a stopped worker deletes its registration"
