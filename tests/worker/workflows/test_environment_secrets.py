"""environment_secrets_store@v1 run by the executor: only the variables WORKER_WORKFLOW_SECRETS allows are read
(their values taken by the worker's settings, as the worker starts), a refused or unset one fails the step with
its name and never its value, and an allowed one reaches a Slack notification while the frame's outputs, step
errors, sink messages and logs show ``***``."""

import dataclasses
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from services.core.workflows.compiler import compile_workflow
from services.worker.settings import WorkerSettings
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment, EnvironmentSecrets
from services.worker.workflows.executor import StepError, WorkflowExecutor
from services.worker.workflows.values import VideoMetadata, WorkflowImage
from tests.worker.workflows.sink_support import FakeSlack, make_env

TOKEN = "xoxb-env-SECRET-7"
REDIS_PASSWORD = "redis-PASSWORD-9"


@pytest.fixture
def worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose operator allows SLACK_TOKEN and UNSET_TOKEN, beside a Redis URL it keeps to itself."""
    monkeypatch.setenv("WORKER_WORKFLOW_SECRETS", "SLACK_TOKEN, UNSET_TOKEN")
    monkeypatch.setenv("SLACK_TOKEN", TOKEN)
    monkeypatch.delenv("UNSET_TOKEN", raising=False)
    monkeypatch.setenv("REDIS_URL", f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0")


def env_of(slack: FakeSlack) -> BlockEnvironment:
    """The blocks' environment as the worker's assembly makes it from its settings."""
    settings = WorkerSettings()
    secrets = EnvironmentSecrets(frozenset(settings.workflow_secrets), settings.workflow_secret_values())
    return dataclasses.replace(make_env(slack_api_url=f"{slack.url}/api"), environment_secrets=secrets)


def workflow(*variables: str) -> dict[str, Any]:
    """The secrets store, its first variable as a Slack token; the secret itself selected as an output too."""
    output = variables[0].lower()
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
             "variables_storing_secrets": list(variables)},
            {"type": "roboflow_core/slack_notification@v1", "name": "notify", "slack_token": f"$steps.vault.{output}",
             "channel": "C0CAMERAS", "message": "people at the door", "fire_and_forget": False,
             "cooldown_seconds": 0, "cooldown_session_key": "door"},
            {"type": "roboflow_core/buffer@v1", "name": "history", "data": f"$steps.vault.{output}", "length": 2},
        ],
        "outputs": [{"type": "JsonField", "name": "slack", "selector": "$steps.notify.message"},
                    {"type": "JsonField", "name": "secret", "selector": f"$steps.vault.{output}"},
                    {"type": "JsonField", "name": "vault", "selector": "$steps.vault.*"},
                    {"type": "JsonField", "name": "history", "selector": "$steps.history.output"}],
    }


def run_frames(executor: WorkflowExecutor, frames: int, video_frame: Callable[[str, int], np.ndarray]
               ) -> list[tuple[dict[str, Any], list[StepError]]]:
    return [executor.run(WorkflowImage.frame(video_frame("vtest.avi", index), "image",
                                             VideoMetadata("cam", index, datetime(2026, 1, 1))))
            for index in range(frames)]


@pytest.mark.usefixtures("worker_environment")
def test_an_allowed_variable_reaches_slack_and_shows_nowhere(slack: FakeSlack, caplog: pytest.LogCaptureFixture,
                                                              video_frame: Callable[[str, int], np.ndarray]) -> None:
    caplog.set_level(logging.DEBUG)
    env = env_of(slack)
    executor = WorkflowExecutor(compile_workflow(workflow("SLACK_TOKEN")), REGISTRY, env)

    (first, errors), (second, _) = run_frames(executor, 2, video_frame)

    assert errors == []
    assert first == {"slack": "Notification sent successfully", "secret": "***", "vault": {"slack_token": "***"},
                     "history": ["***"]}
    assert second["history"] == ["***", "***"]
    assert [request.headers["authorization"] for request in slack.wait_for(2)] == [f"Bearer {TOKEN}"] * 2
    assert TOKEN in env.secrets, "registered: redacted from step errors and sink messages"
    assert TOKEN not in json.dumps([first, second]) + caplog.text


@pytest.mark.usefixtures("worker_environment")
def test_a_refusal_naming_the_token_is_redacted(slack: FakeSlack, caplog: pytest.LogCaptureFixture,
                                                video_frame: Callable[[str, int], np.ndarray]) -> None:
    caplog.set_level(logging.DEBUG)
    slack.refuse = f"token {TOKEN} revoked"
    executor = WorkflowExecutor(compile_workflow(workflow("SLACK_TOKEN")), REGISTRY, env_of(slack))

    [(outputs, errors)] = run_frames(executor, 1, video_frame)

    assert outputs["slack"].endswith("Slack refused chat.postMessage: token *** revoked")
    assert TOKEN not in json.dumps(outputs) + repr(errors) + caplog.text


@pytest.mark.usefixtures("worker_environment")
def test_a_variable_the_operator_did_not_allow_is_never_read(slack: FakeSlack, caplog: pytest.LogCaptureFixture,
                                                             video_frame: Callable[[str, int], np.ndarray]) -> None:
    caplog.set_level(logging.DEBUG)
    executor = WorkflowExecutor(compile_workflow(workflow("REDIS_URL", "SLACK_TOKEN")), REGISTRY, env_of(slack))

    [(outputs, errors)] = run_frames(executor, 1, video_frame)

    assert outputs == {"slack": None, "secret": None, "vault": None, "history": None}
    [error] = errors
    assert error.step == "vault" and error.error_type == "ValueError"
    assert error.error_message == ("environment variable(s) 'REDIS_URL' may not be read by workflows on this worker "
                                   "(the operator allows them in WORKER_WORKFLOW_SECRETS)")
    assert REDIS_PASSWORD not in json.dumps(outputs) + repr(errors) + caplog.text
    assert slack.requests == []


@pytest.mark.usefixtures("worker_environment")
def test_an_allowed_variable_that_is_not_set_fails_the_step(slack: FakeSlack,
                                                            video_frame: Callable[[str, int], np.ndarray]) -> None:
    executor = WorkflowExecutor(compile_workflow(workflow("UNSET_TOKEN")), REGISTRY, env_of(slack))

    [(outputs, [error])] = run_frames(executor, 1, video_frame)

    assert outputs["slack"] is None and error.step == "vault"
    assert error.error_message == ("environment variable(s) 'UNSET_TOKEN' are allowed in WORKER_WORKFLOW_SECRETS "
                                   "but not set on this worker")


def test_without_the_setting_no_variable_is_readable(monkeypatch: pytest.MonkeyPatch, slack: FakeSlack,
                                                      video_frame: Callable[[str, int], np.ndarray]) -> None:
    monkeypatch.delenv("WORKER_WORKFLOW_SECRETS", raising=False)
    monkeypatch.setenv("SLACK_TOKEN", TOKEN)
    executor = WorkflowExecutor(compile_workflow(workflow("SLACK_TOKEN")), REGISTRY, env_of(slack))

    [(outputs, [error])] = run_frames(executor, 1, video_frame)

    assert outputs["secret"] is None and "'SLACK_TOKEN' may not be read" in error.error_message
    assert TOKEN not in json.dumps(outputs) + repr(error)
