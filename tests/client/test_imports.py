"""The client library is light: importing it loads no worker, CV, task-queue or web-server code."""

import subprocess
import sys

HEAVY = ("cv2", "onnxruntime", "celery", "numpy", "fastapi")


def test_importing_the_client_loads_no_heavy_module() -> None:
    code = (
        "import sys, services.client\n"
        "services.client.ManagerClient, services.client.AsyncManagerClient\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(heavy); sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "[]"
