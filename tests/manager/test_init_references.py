"""INIT refuses each kind of unsafe video reference before anything is written (MANAGER_ALLOWED_SCHEMES,
MANAGER_FILE_ROOTS, MANAGER_ALLOWED_CAMERAS, MANAGER_MAX_SOURCES), naming the source and the reason."""

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from services.core import keys
from services.manager.settings import ManagerSettings
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.manager.test_server import INIT_PAYLOAD

PASSWORD = "Sup3rSecretPw"


def init(port: int, references: Any) -> dict[str, Any]:
    return call(port, {**INIT_PAYLOAD, "video_reference": references})


def written(client: redis.Redis) -> list[bytes]:
    return sorted(client.keys(f"{keys.PREFIX}:pipeline*") + client.keys(f"{keys.PREFIX}:reply:*"))


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        (f"gopher://viewer:{PASSWORD}@cam/1", "scheme 'gopher' is not allowed"),
        ("concat:data/media/vtest.avi|/etc/passwd", "scheme 'concat' is not allowed"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        (f"rtsp://viewer:{PASSWORD}@cam/1\nX-Injected: 1", "contains control characters"),
        ("-f lavfi", "starts with '-'"),
        ("videotestsrc ! appsink", "looks like a GStreamer pipeline"),
        ("/etc/passwd", "outside the allowed roots"),
        ("data/../../../etc/passwd", "outside the allowed roots"),
        (0, "camera 0 is not allowed; allowed: none (MANAGER_ALLOWED_CAMERAS)"),
        (-1, "a camera index must be >= 0"),
        ("rtsp://cam/" + "x" * 3000, "characters long; at most 2048"),
    ],
)
def test_each_unsafe_reference_is_refused_and_nothing_is_written(
    manager: RunningManager, fake_worker: FakeWorker, redis_client: redis.Redis, reference: Any, reason: str
) -> None:
    register_worker(redis_client)

    reply = init(manager.port, ["rtsp://cam/ok", reference])

    response = reply["response"]
    assert response["error_type"] == "invalid_payload", response
    assert "field 'video_reference' source 1 " in response["error_message"]
    assert reason in response["error_message"]
    assert response["public_error_message"].startswith("Video reference of source 1 is not allowed: ")
    assert PASSWORD not in json.dumps(reply) and "API-KEY-SECRET" not in json.dumps(reply)
    assert reply["pipeline_id"] is None
    assert fake_worker.calls == [] and written(redis_client) == []


def test_too_many_sources_names_the_limit(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    register_worker(redis_client)
    manager = start_manager(max_sources=2)

    assert init(manager.port, ["rtsp://cam/1", "rtsp://cam/2"])["response"] == {"status": "success"}
    response = init(manager.port, ["rtsp://cam/1", "rtsp://cam/2", "rtsp://cam/3"])["response"]

    assert response["error_type"] == "invalid_payload"
    assert "3 sources; at most 2 per pipeline (limit MANAGER_MAX_SOURCES)" in response["error_message"]
    assert len(fake_worker.calls) == 1


def test_a_symlink_out_of_a_root_is_refused_and_configured_roots_and_cameras_are_accepted(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis, tmp_path: Path
) -> None:
    register_worker(redis_client)
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "clip.avi").write_bytes(b"")
    (tmp_path / "media" / "escape.avi").symlink_to("/etc/hostname")
    manager = start_manager(file_roots=(tmp_path / "media",), allowed_cameras=(0, 2), allowed_schemes=("udp",),
                            max_sources=20)

    accepted = init(manager.port, [str(tmp_path / "media" / "clip.avi"), 2, "udp://0.0.0.0:1234"])
    escaping = init(manager.port, str(tmp_path / "media" / "escape.avi"))
    default_root = init(manager.port, "data/media/vtest.avi")  # no longer a root
    rtsp = init(manager.port, "rtsp://cam/1")  # no longer an allowed scheme

    assert accepted["response"] == {"status": "success"}
    assert "outside the allowed roots" in escaping["response"]["error_message"]
    assert "outside the allowed roots" in default_root["response"]["error_message"]
    assert "scheme 'rtsp' is not allowed; allowed: udp" in rtsp["response"]["error_message"]


def test_settings_read_the_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANAGER_ALLOWED_SCHEMES", "RTSP, https")
    monkeypatch.setenv("MANAGER_FILE_ROOTS", "/srv/a,data")
    monkeypatch.setenv("MANAGER_ALLOWED_CAMERAS", "0,1")
    monkeypatch.setenv("MANAGER_MAX_SOURCES", "4")

    settings = ManagerSettings()

    assert settings.allowed_schemes == ("rtsp", "https")
    assert settings.file_roots == (Path("/srv/a"), Path("data"))
    assert settings.allowed_cameras == (0, 1)
    assert settings.max_sources == 4
    monkeypatch.setenv("MANAGER_FILE_ROOTS", "")
    assert ManagerSettings().file_roots == ()


def test_the_defaults_accept_the_sample_video_and_streams_only() -> None:
    settings = ManagerSettings()

    assert settings.allowed_schemes == ("rtsp", "rtsps", "http", "https", "rtmp")
    assert settings.file_roots == (Path("data"),)
    assert settings.allowed_cameras == ()
    assert settings.max_sources == 16
