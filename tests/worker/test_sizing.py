"""How the worker sizes its inference service and each pipeline's rounds in flight, from its settings."""

import pytest

from services.worker.settings import WorkerSettings


@pytest.mark.parametrize(("environment", "cores", "service", "in_flight"), [
    ({}, 2, (2, 1), 3),  # automatic on CPU: one single-threaded run per core; a pipeline keeps them all busy
    ({}, 16, (16, 1), 17),
    # sized for latency (docs/inference-service.md, "Sizing"): one run at a time on every core
    ({"WORKER_INFERENCE_RUNNERS": "1", "WORKER_INTRA_OP_THREADS": "2"}, 2, (1, 2), 2),
    ({"WORKER_DEVICE": "gpu"}, 16, (2, 0), 3),  # accelerators: two batches in flight, onnxruntime's own threads
    ({"WORKER_INFERENCE_IN_FLIGHT": "5"}, 2, (2, 1), 5),
])
def test_service_sizing_and_rounds_in_flight(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str],
                                             cores: int, service: tuple[int, int], in_flight: int) -> None:
    for name in ("WORKER_INFERENCE_RUNNERS", "WORKER_INTRA_OP_THREADS", "WORKER_DEVICE", "WORKER_INFERENCE_IN_FLIGHT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = WorkerSettings()

    assert settings.service_sizing(cores) == service
    assert settings.pipeline_in_flight(cores) == in_flight


def test_sizing_settings_refuse_negative_values() -> None:
    with pytest.raises(ValueError, match="inference_runners"):
        WorkerSettings(inference_runners=-1)
