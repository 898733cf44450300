"""The /workflows routes through a real uvicorn in front of a real in-process manager: typed bodies, the error
table (400 with the JSON path, 404, 413, 422), the cross-origin guard on PUT and DELETE, and the HTTP clients."""

import asyncio
from typing import Any

import httpx
import pytest
import redis

from services.client import ApiClient, AsyncApiClient
from services.client.errors import ProcessesManagerInvalidPayload, ProcessesManagerNotFoundError
from services.core import keys
from tests.api.conftest import ApiFactory, ServedApi
from tests.manager.conftest import RunningManager
from tests.manager.test_server import UUID
from tests.manager.test_workflows import detection

PEOPLE = "/workflows/acme/people"


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "success" and UUID.fullmatch(body["context"]["request_id"])
    assert body["context"]["pipeline_id"] is None
    return body


def refused(response: httpx.Response, status: int, error_type: str, says: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"message", "error_type", "inner_error_type", "inner_error_message", "context"}
    assert body["error_type"] == error_type and says in body["inner_error_message"], body
    return body


def test_put_list_get_delete(api: ServedApi, redis_client: redis.Redis) -> None:
    created = ok(api.http.put(PEOPLE, json=detection(0.4)))
    replaced = ok(api.http.put(PEOPLE, json=detection(0.6)))
    ok(api.http.put("/workflows/other/cars", json=detection()))
    everything = ok(api.http.get("/workflows"))
    acme = ok(api.http.get("/workflows/acme"))
    got = ok(api.http.get(PEOPLE))
    deleted = ok(api.http.delete(PEOPLE))

    assert created["created"] is True and replaced["created"] is False
    assert (created["workspace_name"], created["workflow_id"]) == ("acme", "people")
    assert [(w["workspace_name"], w["workflow_id"]) for w in everything["workflows"]] == [
        ("acme", "people"), ("other", "cars")]
    assert acme["workflows"] == [{"workspace_name": "acme", "workflow_id": "people",
                                  "updated_at": replaced["updated_at"]}]
    assert got["specification"] == detection(0.6) and got["updated_at"] == replaced["updated_at"]
    assert set(deleted) == {"status", "context"}
    assert not redis_client.exists(keys.workflow("acme", "people"))
    refused(api.http.get(PEOPLE), 404, "ProcessesManagerNotFoundError", "workflow 'acme/people' not found")
    refused(api.http.delete(PEOPLE), 404, "ProcessesManagerNotFoundError", "not found")


def test_an_invalid_definition_is_400_with_its_json_path(api: ServedApi, redis_client: redis.Redis) -> None:
    workflow = detection()
    workflow["steps"][0]["type"] = "acme/unknown_block@v1"

    body = refused(api.http.put(PEOPLE, json=workflow), 400, "ProcessesManagerInvalidPayload",
                   "'specification.steps[0].type'")

    assert "acme/unknown_block@v1" in body["inner_error_message"] and body["inner_error_type"] == "InvalidPayloadError"
    assert set(redis_client.keys("*")) <= {keys.reaper_lease().encode()}  # nothing but the manager's lease


@pytest.mark.parametrize(("method", "path"), [("PUT", "/workflows/acme/..x"), ("GET", "/workflows/ac%20me/people"),
                                              ("GET", "/workflows/-acme"), ("DELETE", "/workflows/acme/.x")])
def test_an_invalid_name_is_400(api: ServedApi, method: str, path: str) -> None:
    refused(api.http.request(method, path, json=detection()), 400, "ProcessesManagerInvalidPayload",
            "is not a valid name")


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"json": [detection()]}, "must be a JSON object"),
    ({"content": b"{", "headers": {"Content-Type": "application/json"}}, "is not valid JSON"),
    ({"content": b"{}", "headers": {"Content-Type": "text/plain"}}, "must be sent as application/json"),
    ({}, "is required"),
])
def test_a_body_that_is_not_a_json_object_is_422(api: ServedApi, kwargs: dict[str, Any], says: str) -> None:
    refused(api.http.put(PEOPLE, **kwargs), 422, "RequestValidationError", says)


def test_a_body_over_the_limit_is_413(manager: RunningManager, serve_api: ApiFactory,
                                      redis_client: redis.Redis) -> None:
    small = serve_api(manager_port=manager.port, max_body_bytes=1024)
    response = small.http.put(PEOPLE, json={**detection(), "description": "x" * 4096})

    refused(response, 413, "RequestBodyTooLarge", "the limit is 1024 bytes (API_MAX_BODY_BYTES)")
    assert set(redis_client.keys("*")) <= {keys.reaper_lease().encode()}  # nothing but the manager's lease
    ok(small.http.put(PEOPLE, json=detection()))  # within the limit


def test_the_managers_own_size_limit_is_400_naming_its_setting(start_manager: Any, serve_api: ApiFactory) -> None:
    manager = start_manager(max_workflow_bytes=2048)
    api = serve_api(manager_port=manager.port)
    refused(api.http.put(PEOPLE, json={**detection(), "description": "x" * 4096}), 400,
            "ProcessesManagerInvalidPayload", "MANAGER_MAX_WORKFLOW_BYTES")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_writes_from_another_origin_are_refused(api: ServedApi, redis_client: redis.Redis, method: str) -> None:
    ok(api.http.put(PEOPLE, json=detection()))
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused(api.http.request(method, PEOPLE, json=detection(0.9), headers=headers), 403,
                "CrossOriginRequestRefused", "refused")
    assert ok(api.http.get(PEOPLE))["specification"] == detection()  # neither changed nor deleted
    ok(api.http.request(method, PEOPLE, json=detection(), headers={"Origin": api.url}))  # same origin


def test_with_the_apis_token_the_routes_need_it(manager: RunningManager, serve_api: ApiFactory) -> None:
    secured = serve_api(manager_port=manager.port, auth_token="api-token-0123456789")
    refused(secured.http.get("/workflows"), 401, "ApiAuthenticationError", "authentication required")
    refused(secured.http.put(PEOPLE, json=detection()), 401, "ApiAuthenticationError", "authentication required")
    ok(secured.http.put(PEOPLE, json=detection(), headers={"Authorization": "Bearer api-token-0123456789"}))


def test_the_http_clients(api: ServedApi) -> None:
    with ApiClient(api.url) as client:
        assert client.put_workflow("acme", "people", detection(0.4)).created is True
        assert client.get_workflow("acme", "people").specification == detection(0.4)
        assert [w.workflow_id for w in client.list_workflows("acme").workflows] == ["people"]
        with pytest.raises(ProcessesManagerInvalidPayload, match=r"steps\[0\]\.type"):
            client.put_workflow("acme", "bad", {**detection(), "steps": [{"type": "nope", "name": "x"}]})
        assert client.delete_workflow("acme", "people").status == "success"
        with pytest.raises(ProcessesManagerNotFoundError):
            client.get_workflow("acme", "people")

    async def scenario() -> list[Any]:
        async with AsyncApiClient(api.url) as client:
            put = await client.put_workflow("acme", "cars", detection())
            listed = await client.list_workflows()
            got = await client.get_workflow("acme", "cars")
            await client.delete_workflow("acme", "cars")
            return [put.created, [w.workflow_id for w in listed.workflows], got.specification]

    assert asyncio.run(scenario()) == [True, ["cars"], detection()]
