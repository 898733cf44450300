"""Security of the TCP endpoint: the shared token, and the limits (rate, connections, pipelines per
device, frame size), each refusal naming its setting."""

import json
import logging
import time
from typing import Any

import pytest
import redis

from services.core.framing import encode_message
from services.manager.server import RATE_LIMIT_STRIKES
from services.manager.settings import ManagerSettings
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import Client, FakeWorker, call, register_worker
from tests.manager.test_server import INIT_PAYLOAD
from tests.support.waiting import wait_until

TOKEN = "tok-5ecret-8c1f"
WRONG = "wrong-5ecret-77a2"


# --- the shared token ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_body",
    [
        {"type": "list_pipelines"},
        {"type": "list_pipelines", "token": WRONG},
        {"type": "list_pipelines", "token": ""},
        {"type": "status", "pipeline_id": "p", "token": WRONG},
        {"type": "consume_result", "pipeline_id": "p", "excluded_fields": [], "token": TOKEN.upper()},
        {**INIT_PAYLOAD, "token": WRONG},
    ],
    ids=["missing", "wrong", "empty", "status-wrong", "consume-case", "init-wrong"],
)
def test_a_missing_or_wrong_token_is_an_authorisation_error_naming_no_secret(
    start_manager: ManagerFactory, fake_worker: FakeWorker, request_body: dict[str, Any]
) -> None:
    manager = start_manager(auth_token=TOKEN)

    reply = call(manager.port, request_body)

    response = reply["response"]
    assert response["status"] == "failure"
    assert response["error_type"] == "authorisation_error"
    assert response["error_class"] == "AuthorisationError"
    text = json.dumps(reply)
    assert TOKEN not in text and TOKEN.upper() not in text and WRONG not in text
    assert fake_worker.calls == []  # nothing was dispatched
    assert call(manager.port, {"type": "list_pipelines", "token": TOKEN})["response"]["pipelines"] == []


