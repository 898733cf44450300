"""The TCP clients, sync and async (each test runs against both), over real sockets: against the
real manager with a fake worker, and against servers that misbehave on purpose."""

import asyncio
import json
from typing import Any

import pytest
import redis

from services.client import (
    AsyncManagerClient,
    CommandResponse,
    CommunicationProtocolError,
    ConnectivityError,
    ConsumeResponse,
    FrameMetadata,
    ListPipelinesResponse,
    ProcessesManagerAuthorisationError,
    ProcessesManagerInternalError,
    ProcessesManagerInvalidPayload,
    ProcessesManagerNotFoundError,
    ProcessesManagerOperationError,
    StatusResponse,
)
from services.core import keys
from services.core.framing import encode_frame, encode_message
from services.core.results import encode_entry
from tests.client.conftest import Connect
from tests.client.servers import (
    replies,
    replies_in_pieces,
    replies_then_waits,
    scripted_server,
    silent_server,
)
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import REPORT, FakeWorker, register_worker
from tests.manager.test_server import INIT_PAYLOAD, UUID
from tests.support.redis_server import RedisServer
from tools.embedded_redis import free_port

PIPELINE_METHODS = ("pause", "resume", "status", "terminate", "consume")


@pytest.fixture
def client(connect: Connect, manager: RunningManager, redis_client: redis.Redis) -> Any:
    register_worker(redis_client)
    return connect(manager.port)


def start(client: Any) -> str:
    started = client.initialise(INIT_PAYLOAD)
    assert isinstance(started, CommandResponse) and started.status == "success"
    assert UUID.fullmatch(started.context.request_id)
    return str(started.context.pipeline_id)


def add_results(redis_client: redis.Redis, pipeline_id: str, frame_ids: range, maxlen: int | None = None) -> None:
    """Entries as the worker appends them: two sources, the second without a frame this round."""
    for frame_id in frame_ids:
        output = {"image": {"width": 4, "height": 3}, "predictions": [{"class": "person", "frame": frame_id}]}
        metadata = {"frame_timestamp": "2024-01-01T00:00:00+00:00", "frame_id": frame_id, "source_id": 0}
        redis_client.xadd(keys.results_stream(pipeline_id), encode_entry([output, None], [metadata, None]),  # type: ignore[arg-type]
                          maxlen=maxlen, approximate=False)


# --- every method's typed reply -------------------------------------------------------------------

def test_initialise_returns_the_new_id_and_list_pipelines_shows_it(client: Any, fake_worker: FakeWorker) -> None:
    empty = client.list_pipelines()
    pipeline_id = start(client)
    listed = client.list_pipelines()

    assert isinstance(empty, ListPipelinesResponse) and empty.pipelines == []
    assert empty.context.pipeline_id is None and UUID.fullmatch(empty.context.request_id)
    assert pipeline_id == fake_worker.calls[0]["pipeline_id"]
    assert listed.pipelines == [pipeline_id]


def test_pause_resume_and_terminate(client: Any, fake_worker: FakeWorker) -> None:
    pipeline_id = start(client)

    replies = [client.pause(pipeline_id), client.resume(pipeline_id), client.mute(pipeline_id),
               client.terminate(pipeline_id)]

    for reply in replies:
        assert isinstance(reply, CommandResponse) and reply.status == "success"
        assert reply.context.pipeline_id == pipeline_id and UUID.fullmatch(reply.context.request_id)
    assert len({reply.context.request_id for reply in replies}) == 4
    assert fake_worker.tasks[0].commands == ["mute", "resume", "mute", "terminate"]
    assert client.list_pipelines().pipelines == []


def test_status_report_is_typed(client: Any, redis_client: redis.Redis) -> None:
    pipeline_id = start(client)
    redis_client.set(keys.results_dropped(pipeline_id), 2)

    status = client.status(pipeline_id)

    assert isinstance(status, StatusResponse) and status.context.pipeline_id == pipeline_id
    report = status.report
    assert report.inference_throughput == REPORT["inference_throughput"]
    [latency] = report.latency_reports
    assert (latency.source_id, latency.inference_latency, latency.e2e_latency) == (0, 0.02, 0.03)
    [source] = report.sources_metadata
    assert (source.source_id, source.state) == (0, "RUNNING")
    assert source.source_reference == "rtsp://***:***@camera/stream"
    assert report.pipeline_state == "RUNNING" and report.restarts == 0
    assert report.last_error is None and report.results_dropped == 2


