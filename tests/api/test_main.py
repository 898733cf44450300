"""Settings from the environment (the reference's names first) and what importing the API loads."""

import subprocess
import sys

import pytest

from services.api.settings import ApiSettings

VARIABLES = ("STREAM_MANAGEMENT_API_HOST", "STREAM_MANAGEMENT_API_PORT", "STREAM_MANAGER_HOST", "STREAM_MANAGER_PORT",
             "API_MANAGER_HOST", "API_MANAGER_PORT", "API_MANAGER_TOKEN", "STREAM_MANAGER_TOKEN", "API_REDIS_URL",
             "API_MANAGER_TIMEOUT", "API_INIT_TIMEOUT", "API_CORS_ORIGINS", "API_LOG_LEVEL")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_bind_loopback_and_find_the_manager_on_its_default_port(environment: pytest.MonkeyPatch) -> None:
    settings = ApiSettings()

    assert (settings.host, settings.port, settings.manager_address) == ("127.0.0.1", 8080, "127.0.0.1:7070")
    assert (settings.manager_timeout, settings.init_timeout) == (10.0, 60.0)
    assert settings.redis_url is None and settings.manager_token is None and settings.cors_origins == ()


def test_the_reference_names_and_our_overrides(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("STREAM_MANAGEMENT_API_HOST", "0.0.0.0")
    environment.setenv("STREAM_MANAGEMENT_API_PORT", "9090")
    environment.setenv("STREAM_MANAGER_HOST", "manager.lan")
    environment.setenv("STREAM_MANAGER_PORT", "7171")
    environment.setenv("STREAM_MANAGER_TOKEN", "from-the-tcp-clients-variable")
    environment.setenv("API_INIT_TIMEOUT", "90")
    environment.setenv("API_CORS_ORIGINS", "http://a.example, http://b.example")
    settings = ApiSettings()
    assert (settings.host, settings.port, settings.manager_address) == ("0.0.0.0", 9090, "manager.lan:7171")
    assert settings.manager_token is not None
    assert settings.manager_token.get_secret_value() == "from-the-tcp-clients-variable"
    assert settings.init_timeout == 90 and settings.cors_origins == ("http://a.example", "http://b.example")

    environment.setenv("API_MANAGER_HOST", "other.lan")
    environment.setenv("API_MANAGER_PORT", "7272")
    environment.setenv("API_MANAGER_TOKEN", "the-apis-own")
    environment.setenv("API_REDIS_URL", "redis://:password@redis.lan:6379/0")
    settings = ApiSettings()
    assert settings.manager_address == "other.lan:7272"
    assert settings.manager_token is not None and settings.manager_token.get_secret_value() == "the-apis-own"
    assert "password" not in repr(settings) and "the-apis-own" not in repr(settings)


def test_importing_the_api_loads_no_worker_manager_or_heavy_code() -> None:
    code = (
        "import sys, services.api.__main__, services.api.app\n"
        "bad = [m for m in sys.modules if m.startswith(('services.worker', 'services.manager'))"
        " or m.split('.')[0] in ('cv2', 'onnxruntime', 'numpy', 'celery')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_client_package_loads_no_server_code() -> None:
    code = (
        "import sys, services.client\n"
        "bad = [m for m in sys.modules if m.startswith('services.api')"
        " or m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn', 'cv2', 'onnxruntime', 'numpy', 'celery')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