def test_the_log_of_requests_never_contains_a_token(
    start_manager: ManagerFactory, redis_client: redis.Redis, fake_worker: FakeWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = start_manager(auth_token=TOKEN)
    register_worker(redis_client)
    caplog.set_level(logging.DEBUG)

    refused = [call(manager.port, {"type": "list_pipelines", "token": WRONG}),
               call(manager.port, {"type": "status", "pipeline_id": "p", "token": WRONG}),
               call(manager.port, {**INIT_PAYLOAD, "token": WRONG})]
    accepted = [call(manager.port, {**INIT_PAYLOAD, "token": TOKEN})]
    accepted.append(call(manager.port, {"type": "status", "pipeline_id": accepted[0]["pipeline_id"],
                                        "token": TOKEN}))

    assert [r["response"]["error_type"] for r in refused] == ["authorisation_error"] * 3
    assert [r["response"]["status"] for r in accepted] == ["success"] * 2
    lines = [record for record in caplog.records if record.name.startswith("services.manager.server")]
    assert any("authorisation_error" in record.getMessage() for record in lines)
    for record in caplog.records:
        text = record.getMessage() + " " + " ".join(map(str, record.__dict__.values()))
        assert TOKEN not in text and WRONG not in text, record
    # The token stays in the manager: the task's payload does not carry it.
    assert "token" not in fake_worker.calls[0]["spec"] and TOKEN not in json.dumps(fake_worker.calls[0]["spec"])


def test_reference_client_bytes_are_answered_when_auth_is_off(manager: RunningManager) -> None:
    replies = []
    for frame in (b'\x00\x00\x00\x1a{"type": "list_pipelines"}',
                  b'\x00\x00\x00\x2c{"type": "status", "pipeline_id": "ghost-1"}'):
        with Client(manager.port) as client:  # a connection per request, closed by the server after its reply
            client.send_raw(frame)
            replies.append(client.receive())
            assert client.is_closed_by_server()
    listing, status = replies

    assert listing["response"] == {"status": "success", "pipelines": []}
    assert status["response"]["error_type"] == "not_found" and status["pipeline_id"] == "ghost-1"


def test_a_token_sent_to_an_open_manager_is_ignored(manager: RunningManager) -> None:
    reply = call(manager.port, {"type": "list_pipelines", "token": "anything"})
    assert reply["response"]["status"] == "success"


# --- limits ------------------------------------------------------------------------------------------------


def test_requests_beyond_the_rate_limit_are_refused_naming_it(start_manager: ManagerFactory) -> None:
    manager = start_manager(max_requests_per_second=0.01, max_request_burst=2)
    with Client(manager.port, keep_alive=True) as client, Client(manager.port) as other:
        client.send_raw(encode_message({"type": "list_pipelines", "keep_alive": True}) * 3)
        replies = [client.receive() for _ in range(3)]
        again = client.call({"type": "list_pipelines"})  # the connection stays open
        fresh = other.call({"type": "list_pipelines"})  # the limit is per connection

    assert [r["response"]["status"] for r in replies] == ["success", "success", "failure"]
    refusal = replies[2]["response"]
    assert refusal["error_type"] == "operation_error"
    assert refusal["error_message"].startswith("rate limit: more than 0.01 requests/s on this connection")
    assert "MANAGER_MAX_REQUESTS_PER_SECOND" in refusal["error_message"]
    assert again["response"]["error_type"] == "operation_error"
    assert fresh["response"]["status"] == "success"


def test_a_connection_that_keeps_exceeding_the_rate_limit_is_closed(start_manager: ManagerFactory) -> None:
    manager = start_manager(max_requests_per_second=0.01, max_request_burst=1)
    with Client(manager.port) as client:
        client.send_raw(encode_message({"type": "list_pipelines"}) * (1 + RATE_LIMIT_STRIKES))
        replies = [client.receive() for _ in range(1 + RATE_LIMIT_STRIKES)]
        assert client.is_closed_by_server(wait=5.0)

    assert replies[0]["response"]["status"] == "success"
    assert all(r["response"]["error_type"] == "operation_error" for r in replies[1:])
    assert "closing the connection" not in replies[-2]["response"]["error_message"]
    assert f"closing the connection after {RATE_LIMIT_STRIKES}" in replies[-1]["response"]["error_message"]
    assert call(manager.port, {"type": "list_pipelines"})["response"]["status"] == "success"


def test_a_rate_limit_of_zero_is_off(start_manager: ManagerFactory) -> None:
    manager = start_manager(max_requests_per_second=0, max_request_burst=1)
    with Client(manager.port) as client:
        client.send_raw(encode_message({"type": "list_pipelines"}) * 20)
        replies = [client.receive() for _ in range(20)]
    assert {r["response"]["status"] for r in replies} == {"success"}


def test_connections_beyond_the_limit_get_one_failure_naming_it_then_close(start_manager: ManagerFactory) -> None:
    manager = start_manager(max_connections=2)
    first, second = Client(manager.port, keep_alive=True), Client(manager.port, keep_alive=True)
    try:
        for client in (first, second):  # both are being served
            assert client.call({"type": "list_pipelines"})["response"]["status"] == "success"

        refused = call(manager.port, {"type": "list_pipelines"})  # the library client, as users send it
        with Client(manager.port) as raw:  # a client that only listens gets the same frame
            unsolicited = raw.receive()
            assert raw.is_closed_by_server(wait=5.0)
    finally:
        first.close()

    for reply in (refused, unsolicited):
        assert reply["pipeline_id"] is None
        assert reply["response"]["error_type"] == "operation_error"
        assert reply["response"]["error_message"] == (
            "connection limit: 2 connections already open (MANAGER_MAX_CONNECTIONS)")

    def served() -> bool:
        return bool(call(manager.port, {"type": "list_pipelines"})["response"]["status"] == "success")

    wait_until(served, timeout=10)  # a slot frees once the server has seen the first client go
    second.close()


def test_a_connection_whose_request_is_being_answered_counts_toward_the_limit(
        start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis) -> None:
    # A new connection's request is answered before any connection object exists (services/manager/server.py):
    # it still holds its place in the limit while its reply is made, and once answered and kept alive it is never
    # refused after its reply.
    manager = start_manager(max_connections=1, init_timeout=1.5)
    register_worker(redis_client)
    fake_worker.behaviour = "silent"
    with Client(manager.port, keep_alive=True) as waiting:
        waiting.send(INIT_PAYLOAD)  # waits for a worker that never answers: the one place is taken meanwhile
        wait_until(lambda: call(manager.port, {"type": "list_pipelines"})["response"].get("error_type")
                   == "operation_error", timeout=5)
        assert waiting.receive()["response"]["error_type"] == "operation_error"  # the init timed out
        assert waiting.call({"type": "list_pipelines"})["response"]["status"] == "success"  # still served
        refused = call(manager.port, {"type": "list_pipelines"})["response"]
        assert refused["error_message"] == "connection limit: 1 connections already open (MANAGER_MAX_CONNECTIONS)"
    wait_until(lambda: call(manager.port, {"type": "list_pipelines"})["response"]["status"] == "success", timeout=10)

    # Two connections accepted in one wake-up of the listening socket (the manager's event loop held while both
    # arrive): the first is answered and kept, and holds the place from its answer on; the second is refused
    # before its request is answered, never answered and then refused.
    assert manager._loop is not None
    manager._loop.call_soon_threadsafe(time.sleep, 0.5)
    time.sleep(0.1)
    first, second = Client(manager.port, keep_alive=True), Client(manager.port, keep_alive=True)
    try:
        for client in (first, second):
            client.send({"type": "list_pipelines"})
        assert first.receive()["response"]["status"] == "success"
        assert second.receive()["response"]["error_type"] == "operation_error"
        assert second.is_closed_by_server(wait=5.0)
        assert first.call({"type": "list_pipelines"})["response"]["status"] == "success"
    finally:
        first.close()
        second.close()


def test_the_default_connection_limit_admits_the_load_test() -> None:
    settings = ManagerSettings()
    assert settings.max_connections >= 1000
    assert settings.max_requests_per_second >= 100 and settings.max_pipelines_per_device == 0


def test_init_beyond_the_per_device_limit_is_refused_before_anything_is_written(
    start_manager: ManagerFactory, redis_client: redis.Redis, fake_worker: FakeWorker
) -> None:
    manager = start_manager(max_pipelines_per_device=1)
    register_worker(redis_client, device="cpu")
    register_worker(redis_client, device="gpu", hostname="gpu@host")

    first = call(manager.port, INIT_PAYLOAD)
    refused = call(manager.port, INIT_PAYLOAD)
    other_device = call(manager.port, {**INIT_PAYLOAD, "device": "gpu"})

    assert first["response"]["status"] == "success"
    assert refused["pipeline_id"] is None
    assert refused["response"]["error_type"] == "operation_error"
    assert refused["response"]["error_message"] == "limit: 1 pipelines on device cpu (MANAGER_MAX_PIPELINES_PER_DEVICE)"
    assert other_device["response"]["status"] == "success"
    assert len(fake_worker.calls) == 2
    listed = call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"]
    assert sorted(listed) == sorted([first["pipeline_id"], other_device["pipeline_id"]])

    assert call(manager.port, {"type": "terminate", "pipeline_id": first["pipeline_id"]})["response"]["status"] \
        == "success"
    assert call(manager.port, INIT_PAYLOAD)["response"]["status"] == "success"  # room again


def test_an_oversize_frame_refusal_names_the_limit(start_manager: ManagerFactory) -> None:
    manager = start_manager(max_frame_size=1000)
    with Client(manager.port) as client:
        client.send_raw((5000).to_bytes(4, "big"))
        reply = client.receive()
        assert client.is_closed_by_server()
    assert reply["response"]["error_type"] == "invalid_payload"
    assert reply["response"]["error_message"] == (
        "frame of 5000 bytes exceeds the maximum frame size of 1000 bytes (MANAGER_MAX_FRAME_SIZE)")
