"""A workflow's secrets (sink passwords, credential headers and query values, URL credentials) are
found at compile time and kept out of the spec's repr, its redacted dump and the task's kwargs view."""

import json
from typing import Any

from services.core.plan import compile_init
from services.core.workflows import compile_workflow
from services.core.workflows.secrets import plan_secrets
from services.manager.dispatch import redacted_kwargs_repr

PASSWORD, TOKEN, URL_PASSWORD, QUERY_KEY = "smtp-Pa55", "tok-123456", "hunter2", "q-secret-9"


def definition() -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "password"}],
        "steps": [
            {"type": "roboflow_core/webhook_sink@v1", "name": "hook",
             "url": f"https://bot:{URL_PASSWORD}@hooks.example.com/in?api_key={QUERY_KEY}&camera=gate",
             "headers": {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
             "method": "POST", "json_payload": {"camera": "gate"}},
            {"type": "roboflow_core/email_notification@v1", "name": "mail", "subject": "s",
             "sender_email": "a@example.com", "receiver_email": "b@example.com", "message": "m",
             "smtp_server": "smtp.example.com", "sender_email_password": "$inputs.password"},
        ],
        "outputs": [],
    }


def test_the_secrets_of_a_plan_include_substituted_parameters() -> None:
    secrets = plan_secrets(compile_workflow(definition(), parameters={"password": PASSWORD}))

    assert {PASSWORD, TOKEN, f"Bearer {TOKEN}", URL_PASSWORD, QUERY_KEY} <= set(secrets)
    assert "application/json" not in secrets and "gate" not in secrets


def test_the_spec_hides_them_in_its_repr_its_redacted_dump_and_the_task_view() -> None:
    payload = {
        "video_configuration": {"type": "VideoConfiguration", "video_reference": "data/media/vtest.avi"},
        "processing_configuration": {"type": "WorkflowConfiguration", "workflow_specification": definition(),
                                     "workflows_parameters": {"password": PASSWORD}},
    }
    spec = compile_init(payload)
    task = spec.task_payload()
    assert PASSWORD in json.dumps(task)  # the worker needs them: the spec key and the task carry them

    shown = [repr(spec), str(spec), json.dumps(spec.redacted()),
             redacted_kwargs_repr({"pipeline_id": "p", "epoch": 1, "spec": task, "reply_to": "r"})]
    for text in shown:
        for secret in (PASSWORD, TOKEN, URL_PASSWORD, QUERY_KEY):
            assert secret not in text, (secret, text[:300])
    assert "hooks.example.com" in shown[2]  # what is not secret is still shown