def test_consume_one_entry_then_a_batch_with_drops(client: Any, redis_client: redis.Redis) -> None:
    pipeline_id = start(client)
    empty = client.consume(pipeline_id)
    add_results(redis_client, pipeline_id, range(3))

    first = client.consume(pipeline_id)
    add_results(redis_client, pipeline_id, range(3, 8), maxlen=3)  # 1..4 trimmed before being read
    batch = client.consume(pipeline_id, excluded_fields=["image"], max_entries=10)

    assert isinstance(empty, ConsumeResponse) and (empty.outputs, empty.frames_metadata) == ([], [])
    assert (empty.entries, empty.dropped, empty.remaining) == (None, 0, 0)
    assert first.outputs[0] == {"image": {"width": 4, "height": 3},
                                "predictions": [{"class": "person", "frame": 0}]}
    assert first.outputs[1] is None and first.frames_metadata[1] is None
    assert isinstance(first.frames_metadata[0], FrameMetadata) and first.frames_metadata[0].frame_id == 0
    assert (first.entries, first.dropped, first.remaining) == (None, 0, 2)
    assert batch.entries is not None
    assert [entry.frames_metadata[0].frame_id for entry in batch.entries] == [5, 6, 7]  # type: ignore[union-attr]
    assert batch.entries[0].outputs == [{"predictions": [{"class": "person", "frame": 5}]}, None]
    assert batch.outputs == batch.entries[0].outputs  # the reference's fields hold the oldest entry
    assert (batch.dropped, batch.remaining) == (4, 0)


def test_split_reply_is_reassembled(connect: Connect) -> None:
    frame = encode_message({"request_id": "r", "response": {"status": "success", "pipelines": ["a", "b"]},
                            "pipeline_id": None})
    with scripted_server(replies_in_pieces(frame, (2, 3, 12))) as server:
        listed = connect(server.port).list_pipelines()
    assert listed.pipelines == ["a", "b"] and listed.context.request_id == "r"


# --- what the client sends ------------------------------------------------------------------------

ANY_SUCCESS = encode_message({"request_id": "r", "response": {
    "status": "success", "pipelines": [], "report": {}, "outputs": [], "frames_metadata": [], "sdp": "v=0",
    "type": "answer"}, "pipeline_id": "p"})


@pytest.mark.parametrize(
    ("method", "args", "sent"),
    [
        ("list_pipelines", (), {"type": "list_pipelines"}),
        ("initialise", ({"model_id": "m/1", "type": "init", "video_reference": 0},),
         {"model_id": "m/1", "video_reference": 0, "type": "init"}),
        ("initialise_webrtc", ({"model_id": "m/1"},), {"model_id": "m/1", "type": "webrtc"}),
        ("pause", ("p",), {"type": "mute", "pipeline_id": "p"}),
        ("resume", ("p",), {"type": "resume", "pipeline_id": "p"}),
        ("status", ("p",), {"type": "status", "pipeline_id": "p"}),
        ("terminate", ("p",), {"type": "terminate", "pipeline_id": "p"}),
        ("consume", ("p",), {"type": "consume_result", "pipeline_id": "p", "excluded_fields": []}),
        ("consume", ("p", ["image"], 5),
         {"type": "consume_result", "pipeline_id": "p", "excluded_fields": ["image"], "max_entries": 5}),
    ],
)
def test_requests_are_the_reference_clients_bytes(
    connect: Connect, method: str, args: tuple[Any, ...], sent: dict[str, Any]
) -> None:
    with scripted_server(replies(ANY_SUCCESS)) as server:
        getattr(connect(server.port, token=None), method)(*args)
    assert server.requests == [json.dumps(sent).encode()]


