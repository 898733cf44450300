"""The sinks inside a whole workflow run by the executor on real frames: a csv_formatter feeding the
local file sink and a webhook, step outputs as the workflow's outputs, step errors redacted."""

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import VideoMetadata, WorkflowImage
from tests.worker.workflows.sink_support import FakeClock, HttpRecorder, make_env


@pytest.fixture
def server() -> Iterator[HttpRecorder]:
    recorder = HttpRecorder()
    yield recorder
    recorder.close()


def workflow(url: str) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   {"type": "WorkflowParameter", "name": "token", "default_value": "tok-SECRET-1"}],
        "steps": [
            {"type": "roboflow_core/csv_formatter@v1", "name": "csv", "columns_data": {"camera": "gate"}},
            {"type": "roboflow_core/local_file_sink@v1", "name": "file", "content": "$steps.csv.csv_content",
             "output_mode": "append_log", "target_directory": "logs", "max_entries_per_file": 2},
            {"type": "roboflow_core/webhook_sink@v1", "name": "hook", "url": url, "method": "POST",
             "headers": {"Authorization": "$inputs.token"}, "json_payload": {"csv": "$steps.csv.csv_content"},
             "fire_and_forget": False, "cooldown_seconds": 0},
        ],
        "outputs": [{"type": "JsonField", "name": "file", "selector": "$steps.file.*"},
                    {"type": "JsonField", "name": "hook", "selector": "$steps.hook.message"}],
    }


def test_frames_flow_into_the_file_and_the_webhook(server: HttpRecorder, tmp_path: Path,
                                                   video_frame: Callable[[str, int], np.ndarray]) -> None:
    clock = FakeClock()
    env = make_env(clock, file_root=tmp_path)
    executor = WorkflowExecutor(compile_workflow(workflow(server.url + "/hook")), REGISTRY, env)

    for index in range(3):
        image = WorkflowImage.frame(video_frame("vtest.avi", index), "image",
                                    VideoMetadata("cam", index, datetime(2026, 1, 1)))
        outputs, errors = executor.run(image)
        clock.now += 1
        assert errors == []
        assert outputs == {"file": {"error_status": False, "message": "Data saved successfully"},
                           "hook": "Notification sent successfully"}

    logs = sorted((tmp_path / "logs").iterdir())
    assert [len(path.read_text().splitlines()) for path in logs] == [3, 2]  # header + 2 rows, header + 1
    assert all(path.read_text().splitlines()[0].startswith("camera,") for path in logs)
    requests = server.wait_for(3)
    assert requests[0].headers["authorization"] == "tok-SECRET-1"
    assert requests[0].json()["csv"].startswith("camera,")


def test_a_step_error_names_no_secret(server: HttpRecorder, tmp_path: Path,
                                      video_frame: Callable[[str, int], np.ndarray]) -> None:
    definition = workflow(server.url.replace("http://", "http://user:pw-SECRET-2@") + "/hook")
    env = make_env(FakeClock(), allowed_hosts=("example.com",))  # no file root either
    executor = WorkflowExecutor(compile_workflow(definition), REGISTRY, env)
    image = WorkflowImage.frame(video_frame("vtest.avi", 0), "image", VideoMetadata("cam", 0, datetime(2026, 1, 1)))

    outputs, errors = executor.run(image)

    assert outputs == {"file": None, "hook": None}
    assert {error.step for error in errors} == {"file", "hook"}
    text = repr(errors)
    assert "SinkSettings.file_root is not set" in text and "not among the hosts sinks may reach" in text
    assert "pw-SECRET-2" not in text and "tok-SECRET-1" not in text
    assert server.requests == []
