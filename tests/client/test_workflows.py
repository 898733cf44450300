"""The TCP clients' named-workflow methods, sync and async (each test runs against both), against the real
manager: typed replies, and the manager's refusals as the error classes of every other command."""

from typing import Any

import pytest
import redis

from services.client import (
    CommandResponse,
    ListWorkflowsResponse,
    ProcessesManagerAuthorisationError,
    ProcessesManagerInvalidPayload,
    ProcessesManagerNotFoundError,
    PutWorkflowResponse,
    WorkflowResponse,
)
from tests.client.conftest import Connect
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.test_server import UUID
from tests.manager.test_workflows import detection


@pytest.fixture
def client(connect: Connect, manager: RunningManager, redis_client: redis.Redis) -> Any:
    return connect(manager.port)


def test_put_get_list_delete(client: Any) -> None:
    created = client.put_workflow("acme", "people", detection(0.4))
    replaced = client.put_workflow("acme", "people", detection(0.6))
    got = client.get_workflow("acme", "people")
    listed = client.list_workflows()
    of_other = client.list_workflows("other")
    deleted = client.delete_workflow("acme", "people")

    assert isinstance(created, PutWorkflowResponse) and created.created is True and replaced.created is False
    assert UUID.fullmatch(str(created.context.request_id)) and created.context.pipeline_id is None
    assert isinstance(got, WorkflowResponse) and got.specification == detection(0.6)
    assert got.updated_at == replaced.updated_at
    assert isinstance(listed, ListWorkflowsResponse)
    assert [(w.workspace_name, w.workflow_id) for w in listed.workflows] == [("acme", "people")]
    assert of_other.workflows == []
    assert isinstance(deleted, CommandResponse) and deleted.status == "success"
    assert client.list_workflows().workflows == []


def test_refusals_are_the_usual_error_classes(client: Any) -> None:
    with pytest.raises(ProcessesManagerNotFoundError, match="workflow 'acme/ghost' not found"):
        client.get_workflow("acme", "ghost")
    with pytest.raises(ProcessesManagerNotFoundError):
        client.delete_workflow("acme", "ghost")
    with pytest.raises(ProcessesManagerInvalidPayload, match=r"specification\.steps\[0\]\.type"):
        client.put_workflow("acme", "bad", {**detection(), "steps": [{"type": "nope", "name": "x"}]})
    with pytest.raises(ProcessesManagerInvalidPayload, match="field 'workspace_name'"):
        client.list_workflows("")


def test_the_clients_token_is_sent(connect: Connect, start_manager: ManagerFactory) -> None:
    manager = start_manager(auth_token="s3cret-token")
    with pytest.raises(ProcessesManagerAuthorisationError):
        connect(manager.port, token="wrong-token").list_workflows()
    assert connect(manager.port, token="s3cret-token").put_workflow("acme", "people", detection()).created
