"""The HTTP API's Python clients (sync and async) against the real API: the same models and the same
error classes as the TCP clients, ids kept, and ConnectivityError for an API or manager out of reach."""

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from services.client import ApiClient, AsyncApiClient, ConsumeResponse, StatusResponse
from services.client.errors import (
    CommunicationProtocolError,
    ConnectivityError,
    ProcessesManagerAuthorisationError,
    ProcessesManagerClientError,
    ProcessesManagerInvalidPayload,
    ProcessesManagerNotFoundError,
)
from services.core import keys
from tests.api.conftest import ApiFactory
from tests.manager.conftest import ManagerFactory
from tests.manager.test_server import UUID
from tests.support.redis_server import free_port
from tests.support.stack import Stack
from tests.support.waiting import wait_until
from tools.payloads import newer_init

VTEST = "data/media/vtest.avi"
WEBRTC = {**newer_init(VTEST), "webrtc_offer": {"type": "offer", "sdp": "v=0"}}


def test_sync_client_lifecycle_with_the_api_key_in_the_header(api_url: str, stack: Stack) -> None:
    with ApiClient(api_url, api_key="KEY-FROM-CLIENT") as client:
        started = client.initialise(newer_init(VTEST, max_fps=5))
        pipeline_id = started.context.pipeline_id
        assert started.status == "success" and pipeline_id is not None and UUID.fullmatch(pipeline_id)
        spec = json.loads(stack.client.get(keys.pipeline_spec(pipeline_id)) or "{}")
        assert spec["api_key"] == "KEY-FROM-CLIENT"  # Authorization: Bearer, put into the payload by the API
        assert pipeline_id in client.list_pipelines().pipelines

        wait_until(lambda: client.status(pipeline_id).report.inference_throughput > 0, timeout=30)
        status = client.status(pipeline_id)
        assert isinstance(status, StatusResponse) and status.report.pipeline_state == "RUNNING"

        results: list[ConsumeResponse] = []
        wait_until(lambda: results.append(client.consume(pipeline_id, ["image"])) or results[-1].outputs,
                   timeout=20, interval=0.2)
        output = results[-1].outputs[0]
        assert output is not None and "image" not in output and "predictions" in output
        batch = client.consume(pipeline_id, max_entries=20)
        assert batch.entries is not None and batch.remaining is not None

        assert client.pause(pipeline_id).context.pipeline_id == pipeline_id
        wait_until(lambda: client.status(pipeline_id).report.pipeline_state == "MUTED", timeout=10)
        assert client.resume(pipeline_id).status == "success"
        assert client.terminate(pipeline_id).status == "success"
        assert pipeline_id not in client.list_pipelines().pipelines


def test_async_client_lifecycle(api_url: str) -> None:
    async def scenario() -> None:
        async with AsyncApiClient(api_url) as client:
            pipeline_id = (await client.initialise(newer_init(VTEST, max_fps=5))).context.pipeline_id
            assert pipeline_id is not None and pipeline_id in (await client.list_pipelines()).pipelines
            for _ in range(100):
                consumed = await client.consume(pipeline_id, max_entries=5)
                if consumed.entries:
                    break
                await asyncio.sleep(0.2)
            assert consumed.entries and consumed.frames_metadata[0] is not None
            assert (await client.status(pipeline_id)).report.pipeline_state == "RUNNING"
            assert (await client.mute(pipeline_id)).status == "success"
            assert (await client.resume(pipeline_id)).status == "success"
            assert (await client.terminate(pipeline_id)).context.pipeline_id == pipeline_id
            assert pipeline_id not in (await client.list_pipelines()).pipelines

    asyncio.run(scenario())


def call(kind: str, url: str, method: str, *args: Any, **options: Any) -> Any:
    """``method(*args)`` on a sync or an async client of ``url``."""
    if kind == "sync":
        with ApiClient(url, **options) as client:
            return getattr(client, method)(*args)

    async def run() -> Any:
        async with AsyncApiClient(url, **options) as client:
            return await getattr(client, method)(*args)

    return asyncio.run(run())


