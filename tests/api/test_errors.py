"""Every error's status code and exact body, in both generations, through real HTTP and a real manager.

The manager's own reply to the same request (over TCP) is the reference for each message: the API
must pass it on unchanged, in the generation's shape.
"""

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from services.api.errors import STATUS_CODES, report_of, status_code_of
from services.api.settings import ApiSettings
from services.client.errors import (
    CommunicationProtocolError,
    ConnectivityError,
    ProcessesManagerAuthorisationError,
    ProcessesManagerClientError,
    ProcessesManagerInternalError,
    ProcessesManagerInvalidPayload,
    ProcessesManagerNotFoundError,
    ProcessesManagerOperationError,
)
from services.core.framing import FrameDecoder, encode_frame, encode_message
from tests.api.conftest import ApiFactory, ServedApi
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.manager.test_server import INIT_PAYLOAD, UUID
from tests.support.redis_server import RedisServer, free_port
from tools.payloads import newer_init

PIPELINE_ROUTES = [  # (method, path with {id}, the wire command it sends)
    ("GET", "/status/{id}", "status"),
    ("POST", "/pause/{id}", "mute"),
    ("POST", "/resume/{id}", "resume"),
    ("POST", "/terminate/{id}", "terminate"),
    ("GET", "/inference_pipelines/{id}/status", "status"),
    ("POST", "/inference_pipelines/{id}/pause", "mute"),
    ("POST", "/inference_pipelines/{id}/resume", "resume"),
    ("POST", "/inference_pipelines/{id}/terminate", "terminate"),
    ("GET", "/inference_pipelines/{id}/consume", "consume_result"),
]
INIT_ROUTES = ["/initialise", "/inference_pipelines/initialise"]


@pytest.fixture(scope="module")
def offline_api() -> Iterator[ServedApi]:
    """An API whose manager is unreachable: enough for everything it checks before asking the manager."""
    api = ServedApi(ApiSettings(manager_host="127.0.0.1", manager_port=free_port()))
    yield api
    api.stop()


