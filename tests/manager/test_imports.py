"""The manager never imports worker code or the heavy CV libraries."""

import subprocess
import sys


def test_manager_imports_no_worker_code() -> None:
    code = (
        "import sys, services.manager.__main__, services.manager.service\n"
        "bad = [m for m in sys.modules if m.startswith('services.worker') or m.startswith('services.api')"
        " or m.split('.')[0] in ('cv2', 'onnxruntime', 'numpy')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
