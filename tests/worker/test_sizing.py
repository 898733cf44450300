"""How the worker sizes its inference service and each pipeline's rounds in flight, from its settings."""

import pytest

from services.worker.settings import WorkerSettings


@pytest.mark.parametrize(("environment", "cores", "service", "in_flight", "live_threads"), [
    # automatic on CPU: one single-threaded run per core, a pipeline keeps them all busy; live-only load:
    # one run at a time with a thread per core
    ({}, 2, (2, 1), 3, 2),
    ({}, 16, (16, 1), 17, 16),
    ({}, 1, (1, 1), 2, 0),  # one core: nothing to gain
    ({"WORKER_INFERENCE_LIVE_LATENCY": "false"}, 2, (2, 1), 3, 0),
    # sized for latency (docs/inference-service.md, "Sizing"): one run at a time on every core, whatever the load
    ({"WORKER_INFERENCE_RUNNERS": "1", "WORKER_INTRA_OP_THREADS": "2"}, 2, (1, 2), 2, 0),
    ({"WORKER_INFERENCE_RUNNERS": "2"}, 2, (2, 1), 3, 0),  # sized by hand: kept as given
    ({"WORKER_DEVICE": "gpu"}, 16, (2, 0), 3, 0),  # accelerators: two batches in flight, onnxruntime's own threads
    ({"WORKER_INFERENCE_IN_FLIGHT": "5"}, 2, (2, 1), 5, 2),
])
def test_service_sizing_and_rounds_in_flight(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str],
                                             cores: int, service: tuple[int, int], in_flight: int,
                                             live_threads: int) -> None:
    for name in ("WORKER_INFERENCE_RUNNERS", "WORKER_INTRA_OP_THREADS", "WORKER_DEVICE", "WORKER_INFERENCE_IN_FLIGHT",
                 "WORKER_INFERENCE_LIVE_LATENCY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = WorkerSettings()

    assert settings.service_sizing(cores) == service
    assert settings.pipeline_in_flight(cores) == in_flight
    assert settings.service_live_threads(cores) == live_threads


def test_sizing_settings_refuse_negative_values() -> None:
    with pytest.raises(ValueError, match="inference_runners"):
        WorkerSettings(inference_runners=-1)


def test_decode_threads_reach_every_source_of_a_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.core.plan import PipelineSpec
    from services.worker.assembly import _pipeline_config

    monkeypatch.delenv("WORKER_DECODE_THREADS", raising=False)
    spec = PipelineSpec(video_references=["rtsp://camera/1", "data/media/vtest.avi"], model_id="m/1")
    assert _pipeline_config(spec, WorkerSettings(), shared=True).source.decode_threads == 0  # FFmpeg's count
    monkeypatch.setenv("WORKER_DECODE_THREADS", "1")
    assert _pipeline_config(spec, WorkerSettings(), shared=True).source.decode_threads == 1
    with pytest.raises(ValueError, match="decode_threads"):
        WorkerSettings(decode_threads=-1)