def send(api: ServedApi, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return api.http.request(method, path, **kwargs)


def is_newer(path: str) -> bool:
    return path.startswith("/inference_pipelines")


def expected_body(path: str, response: dict[str, Any], error_type: str, request_id: str | None,
                  pipeline_id: str | None) -> dict[str, Any]:
    """The API's error body for a manager failure ``response`` (a wire reply's ``response``)."""
    context = {"request_id": request_id, "pipeline_id": pipeline_id}
    if not is_newer(path):
        return {"status": "failure", "message": response["error_message"], "context": context}
    return {"message": response["public_error_message"], "error_type": error_type,
            "inner_error_type": response["error_class"], "inner_error_message": response["error_message"],
            "context": context}


def local_body(path: str, message: str, error_type: str, pipeline_id: str | None = None,
               inner_error_type: str | None = None) -> dict[str, Any]:
    """The API's error body for a failure the API found itself (public message = detailed message)."""
    context = {"request_id": None, "pipeline_id": pipeline_id}
    if not is_newer(path):
        return {"status": "failure", "message": message, "context": context}
    return {"message": message, "error_type": error_type, "inner_error_type": inner_error_type,
            "inner_error_message": message, "context": context}


def request_id_of(response: httpx.Response) -> str:
    request_id = response.json()["context"]["request_id"]
    assert UUID.fullmatch(request_id), response.text
    return str(request_id)


@pytest.mark.parametrize("path", INIT_ROUTES)
def test_an_invalid_init_payload_is_400_with_the_managers_message(api: ServedApi, manager: RunningManager,
                                                                   path: str) -> None:
    payload = {"video_reference": "data/media/vtest.avi", "max_fps": "fast"}
    wire = call(manager.port, {**payload, "type": "init"})["response"]
    assert wire["error_type"] == "invalid_payload"

    response = send(api, "POST", path, json=payload)

    assert response.status_code == 400
    assert response.json() == expected_body(path, wire, "ProcessesManagerInvalidPayload", request_id_of(response),
                                            None)
    assert "sink_configuration" in wire["error_message"]  # the detailed message names the field


@pytest.mark.parametrize(("method", "path", "command"), PIPELINE_ROUTES)
def test_an_unknown_pipeline_is_404_for_every_command(api: ServedApi, manager: RunningManager, method: str,
                                                      path: str, command: str) -> None:
    wire = call(manager.port, {"type": command, "pipeline_id": "no-such-pipeline"})["response"]

    response = send(api, method, path.format(id="no-such-pipeline"))

    assert response.status_code == 404
    assert response.json() == expected_body(path, wire, "ProcessesManagerNotFoundError", request_id_of(response),
                                            "no-such-pipeline")


def test_a_webrtc_offer_without_video_is_an_invalid_payload(api: ServedApi, manager: RunningManager) -> None:
    payload = {**newer_init("data/media/vtest.avi"), "webrtc_offer": {"type": "offer", "sdp": "v=0"}}
    wire = call(manager.port, {**payload, "type": "webrtc"})["response"]
    assert wire["error_type"] == "invalid_payload" and "no video section" in wire["error_message"]

    response = send(api, "POST", "/inference_pipelines/initialise_webrtc", json=payload)

    assert response.status_code == 400
    assert response.json() == expected_body("/inference_pipelines", wire, "ProcessesManagerInvalidPayload",
                                             request_id_of(response), None)


@pytest.mark.parametrize("path", INIT_ROUTES)
def test_an_init_without_a_live_worker_is_an_operation_error(api: ServedApi, path: str) -> None:
    response = send(api, "POST", path, json=INIT_PAYLOAD)

    assert response.status_code == 500
    body = response.json()
    assert body["context"]["pipeline_id"] is None
    if is_newer(path):
        assert body["error_type"] == "ProcessesManagerOperationError"
        assert body["message"] == "No worker is available for the requested device."
        assert body["inner_error_message"] == "no worker serves queue pipelines.cpu"
    else:
        assert body == {"status": "failure", "message": "no worker serves queue pipelines.cpu",
                        "context": {"request_id": request_id_of(response), "pipeline_id": None}}


@pytest.mark.parametrize("path", INIT_ROUTES)
def test_a_failed_init_names_its_pipeline_and_leaves_nothing(api: ServedApi, fake_worker: FakeWorker,
                                                             redis_client: redis.Redis, path: str) -> None:
    register_worker(redis_client)
    fake_worker.behaviour = "fail"  # the task answers "camera unreachable"

    response = send(api, "POST", path, json=INIT_PAYLOAD)

    [dispatched] = fake_worker.calls
    failed_id = dispatched["pipeline_id"]
    assert response.status_code == 500
    wire = {"error_message": "camera unreachable", "public_error_message": "The operation could not be performed "
            "on the pipeline.", "error_class": "OperationError"}
    assert response.json() == expected_body(path, wire, "ProcessesManagerOperationError", request_id_of(response),
                                            failed_id)
    listed = send(api, "GET", "/inference_pipelines/list").json()["pipelines"]
    assert failed_id not in listed


@pytest.mark.parametrize("token", [None, "wrong"])
@pytest.mark.parametrize("path", ["/list_pipelines", "/inference_pipelines/list"])
def test_a_missing_or_wrong_manager_token_is_401(start_manager: ManagerFactory, serve_api: ApiFactory,
                                                  token: str | None, path: str) -> None:
    manager = start_manager(auth_token="s3cret")
    api = serve_api(manager_port=manager.port, manager_token=token)
    wire = call(manager.port, {"type": "list_pipelines", "token": token})["response"]
    assert wire["error_type"] == "authorisation_error"

    response = send(api, "GET", path)

    assert response.status_code == 401
    assert response.json() == expected_body(path, wire, "ProcessesManagerAuthorisationError",
                                            request_id_of(response), None)
    assert "s3cret" not in response.text
    readiness = send(api, "GET", "/readyz")
    assert readiness.status_code == 503 and readiness.json()["failed"] == ["manager"]


def test_the_right_manager_token_is_accepted_and_a_callers_token_ignored(
    start_manager: ManagerFactory, serve_api: ApiFactory, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    manager = start_manager(auth_token="s3cret")
    api = serve_api(manager_port=manager.port, manager_token="s3cret")
    register_worker(redis_client)

    assert send(api, "GET", "/inference_pipelines/list").status_code == 200
    response = send(api, "POST", "/initialise", json={**INIT_PAYLOAD, "token": "the-callers-own"})

    assert response.status_code == 200, response.text
    assert send(api, "GET", "/readyz").status_code == 200


BAD_BODIES = [  # (body, content type, what the message says)
    (b"[1, 2]", "application/json", "body: must be a JSON object, got an array"),
    (b'"text"', "application/json", "body: must be a JSON object, got a string"),
    (b"{not json", "application/json", "body: is not valid JSON (Expecting property name enclosed in double "
                                        "quotes: line 1 column 2 (char 1))"),
    (b"", "application/json", "body: is required (a JSON object)"),
    (b'{"model_id": "a/1"}', "text/plain", "body: must be sent as application/json, not text/plain"),
]


@pytest.mark.parametrize("path", [*INIT_ROUTES, "/inference_pipelines/initialise_webrtc"])
@pytest.mark.parametrize(("body", "content_type", "message"), BAD_BODIES)
def test_a_body_that_is_not_a_json_object_is_422(offline_api: ServedApi, path: str, body: bytes, content_type: str,
                                                  message: str) -> None:
    response = send(offline_api, "POST", path, content=body, headers={"Content-Type": content_type})

    assert response.status_code == 422
    assert response.json() == local_body(path, f"invalid request: {message}", "RequestValidationError")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"params": {"max_entries": "0"}}, "query.max_entries: Input should be greater than or equal to 1"),
    ({"params": {"max_entries": "1001"}}, "query.max_entries: Input should be less than or equal to 1000"),
    ({"json": {"excluded_fields": "image"}}, "body.excluded_fields: Input should be a valid list"),
    ({"json": {"max_entries": 2}, "params": {"max_entries": "3"}},
     "query.max_entries: disagrees with the body's max_entries (2); give it once"),
])
def test_bad_consume_options_are_422(offline_api: ServedApi, kwargs: dict[str, Any], message: str) -> None:
    response = send(offline_api, "GET", "/inference_pipelines/p-1/consume", **kwargs)

    assert response.status_code == 422
    assert response.json() == local_body("/inference_pipelines", f"invalid request: {message}",
                                         "RequestValidationError", pipeline_id="p-1")