def test_token_travels_in_every_request_but_never_in_repr(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scripted_server(replies(ANY_SUCCESS)) as server:
        explicit = connect(server.port, token="s3cret")
        explicit.status("p")
        monkeypatch.setenv("STREAM_MANAGER_TOKEN", "from-env")
        from_env = connect(server.port)
        from_env.initialise({"model_id": "m/1"})
    assert [json.loads(body) for body in server.requests] == [
        {"type": "status", "pipeline_id": "p", "token": "s3cret"},
        {"model_id": "m/1", "token": "from-env", "type": "init"},
    ]
    assert f"127.0.0.1:{server.port}" in repr(explicit)
    assert "s3cret" not in repr(explicit) and "from-env" not in repr(from_env)


# --- error replies become their classes -----------------------------------------------------------

def test_invalid_payload(client: Any) -> None:
    bad = {**INIT_PAYLOAD, "model_configuration": {"type": "object-detection", "confidence": 7}}
    with pytest.raises(ProcessesManagerInvalidPayload) as raised:
        client.initialise(bad)
    error = raised.value
    assert "model_configuration.confidence" in str(error) and error.public_message
    assert error.error_class == "InvalidPayloadError" and error.inner_error_type == "InvalidPayloadError"
    assert UUID.fullmatch(str(error.request_id)) and error.pipeline_id is None
    assert "API-KEY-SECRET" not in str(error)


@pytest.mark.parametrize("method", PIPELINE_METHODS)
def test_unknown_pipeline_is_not_found(client: Any, method: str) -> None:
    with pytest.raises(ProcessesManagerNotFoundError) as raised:
        getattr(client, method)("ghost")
    assert raised.value.pipeline_id == "ghost" and UUID.fullmatch(str(raised.value.request_id))
    assert "ghost" in str(raised.value)


def test_a_flat_webrtc_payload_is_an_invalid_payload(client: Any) -> None:
    with pytest.raises(ProcessesManagerInvalidPayload, match="processing_configuration"):
        client.initialise_webrtc(INIT_PAYLOAD)


def test_a_failed_init_carries_the_pipeline_id_it_was_given(client: Any, fake_worker: FakeWorker) -> None:
    fake_worker.behaviour = "fail"
    with pytest.raises(ProcessesManagerOperationError, match="camera unreachable") as raised:
        client.initialise(INIT_PAYLOAD)
    assert raised.value.pipeline_id == fake_worker.calls[0]["pipeline_id"]
    assert UUID.fullmatch(str(raised.value.request_id))
    assert client.list_pipelines().pipelines == []


def test_authorisation(connect: Connect, start_manager: ManagerFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAM_MANAGER_TOKEN", raising=False)
    manager = start_manager(auth_token="s3cret")

    with pytest.raises(ProcessesManagerAuthorisationError):
        connect(manager.port).list_pipelines()
    with pytest.raises(ProcessesManagerAuthorisationError) as wrong:
        connect(manager.port, token="nope").status("p")
    listed = connect(manager.port, token="s3cret").list_pipelines()
    with pytest.raises(ProcessesManagerNotFoundError):  # past the token check
        connect(manager.port, token="s3cret").status("p")

    assert wrong.value.pipeline_id == "p" and "s3cret" not in str(wrong.value)
    assert listed.pipelines == []


def test_redis_outage_is_an_internal_error(
    connect: Connect, manager: RunningManager, redis_server: RedisServer
) -> None:
    redis_server.stop()
    try:
        with pytest.raises(ProcessesManagerInternalError, match="Redis is unavailable") as raised:
            connect(manager.port).status("p")
    finally:
        redis_server.start()
    assert raised.value.pipeline_id == "p"
    assert raised.value.public_message == "The stream manager cannot reach its state store."


# --- a manager that cannot be reached or breaks the protocol -------------------------------------

def test_closed_port_is_a_connectivity_error(connect: Connect) -> None:
    port = free_port()  # bound once, then released: nothing listens there
    with pytest.raises(ConnectivityError, match="unreachable") as raised:
        connect(port).list_pipelines()
    assert isinstance(raised.value.inner_error, ConnectionRefusedError)


def test_server_that_never_answers_is_a_connectivity_error(connect: Connect) -> None:
    with silent_server() as port, pytest.raises(ConnectivityError, match="did not answer in time"):
        connect(port, timeout=0.3).status("p")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (replies(encode_frame(b"<html>not json</html>")), "not JSON"),
        (replies(encode_frame(b"[1, 2]")), "not a JSON object"),
        (replies(encode_message({"request_id": "r", "pipeline_id": None})), "no response status"),
        (replies(encode_message({"request_id": "r", "response": {"status": "success"}, "pipeline_id": None})),
         "unexpected ListPipelinesResponse"),
        (replies(b""), "closed the connection"),
        (replies(b"\x00\x00"), "closed the connection"),
        (replies((100).to_bytes(4, "big") + b'{"request_id": '), "closed the connection"),
        (replies_then_waits(b"\xff\xff\xff\xff"), "too large"),
    ],
    ids=["not-json", "json-list", "no-response", "wrong-shape", "no-reply", "half-header", "cut-body",
         "oversize-header"],
)
def test_broken_reply_is_a_protocol_error(connect: Connect, answer: Any, message: str) -> None:
    with scripted_server(answer) as server, pytest.raises(CommunicationProtocolError, match=message) as raised:
        connect(server.port, timeout=5).list_pipelines()
    assert raised.value.public_message.startswith("The stream manager")
    assert len(server.requests) == 1


def test_request_returns_failure_envelopes_unraised(client: Any) -> None:
    envelope = client.request({"type": "status", "pipeline_id": "ghost"})

    assert list(envelope) == ["request_id", "response", "pipeline_id"]
    assert envelope["response"]["error_type"] == "not_found"



def test_async_client_serves_concurrent_calls(manager: RunningManager) -> None:
    async def many() -> list[Any]:
        client = AsyncManagerClient("127.0.0.1", manager.port)
        return await asyncio.gather(*(client.list_pipelines() for _ in range(10)),
                                    client.status("ghost"), return_exceptions=True)

    *listings, missing = asyncio.run(many())

    assert all(isinstance(listing, ListPipelinesResponse) for listing in listings)
    assert len({listing.context.request_id for listing in listings}) == 10
    assert isinstance(missing, ProcessesManagerNotFoundError)
