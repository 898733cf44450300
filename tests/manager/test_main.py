"""``python -m services.manager``: settings from the environment, clean stop on SIGTERM."""

import os
import resource
import signal
import subprocess
import sys
import time

import redis

from services.client import ConnectivityError
from tests.manager.fakes import Client, call
from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_until


def _serving_manager(port: int, redis_url: str, **settings: str) -> "subprocess.Popen[str]":
    """``python -m services.manager`` on ``port`` (its output in a pipe), once it answers LIST."""
    env = {**os.environ, "STREAM_MANAGER_PORT": str(port), "MANAGER_REDIS_URL": redis_url,
           "MANAGER_LOG_LEVEL": "info", **settings}
    process = subprocess.Popen([sys.executable, "-m", "services.manager"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def answers() -> bool:
        try:
            return bool(call(port, {"type": "list_pipelines"})["response"]["status"] == "success")
        except ConnectivityError:
            return False

    try:
        wait_until(answers, timeout=15)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process


def test_the_service_serves_and_stops_on_sigterm(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    port = free_port()
    process = _serving_manager(port, redis_server.url)
    try:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert f"listening on 127.0.0.1:{port}" in output and "stopped" in output
    # The Redis target is logged only in its redacted form (services.infra.redis_connect; a URL with a
    # password is covered by tests/infra/test_redis_connect.py and tests/e2e/test_credentials.py).
    assert f"redis: {redis_server.url}" in output


def test_a_manager_out_of_descriptors_pauses_accepting_and_serves_the_waiting_clients_after(
        redis_server: RedisServer) -> None:
    # A real process with a low descriptor limit (set from outside: prlimit): connections kept open fill it, the
    # accept fails with EMFILE, the manager logs it and retries a second later while those beyond wait in the
    # listen backlog; once clients leave, every waiting one is served, and the manager never stopped.
    port = free_port()
    process = _serving_manager(port, redis_server.url, MANAGER_IDLE_TIMEOUT="60")
    kept: list[Client] = []
    try:
        in_use = len(os.listdir(f"/proc/{process.pid}/fd"))
        resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (in_use + 10, in_use + 10))
        for _ in range(16):  # more than the 10 descriptors left: the last ones wait unaccepted
            client = Client(port, timeout=15, keep_alive=True)
            client.send({"type": "list_pipelines"})
            kept.append(client)
        time.sleep(1.5)
        for client in kept:  # in order: each one that leaves frees a descriptor for one that waits
            assert client.receive()["response"]["status"] == "success"
            client.close()
        assert process.poll() is None
    finally:
        for client in kept:
            client.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    assert "cannot accept a connection" in output and "Too many open files" in output