@pytest.mark.parametrize("path", ["/list_pipelines", "/inference_pipelines/list", "/status/p-1",
                                  "/inference_pipelines/p-1/status"])
def test_an_unreachable_manager_is_503_naming_its_address(offline_api: ServedApi, path: str) -> None:
    port = offline_api.settings.manager_port

    response = send(offline_api, "GET", path)

    assert response.status_code == 503
    body = response.json()
    message = f"stream manager at 127.0.0.1:{port} unreachable ([Errno 111] Connection refused)"
    pipeline_id = "p-1" if "p-1" in path else None
    assert body == local_body(path, message, "ConnectivityError", pipeline_id,
                              inner_error_type="ConnectionRefusedError")


def test_readiness_needs_the_manager_and_the_configured_redis(serve_api: ApiFactory, manager: RunningManager,
                                                              redis_server: RedisServer) -> None:
    ready = serve_api(manager_port=manager.port, redis_url=redis_server.url)
    no_redis = serve_api(manager_port=manager.port, redis_url=f"redis://:pw@127.0.0.1:{free_port()}/0")
    no_manager = serve_api(manager_port=free_port())

    response = send(ready, "GET", "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"manager": {"ok": True, "detail": "ok"},
                                                             "redis": {"ok": True, "detail": "ok"}}, "failed": []}

    response = send(no_redis, "GET", "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready" and body["failed"] == ["redis"]
    assert body["checks"]["redis"]["detail"].startswith("redis unreachable: Error 111 connecting to 127.0.0.1:")
    assert body["checks"]["manager"] == {"ok": True, "detail": "ok"}

    response = send(no_manager, "GET", "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["manager"]
    assert body["checks"]["manager"]["detail"].startswith(f"stream manager at {no_manager.settings.manager_address} "
                                                          "unreachable")
    assert body["checks"]["redis"] == {"ok": True, "detail": "not configured"}
    assert send(no_manager, "GET", "/healthz").json() == {"status": "ok"}  # alive, though not ready


class MisbehavingManager:
    """A TCP server that answers every request frame with ``reply`` (raw frame bytes), then closes."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                decoder = FrameDecoder(1 << 20)
                while not decoder.feed(conn.recv(65536)):
                    pass
                conn.sendall(self._reply)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def misbehaving() -> Iterator[list[MisbehavingManager]]:
    servers: list[MisbehavingManager] = []
    yield servers
    for server in servers:
        server.close()


INTERNAL_FAILURE = {"request_id": "r-1", "response": {
    "status": "failure", "error_type": "internal_error", "error_class": "RuntimeError", "error_message": "boom",
    "public_error_message": "Internal error in the stream manager."}, "pipeline_id": None}


@pytest.mark.parametrize(("reply", "status", "error_type", "message", "public"), [
    (encode_message(INTERNAL_FAILURE), 500, "ProcessesManagerInternalError", "boom",
     "Internal error in the stream manager."),
    (encode_frame(b"not json"), 502, "CommunicationProtocolError",
     "reply is not JSON: Expecting value: line 1 column 1 (char 0)", "The stream manager's reply is malformed."),
    (encode_message({"request_id": "r-2", "pipeline_id": None}), 502, "CommunicationProtocolError",
     "reply has no response status", "The stream manager's reply is malformed."),
])
@pytest.mark.parametrize("path", ["/list_pipelines", "/inference_pipelines/list"])
def test_a_manager_failure_or_a_broken_reply_keeps_its_body_shape(
    serve_api: ApiFactory, misbehaving: list[MisbehavingManager], reply: bytes, status: int, error_type: str,
    message: str, public: str, path: str,
) -> None:
    server = MisbehavingManager(reply)
    misbehaving.append(server)
    api = serve_api(manager_port=server.port)

    response = send(api, "GET", path)

    assert response.status_code == status
    body = response.json()
    assert body["message"] == (public if is_newer(path) else message)
    if is_newer(path):
        assert body["error_type"] == error_type and body["inner_error_message"] == message


@pytest.mark.parametrize(("error", "status"), [
    (ProcessesManagerInvalidPayload, 400), (ProcessesManagerAuthorisationError, 401),
    (ProcessesManagerNotFoundError, 404), (ProcessesManagerOperationError, 500), (ProcessesManagerInternalError, 500),
    (CommunicationProtocolError, 502), (ConnectivityError, 503), (ProcessesManagerClientError, 500),
])
def test_the_table_gives_each_client_error_its_status(error: type[ProcessesManagerClientError], status: int) -> None:
    assert STATUS_CODES[error] == status
    report = report_of(error("detail", "public", request_id="r", pipeline_id=None), "from-the-path")
    assert (report.status_code, report.error_type, report.context.pipeline_id) == (status, error.__name__,
                                                                                   "from-the-path")


def test_an_unexpected_exception_is_a_generic_500_without_its_text() -> None:
    report = report_of(KeyError("api_key=SECRET"), None)

    assert status_code_of(KeyError()) == 500
    assert (report.status_code, report.message, report.public_message) == (500, "Internal error.", "Internal error.")
    assert "SECRET" not in json.dumps([report.message, report.public_message, report.error_type])
