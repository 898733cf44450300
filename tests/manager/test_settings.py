"""Settings read from the environment as deployments set them."""

import pytest

from services.manager.settings import ManagerSettings


def test_an_empty_auth_token_means_no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANAGER_AUTH_TOKEN", "")  # what the compose files pass when none is configured
    assert ManagerSettings().auth_token is None
    monkeypatch.setenv("MANAGER_AUTH_TOKEN", "s3cret")
    token = ManagerSettings().auth_token
    assert token is not None and token.get_secret_value() == "s3cret"
