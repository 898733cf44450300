"""``python -m services.manager``: settings from the environment, clean stop on SIGTERM."""

import os
import signal
import subprocess
import sys

import redis

from services.client import ConnectivityError
from tests.manager.fakes import call
from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_until


def test_the_service_serves_and_stops_on_sigterm(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    port = free_port()
    env = {**os.environ, "STREAM_MANAGER_PORT": str(port), "MANAGER_REDIS_URL": redis_server.url,
           "MANAGER_LOG_LEVEL": "info"}
    process = subprocess.Popen([sys.executable, "-m", "services.manager"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def answers() -> bool:
            try:
                return bool(call(port, {"type": "list_pipelines"})["response"]["status"] == "success")
            except ConnectivityError:
                return False

        wait_until(answers, timeout=15)
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