def raised(action: Callable[[], Any]) -> ProcessesManagerClientError:
    with pytest.raises(ProcessesManagerClientError) as caught:
        action()
    return caught.value


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_failures_raise_the_managers_error_classes_with_their_ids(api_url: str, kind: str) -> None:
    missing = raised(lambda: call(kind, api_url, "status", "no such id"))
    assert type(missing) is ProcessesManagerNotFoundError
    assert (str(missing), missing.public_message) == ("pipeline no such id not found",
                                                      "Pipeline no such id does not exist.")
    assert missing.pipeline_id == "no such id" and UUID.fullmatch(missing.request_id or "")
    assert missing.error_class == "NotFoundError"

    invalid = raised(lambda: call(kind, api_url, "initialise", {"video_reference": VTEST}))
    assert type(invalid) is ProcessesManagerInvalidPayload and "sink_configuration" in str(invalid)

    webrtc = raised(lambda: call(kind, api_url, "initialise_webrtc", WEBRTC))  # an offer without video
    assert type(webrtc) is ProcessesManagerInvalidPayload and "no video section" in str(webrtc)

    failed = raised(lambda: call(kind, api_url, "initialise", newer_init("data/media/missing.avi")))
    assert type(failed) is ProcessesManagerNotFoundError and UUID.fullmatch(failed.pipeline_id or "")

    refused = raised(lambda: call(kind, api_url, "consume", "p-1", (), 0))  # 422: max_entries below 1
    assert type(refused) is ProcessesManagerInvalidPayload
    assert str(refused) == "invalid request: query.max_entries: Input should be greater than or equal to 1"


@pytest.fixture(scope="module")
def offline_api_url(stack: Stack) -> str:
    """A second API process, pointed at a port where no manager listens."""
    return stack.start_api("api-offline", API_MANAGER_PORT=str(free_port()))


def test_an_unreachable_manager_or_api_is_a_connectivity_error(offline_api_url: str, kind: str) -> None:
    listed = call(kind, offline_api_url, "list_pipelines")  # answered from Redis: no manager needed
    assert listed.status == "success" and isinstance(listed.pipelines, list)
    manager_down = raised(lambda: call(kind, offline_api_url, "pause", "any-id"))
    assert type(manager_down) is ConnectivityError
    assert str(manager_down).startswith("stream manager at 127.0.0.1:") and "unreachable" in str(manager_down)

    url = f"http://127.0.0.1:{free_port()}"
    api_down = raised(lambda: call(kind, url, "list_pipelines"))
    assert type(api_down) is ConnectivityError and str(api_down).startswith(f"stream management API at {url} "
                                                                            "unreachable")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_an_api_that_does_not_answer_in_time_is_a_connectivity_error(silent_server: str, kind: str) -> None:
    slow = raised(lambda: call(kind, silent_server, "list_pipelines", timeout=0.2))

    assert type(slow) is ConnectivityError
    assert str(slow) == f"stream management API at {silent_server} did not answer in time"


def test_a_refused_manager_token_is_an_authorisation_error(start_manager: ManagerFactory, serve_api: ApiFactory,
                                                           kind: str) -> None:
    api = serve_api(manager_port=start_manager(auth_token="s3cret").port)

    refused = raised(lambda: call(kind, api.url, "list_pipelines"))

    assert type(refused) is ProcessesManagerAuthorisationError
    assert refused.public_message == "The request carries no valid token."
    assert refused.error_class == "AuthorisationError"


@pytest.mark.parametrize(("status", "expected"), [
    (502, CommunicationProtocolError), (503, ConnectivityError), (404, ProcessesManagerNotFoundError),
    (418, ProcessesManagerClientError),
])
def test_a_body_without_an_error_type_maps_by_status(status: int, expected: type[ProcessesManagerClientError]) -> None:
    # What a reverse proxy in front of the API answers: a page, not an API body.
    proxy = httpx.MockTransport(lambda request: httpx.Response(status, text="<html>Bad Gateway</html>"))
    with ApiClient("http://api.example", transport=proxy) as client:
        error = raised(client.list_pipelines)

    assert type(error) is expected
    assert str(error) == f"HTTP {status}: <html>Bad Gateway</html>"
