"""WORKER_WORKFLOW_SECRETS: the environment variables workflows may read, checked when the worker starts, their
values taken then and kept out of the settings' repr."""

import re

import pytest
from pydantic import ValidationError

from services.worker.settings import WorkerSettings


def test_the_listed_variables_values_are_taken_when_the_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_WORKFLOW_SECRETS", " SLACK_TOKEN, smtp_password ,, MISSING")
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-settings-secret")
    monkeypatch.setenv("smtp_password", "pa55")
    monkeypatch.delenv("MISSING", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://:not-listed@127.0.0.1/0")

    settings = WorkerSettings()
    monkeypatch.setenv("SLACK_TOKEN", "changed later")

    assert settings.workflow_secrets == ("SLACK_TOKEN", "smtp_password", "MISSING")
    assert settings.workflow_secret_values() == {"SLACK_TOKEN": "xoxb-settings-secret", "smtp_password": "pa55"}
    assert settings.model_copy(update={"concurrency": 3}).workflow_secret_values() == settings.workflow_secret_values()
    assert "xoxb-settings-secret" not in repr(settings) + str(settings.model_dump())


def test_none_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_WORKFLOW_SECRETS", raising=False)
    assert WorkerSettings().workflow_secrets == () and WorkerSettings().workflow_secret_values() == {}


@pytest.mark.parametrize(("listed", "reason"), [
    ("SLACK_TOKEN,WORKER_REDIS_URL", "'WORKER_REDIS_URL' is one of the worker's own settings"),
    ("worker_redis_url", "'worker_redis_url' is one of the worker's own settings"),
    ("SLACK-TOKEN", "'SLACK-TOKEN' is not an environment variable name"),
    ("1TOKEN", "'1TOKEN' is not an environment variable name"),
    ("WORKFLOW_SECRET_*", "'WORKFLOW_SECRET_*' is not an environment variable name"),
])
def test_a_bad_list_stops_the_worker_at_start(monkeypatch: pytest.MonkeyPatch, listed: str, reason: str) -> None:
    monkeypatch.setenv("WORKER_WORKFLOW_SECRETS", listed)
    with pytest.raises(ValidationError, match=re.escape(f"WORKER_WORKFLOW_SECRETS: {reason}")):
        WorkerSettings()
