"""The worker's workflow settings reach the blocks' environment."""

import pytest

from services.worker.settings import WorkerSettings


def test_allowed_sink_hosts_come_from_a_comma_separated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_WORKFLOW_ALLOWED_HOSTS", " hooks.example.com, smtp.example.com ,")
    monkeypatch.setenv("WORKER_WORKFLOW_FILE_ROOT", "/srv/sink-files")

    settings = WorkerSettings()

    assert settings.sink_hosts() == ("hooks.example.com", "smtp.example.com")
    assert str(settings.workflow_file_root) == "/srv/sink-files"
    assert WorkerSettings(workflow_allowed_hosts="").sink_hosts() == ()
