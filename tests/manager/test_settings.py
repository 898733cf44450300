"""Settings read from the environment as deployments set them."""

import pytest

from services.manager.settings import ManagerSettings


def test_an_empty_auth_token_means_no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANAGER_AUTH_TOKEN", "")  # what the compose files pass when none is configured
    assert ManagerSettings().auth_token is None
    monkeypatch.setenv("MANAGER_AUTH_TOKEN", "s3cret")
    token = ManagerSettings().auth_token
    assert token is not None and token.get_secret_value() == "s3cret"


def test_bare_host_and_port_variables_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")  # containers set these for other programs
    monkeypatch.setenv("PORT", "1234")
    settings = ManagerSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 7070)
    monkeypatch.setenv("STREAM_MANAGER_HOST", "10.0.0.5")
    assert ManagerSettings().host == "10.0.0.5"
    assert ManagerSettings(host="127.0.0.2", port=0).host == "127.0.0.2"
