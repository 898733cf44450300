"""`python -m services.manager` as a subprocess that must come up, answer, and stop cleanly."""

import signal
import subprocess
import sys
from collections.abc import Callable

from services.client import ManagerClient, ProcessesManagerClientError
from tests.support.waiting import wait_until


def serve_once(env: dict[str, str], client: Callable[[], ManagerClient]) -> tuple[int, str]:
    """Starts the manager with ``env``, waits until ``client()`` gets a list_pipelines answer, sends
    SIGTERM; its exit code and output. Fails if the process exits before it ever answered."""
    process = subprocess.Popen([sys.executable, "-m", "services.manager"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def answers() -> bool:
            try:
                return client().list_pipelines().status == "success"
            except ProcessesManagerClientError:
                return process.poll() is not None  # stop waiting if it exited

        wait_until(answers, timeout=30)
        assert process.poll() is None, process.communicate()[0]
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, output
