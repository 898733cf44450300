"""A named workflow end to end on the package's real stack (`python -m services.api`, the manager, a Celery worker
running the ONNX model): PUT it over HTTP, start a pipeline that names it, consume a result."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.stack import Stack
from tests.support.waiting import wait_until
from tools.payloads import MODEL_ID

VTEST = "data/media/vtest.avi"
DETECTION = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "image"}],
    "steps": [{"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model",
               "images": "$inputs.image", "model_id": MODEL_ID}],
    "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.model.predictions"}],
}


@pytest.fixture
def http(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=60) as client:
        yield client


def test_a_pipeline_runs_a_workflow_put_over_http(http: httpx.Client, stack: Stack) -> None:
    put = http.put("/workflows/e2e/people", json=DETECTION)
    assert put.status_code == 200, put.text
    init = http.post("/inference_pipelines/initialise", json={
        "video_configuration": {"type": "VideoConfiguration", "video_reference": VTEST, "max_fps": 5},
        "processing_configuration": {"type": "WorkflowConfiguration", "workspace_name": "e2e",
                                     "workflow_id": "people"},
        "sink_configuration": {"type": "MemorySinkConfiguration", "results_buffer_size": 16},
    })
    assert init.status_code == 200, init.text
    pipeline_id = init.json()["context"]["pipeline_id"]
    try:
        consumed: dict[str, Any] = {}

        def a_result() -> bool:
            response = http.get(f"/inference_pipelines/{pipeline_id}/consume")
            assert response.status_code == 200, response.text
            consumed.update(response.json())
            return bool(consumed["outputs"])

        wait_until(a_result, timeout=30, interval=0.2)
        [output] = consumed["outputs"]  # one source
        # Its inner shape (keyed by the workflow's output names) belongs to the worker's engine.
        assert isinstance(output, dict) and output
        assert consumed["frames_metadata"][0]["source_id"] == 0
    finally:
        terminated = http.post(f"/inference_pipelines/{pipeline_id}/terminate")
        assert terminated.status_code == 200, terminated.text
        assert http.delete("/workflows/e2e/people").status_code == 200
