"""The README's override file for local videos and cameras (section "Deployment (containers)") does what it says.

Its YAML is read from README.md itself, rendered over compose/cpu.yaml by Compose v2, and the manager's rendered
environment is turned into the manager's real settings: the two references the README's comments promise,
``"/videos/cam1.mp4"`` and camera ``0``, pass the manager's reference policy (by default both are refused).
"""

import json
import re
from pathlib import Path

import pytest

from services.core.errors import InvalidPayloadError
from services.core.references import check_references
from services.manager.handlers import reference_policy
from services.manager.settings import ManagerSettings
from tests.deploy.compose import COMPOSE, STACK_ENV, compose_v2, run_compose

README = Path(__file__).resolve().parents[2] / "README.md"
_OVERRIDE = re.compile(r"```yaml\n(# compose/local\.yaml:.*?)```", re.DOTALL)


def test_the_readme_override_lets_the_manager_accept_its_videos_and_camera(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (override,) = _OVERRIDE.findall(README.read_text())
    local = tmp_path / "local.yaml"
    local.write_text(override)
    result = run_compose(compose_v2(), COMPOSE / "cpu.yaml", STACK_ENV, tmp_path,
                         ("-f", str(local), "config", "--format", "json"))
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    worker = services["worker-cpu"]
    assert any(volume.get("target") == "/videos" and volume.get("read_only") for volume in worker["volumes"])
    assert any("/dev/video0" in json.dumps(device) for device in worker["devices"])

    for name in ("MANAGER_FILE_ROOTS", "MANAGER_ALLOWED_CAMERAS", "MANAGER_ALLOWED_SCHEMES"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InvalidPayloadError):  # what the manager does without the override
        check_references(["/videos/cam1.mp4"], reference_policy(ManagerSettings()))
    for name, value in services["manager"]["environment"].items():
        if name in ("MANAGER_FILE_ROOTS", "MANAGER_ALLOWED_CAMERAS"):
            monkeypatch.setenv(name, str(value))
    check_references(["/videos/cam1.mp4", 0], reference_policy(ManagerSettings()))
