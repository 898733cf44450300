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


def test_the_hosted_llm_apis_are_the_operator_s(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = WorkerSettings()
    assert (defaults.workflow_openai_api_url, defaults.workflow_anthropic_api_url, defaults.workflow_gemini_api_url,
            defaults.workflow_llm_api_timeout) == ("https://api.openai.com/v1", "https://api.anthropic.com",
                                                   "https://generativelanguage.googleapis.com", 60.0)
    monkeypatch.setenv("WORKER_WORKFLOW_OPENAI_API_URL", "http://gateway.internal:8080/openai/v1/")
    monkeypatch.setenv("WORKER_WORKFLOW_LLM_API_TIMEOUT", "15")
    settings = WorkerSettings()
    assert (settings.workflow_openai_api_url, settings.workflow_llm_api_timeout) == (
        "http://gateway.internal:8080/openai/v1", 15.0)
    monkeypatch.setenv("WORKER_WORKFLOW_GEMINI_API_URL", "generativelanguage.googleapis.com")
    with pytest.raises(ValueError, match="WORKER_WORKFLOW_GEMINI_API_URL must be an http:// or https:// URL"):
        WorkerSettings()


def test_the_s3_endpoint_and_region_are_the_operator_s(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = WorkerSettings()
    assert (defaults.workflow_s3_endpoint_url, defaults.workflow_s3_region) == ("", "us-east-1")  # AWS's endpoint
    monkeypatch.setenv("WORKER_WORKFLOW_S3_ENDPOINT_URL", "http://minio.internal:9000/")
    monkeypatch.setenv("WORKER_WORKFLOW_S3_REGION", "eu-central-1")
    settings = WorkerSettings()
    assert (settings.workflow_s3_endpoint_url, settings.workflow_s3_region) == (
        "http://minio.internal:9000", "eu-central-1")


@pytest.mark.parametrize(("name", "value", "error"), [
    ("WORKER_WORKFLOW_S3_ENDPOINT_URL", "minio.internal:9000", "WORKER_WORKFLOW_S3_ENDPOINT_URL must be an http://"),
    ("WORKER_WORKFLOW_S3_ENDPOINT_URL", "http://user:pw@minio.internal", "no credentials, query or fragment"),
    ("WORKER_WORKFLOW_S3_REGION", "eu-central-1.evil.example", "WORKER_WORKFLOW_S3_REGION must be a region name"),
])
def test_a_bad_s3_setting_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                               error: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValueError, match=error):
        WorkerSettings()
