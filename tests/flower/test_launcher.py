"""The Flower launcher's guard rails: no Flower without basic auth unless explicitly allowed, malformed
credentials refused without being echoed, the arguments it gives Flower; and the redacted task
kwargs repr the manager sends, which is all Flower ever sees of a pipeline's spec."""

import os
import subprocess
from pathlib import Path

import pytest

from services.manager.dispatch import redacted_kwargs_repr
from services.worker.flower import FlowerSettings, flower_argv
from tests.flower.process import LAUNCHER, ROOT, flower_env, running_flower
from tests.support.redis_server import RedisServer


@pytest.fixture(autouse=True)
def _no_flower_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """FlowerSettings reads ``FLOWER_*``: the caller's own must not change what these tests build."""
    for name in [name for name in os.environ if name.startswith("FLOWER_")]:
        monkeypatch.delenv(name)


def _launch(**settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(LAUNCHER, cwd=ROOT, env=flower_env(**settings), capture_output=True, text=True,
                          timeout=60, check=False)


def test_refuses_to_start_without_basic_auth() -> None:
    result = _launch(FLOWER_REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 2, result
    assert "refusing to start Flower without authentication" in result.stderr
    assert "FLOWER_BASIC_AUTH=user:password" in result.stderr and "FLOWER_ALLOW_NO_AUTH=1" in result.stderr


@pytest.mark.parametrize("basic_auth", ["ops", "ops:", ":hunter2-secret", "ops:hunter2-secret,broken"])
def test_refuses_malformed_basic_auth_without_echoing_it(basic_auth: str) -> None:
    result = _launch(FLOWER_BASIC_AUTH=basic_auth)
    assert result.returncode == 2, result
    assert "is not 'user:password'" in result.stderr
    assert "hunter2" not in result.stderr


def test_invalid_settings_are_named_without_echoing_the_credentials() -> None:
    result = _launch(FLOWER_BASIC_AUTH="ops:hunter2-secret", FLOWER_PERSISTENT="1")
    assert result.returncode == 2, result
    assert "FLOWER_PERSISTENT needs FLOWER_DB" in result.stderr
    assert "hunter2" not in result.stderr


def test_override_starts_flower_open_with_its_api_still_closed(redis_server: RedisServer, tmp_path: Path) -> None:
    with running_flower(redis_server.url, tmp_path / "flower.log", None, FLOWER_ALLOW_NO_AUTH="1") as flower:
        assert flower.get("/workers").status_code == 200  # explicitly allowed: the UI is open
        # Flower's own guard: its API needs auth unless FLOWER_UNAUTHENTICATED_API is also set.
        assert flower.get("/api/workers").status_code == 401


def test_arguments_given_to_flower() -> None:
    settings = FlowerSettings(basic_auth="ops:pa:ss, other:pw2", port=5600)
    assert flower_argv(settings) == ["flower", "--address=127.0.0.1", "--port=5600", "--persistent=False",
                                     "--basic_auth=ops:pa:ss,other:pw2"]
    persistent = FlowerSettings(basic_auth="ops:pw", persistent=True, db="/var/lib/flower/state")
    assert flower_argv(persistent)[3:5] == ["--persistent=True", "--db=/var/lib/flower/state"]
    assert flower_argv(FlowerSettings(allow_no_auth=True)) == [
        "flower", "--address=127.0.0.1", "--port=5555", "--persistent=False"]
    assert "ops:pw" not in repr(persistent)  # a SecretStr: settings never print it


def test_task_kwargs_repr_has_no_credentials() -> None:
    spec = {
        "video_references": ["rtsp://admin:cam-pass@10.0.0.7/stream", "http://cam/live.ts?token=tok-secret&x=1",
                             "data/media/vtest.avi", 0, "http://cam/api-key-secret/live.ts"],
        "model_id": "yolov3-tiny/coco-416",
        "udp_sink": {"host": "127.0.0.1", "port": 9999},
        "api_key": "api-key-secret",
    }
    shown = redacted_kwargs_repr({"pipeline_id": "p-1", "epoch": 3, "spec": spec, "reply_to": "vsim:reply:1"})
    for secret in ("cam-pass", "tok-secret", "api-key-secret"):
        assert secret not in shown
    assert "'api_key': '***'" in shown and "http://cam/***/live.ts" in shown
    assert "rtsp://***@10.0.0.7/stream" in shown and "token=***&x=1" in shown
    assert "'pipeline_id': 'p-1'" in shown and "'epoch': 3" in shown and "data/media/vtest.avi" in shown
    no_key = redacted_kwargs_repr({"pipeline_id": "p-2", "epoch": 1, "spec": {"api_key": None}, "reply_to": "r"})
    assert "'api_key': None" in no_key
