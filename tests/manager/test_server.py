"""The TCP endpoint: framing, bad input, several requests per connection, concurrency."""

import asyncio
import json
import logging
import re
import socket
import struct
import threading
import time

import pytest
import redis

from services.core import keys
from services.core.framing import encode_message
from services.manager.handlers import Reply
from services.manager.server import StreamManagerServer
from services.manager.settings import ManagerSettings
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import Client, FakeWorker, call, register_worker
from tests.support.redis_server import RedisServer, commands_run

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
PIPELINE_COMMANDS = ("mute", "resume", "status", "terminate", "consume_result")


def assert_serving(manager: RunningManager) -> None:
    assert call(manager.port, {"type": "list_pipelines"})["response"]["status"] == "success"


def test_list_pipelines_reply_is_byte_exact(manager: RunningManager) -> None:
    with Client(manager.port) as client:
        client.send({"type": "list_pipelines"})
        body = client.receive_raw()
    request_id = json.loads(body)["request_id"]
    assert UUID.fullmatch(request_id)
    expected = {"request_id": request_id, "response": {"status": "success", "pipelines": []}, "pipeline_id": None}
    assert body == json.dumps(expected).encode()


def test_failure_reply_is_byte_exact(manager: RunningManager) -> None:
    with Client(manager.port) as client:
        client.send({"type": "status", "pipeline_id": "nope"})
        body = client.receive_raw()
    reply = json.loads(body)
    assert list(reply) == ["request_id", "response", "pipeline_id"]
    assert list(reply["response"]) == ["status", "error_type", "error_class", "error_message",
                                       "public_error_message"]
    assert body == json.dumps(reply).encode()
    assert reply["pipeline_id"] == "nope"
    assert reply["response"]["error_type"] == "not_found" and "nope" in reply["response"]["error_message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"pipeline_id": "x"}', "no 'type'"),
        (b'{"type": "explode"}', "unknown request type"),
        (b'{"type": "status"}', "pipeline_id"),
        (b'{"type": "mute", "pipeline_id": ""}', "pipeline_id"),
        (b"\xff\xfe", "UTF-8"),
        (b"", "empty request"),
    ],
    ids=["non-json", "json-list", "missing-type", "unknown-type", "missing-id", "empty-id", "not-utf8",
         "zero-length"],
)
def test_bad_request_is_invalid_payload_and_a_kept_connection_stays_usable(
    manager: RunningManager, body: bytes, fragment: str
) -> None:
    with Client(manager.port, keep_alive=True) as client, Client(manager.port) as other:
        assert client.call({"type": "list_pipelines"})["response"]["status"] == "success"
        client.send_body(body)
        reply = client.receive()
        assert other.call({"type": "list_pipelines"})["response"]["status"] == "success"
        assert client.call({"type": "list_pipelines"})["response"]["status"] == "success"
    assert reply["pipeline_id"] is None
    assert reply["response"]["status"] == "failure"
    assert reply["response"]["error_type"] == "invalid_payload"
    assert fragment in reply["response"]["error_message"]


@pytest.mark.parametrize("command", PIPELINE_COMMANDS)
def test_unknown_pipeline_is_not_found_for_every_command(manager: RunningManager, command: str) -> None:
    reply = call(manager.port, {"type": command, "pipeline_id": "ghost", "excluded_fields": []})

    assert reply["pipeline_id"] == "ghost"
    assert reply["response"]["error_type"] == "not_found"


def test_several_requests_on_one_connection_and_merged_frames(manager: RunningManager) -> None:
    with Client(manager.port) as client:
        client.send_raw(encode_message({"type": "list_pipelines", "keep_alive": True}) * 3
                        + encode_message({"type": "status", "pipeline_id": "x"}))
        replies = [client.receive() for _ in range(4)]
        replies.append(client.call({"type": "list_pipelines"}))
    assert [r["response"]["status"] for r in replies] == ["success"] * 3 + ["failure", "success"]
    assert len({r["request_id"] for r in replies}) == 5


def test_a_flood_of_requests_in_one_write_is_answered_in_order(start_manager: ManagerFactory) -> None:
    # Far more frames than the server queues before it stops reading (QUEUE_LIMIT): all answered, in order.
    manager = start_manager(max_requests_per_second=0)
    ids = [f"p-{i}" for i in range(300)]
    with Client(manager.port, keep_alive=True) as client:
        client.send_raw(b"".join(encode_message({"type": "status", "pipeline_id": pid, "keep_alive": True})
                                 for pid in ids))
        replies = [client.receive() for _ in ids]
        assert client.call({"type": "list_pipelines"})["response"]["status"] == "success"
    assert [reply["pipeline_id"] for reply in replies] == ids
    assert {reply["response"]["error_type"] for reply in replies} == {"not_found"}


def test_a_client_that_half_closes_after_its_request_still_gets_the_reply(manager: RunningManager) -> None:
    with Client(manager.port) as client:
        client.send_raw(encode_message({"type": "list_pipelines"}) * 2)
        client.sock.shutdown(socket.SHUT_WR)
        replies = [client.receive(), client.receive()]
        assert client.is_closed_by_server()
    assert [reply["response"] for reply in replies] == [{"status": "success", "pipelines": []}] * 2


def test_the_server_closes_after_the_reply_unless_the_request_keeps_the_connection(manager: RunningManager) -> None:
    # As the reference: one request, one reply, then the server closes (it keeps the TIME_WAIT, not the client).
    with Client(manager.port) as plain:
        assert plain.call({"type": "list_pipelines"})["response"]["status"] == "success"
        assert plain.is_closed_by_server()
    with Client(manager.port) as malformed:  # a frame that does not parse asks for nothing: closed too
        malformed.send_body(b"not json")
        assert malformed.receive()["response"]["error_type"] == "invalid_payload"
        assert malformed.is_closed_by_server()
    with Client(manager.port) as client:
        # keep_alive holds from the request that says it, a waiting reply (STATUS reads Redis) included ...
        assert client.call({"type": "list_pipelines", "keep_alive": True})["response"]["status"] == "success"
        assert client.call({"type": "status", "pipeline_id": "x"})["response"]["error_type"] == "not_found"
        client.send_body(b"[1]")
        assert client.receive()["response"]["error_type"] == "invalid_payload"
        assert not client.is_closed_by_server(wait=0.3)
        # ... until a request says false: its reply is the last.
        reply = client.call({"type": "status", "pipeline_id": "x", "keep_alive": False})
        assert reply["response"]["error_type"] == "not_found"
        assert client.is_closed_by_server()
    with Client(manager.port) as waiting:  # the connection's first request waits and asks to keep it
        assert waiting.call({"type": "status", "pipeline_id": "x", "keep_alive": True})["response"]["error_type"] \
            == "not_found"
        assert waiting.call({"type": "list_pipelines"})["response"]["status"] == "success"
        assert not waiting.is_closed_by_server(wait=0.3)
    with Client(manager.port) as wrong:
        wrong.send({"type": "list_pipelines", "keep_alive": "yes"})
        refusal = wrong.receive()["response"]
        assert refusal["error_type"] == "invalid_payload" and "keep_alive" in refusal["error_message"]


def test_requests_sent_with_one_that_closes_are_answered_before_the_close(manager: RunningManager) -> None:
    with Client(manager.port) as client:
        requests = ({"type": "status", "pipeline_id": "a"}, {"type": "list_pipelines"},
                    {"type": "status", "pipeline_id": "b"})
        client.send_raw(b"".join(encode_message(request) for request in requests))
        replies = [client.receive() for _ in range(3)]
        assert client.is_closed_by_server()
    assert [reply["pipeline_id"] for reply in replies] == ["a", None, "b"]


def test_a_connection_not_kept_alive_is_closed_only_once_nothing_from_its_client_waits(
        start_manager: ManagerFactory) -> None:
    manager = start_manager(max_requests_per_second=0)
    frames = [encode_message({"type": "status", "pipeline_id": f"p-{i}"}) for i in range(3000)]  # 150 kB: many reads
    with Client(manager.port) as client:
        client.send_raw(b"".join(frames))
        assert [client.receive()["pipeline_id"] for _ in frames] == [f"p-{i}" for i in range(3000)]
        assert client.is_closed_by_server()
    listing = encode_message({"type": "list_pipelines"})
    with Client(manager.port) as client:  # a frame begun: the connection waits for the rest of it
        client.send_raw(listing + listing[:7])
        assert client.receive()["response"]["status"] == "success"
        assert not client.is_closed_by_server(wait=0.3)
        client.send_raw(listing[7:])
        assert client.receive()["response"]["status"] == "success"
        assert client.is_closed_by_server()


def test_a_reply_larger_than_the_kernel_takes_at_once_reaches_its_client_whole(start_manager: ManagerFactory,
                                                                              redis_client: redis.Redis) -> None:
    # A new connection's reply is sent in the callback that accepted it; the part the kernel does not take goes on
    # through a transport: 5.5 MB of listed ids (more than loopback's largest send buffer, 4 MiB) to a client that
    # offers a 4 kB window and reads after a pause.
    manager = start_manager()
    ids = [f"pipeline-{i:06d}-{'x' * 30}" for i in range(120_000)]
    writes = redis_client.pipeline(transaction=False)
    for pid in ids:
        writes.hset(keys.pipeline_record(pid), mapping={"pipeline_id": pid, "created_at": "1"})
    writes.sadd(keys.pipelines_index(), *ids)
    writes.execute()
    for request in ({"type": "list_pipelines"}, {"type": "list_pipelines"},  # read from Redis, then from memory
                    {"type": "list_pipelines", "keep_alive": True}):
        with Client(manager.port, receive_buffer=4096) as client:
            client.send(request)
            time.sleep(0.3)
            assert sorted(client.receive()["response"]["pipelines"]) == ids
            if request.get("keep_alive"):
                assert client.call({"type": "status", "pipeline_id": "x"})["response"]["error_type"] == "not_found"
                assert not client.is_closed_by_server(wait=0.3)
            else:
                assert client.is_closed_by_server()


def test_a_request_sent_after_connecting_is_served_whenever_it_comes(manager: RunningManager) -> None:
    # The kernel holds a new connection until its first bytes arrive (TCP_DEFER_ACCEPT, 1 s), then hands it over
    # with or without them; a connection closed with no request (a port probe) costs the server nothing.
    for pause in (0.0, 0.05, 1.6):
        with Client(manager.port) as client:
            time.sleep(pause)
            assert client.call({"type": "list_pipelines"})["response"]["status"] == "success"
            assert client.is_closed_by_server()
    for _ in range(20):
        socket.create_connection(("127.0.0.1", manager.port)).close()
    assert_serving(manager)


def test_stopping_the_manager_closes_a_connection_whose_reply_is_being_made(
        start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis) -> None:
    manager = start_manager(init_timeout=30)
    register_worker(redis_client)
    fake_worker.behaviour = "silent"
    with Client(manager.port) as client:
        client.send(INIT_PAYLOAD)  # waits for a worker that never answers
        time.sleep(0.3)
        manager.stop()
        assert client.is_closed_by_server()


def test_close_after_reply_off_keeps_every_connection_until_its_client_closes(start_manager: ManagerFactory) -> None:
    manager = start_manager(close_after_reply=False)
    with Client(manager.port) as client:
        for _ in range(3):
            assert client.call({"type": "list_pipelines"})["response"]["status"] == "success"
        assert not client.is_closed_by_server(wait=0.3)
        assert client.call({"type": "list_pipelines", "keep_alive": False})["response"]["status"] == "success"
        assert client.is_closed_by_server()


def test_a_client_gone_before_its_reply_leaves_the_server_serving(manager: RunningManager) -> None:
    for _ in range(20):
        client = Client(manager.port)
        client.send_raw(encode_message({"type": "list_pipelines"}))
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset on close
        client.close()
    assert_serving(manager)


def test_header_and_body_split_into_single_bytes_are_reassembled(manager: RunningManager) -> None:
    frame = encode_message({"type": "list_pipelines"})
    with Client(manager.port) as client:
        for i in range(len(frame)):
            client.send_raw(frame[i : i + 1])
            time.sleep(0.002 if i < 6 else 0)
        assert client.receive()["response"] == {"status": "success", "pipelines": []}


def test_oversize_frame_is_refused_then_the_connection_closed(start_manager: ManagerFactory) -> None:
    manager = start_manager(max_frame_size=1000)
    with Client(manager.port) as client:
        client.send_raw((1001).to_bytes(4, "big") + b"{")
        reply = client.receive()
        assert client.is_closed_by_server()
    assert reply["response"]["error_type"] == "invalid_payload"
    assert "1001" in reply["response"]["error_message"]
    assert_serving(manager)


def test_client_disconnecting_mid_frame_is_dropped(manager: RunningManager) -> None:
    for partial in (b"\x00\x00", encode_message({"type": "list_pipelines"})[:10]):
        client = Client(manager.port)
        client.send_raw(partial)
        client.close()
    assert_serving(manager)


def test_idle_connection_is_closed(start_manager: ManagerFactory) -> None:
    manager = start_manager(idle_timeout=0.2)
    with Client(manager.port) as client:
        assert client.call({"type": "list_pipelines"})["response"]["status"] == "success"
        assert client.is_closed_by_server(wait=3.0)


def test_slow_init_does_not_block_other_clients(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: object
) -> None:
    manager = start_manager(init_timeout=1.5)
    register_worker(redis_client)  # type: ignore[arg-type]
    fake_worker.behaviour = "silent"
    replies: list[dict[str, object]] = []
    init = threading.Thread(target=lambda: replies.append(call(manager.port, INIT_PAYLOAD)))
    init.start()
    time.sleep(0.2)  # the init is now waiting for its worker

    started = time.monotonic()
    status = call(manager.port, {"type": "status", "pipeline_id": "other"})
    listing = call(manager.port, {"type": "list_pipelines"})
    elapsed = time.monotonic() - started

    init.join(10)
    assert elapsed < 0.5
    assert status["response"]["error_type"] == "not_found"
    assert len(listing["response"]["pipelines"]) == 1  # the pending pipeline is listed meanwhile
    assert replies[0]["response"]["error_type"] == "operation_error"  # type: ignore[index]


def test_token_is_required_when_configured(start_manager: ManagerFactory) -> None:
    manager = start_manager(auth_token="s3cret")

    refused = call(manager.port, {"type": "list_pipelines"})
    wrong = call(manager.port, {"type": "status", "pipeline_id": "p", "token": "nope"})
    accepted = call(manager.port, {"type": "list_pipelines", "token": "s3cret"})

    assert refused["response"]["error_type"] == "authorisation_error"
    assert wrong["response"]["error_type"] == "authorisation_error" and wrong["pipeline_id"] == "p"
    assert "s3cret" not in json.dumps(wrong)
    assert accepted["response"]["status"] == "success"


INIT_PAYLOAD = {
    "model_id": "yolov3-tiny/coco-416",
    "video_reference": "rtsp://user:pass@camera/stream",
    "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": 9999},
    "api_key": "API-KEY-SECRET",
    "type": "init",
}


def test_redis_outage_is_an_internal_error_and_the_server_survives(
    manager: RunningManager, redis_server: RedisServer
) -> None:
    redis_server.stop()
    try:
        reply = call(manager.port, {"type": "status", "pipeline_id": "p"})
    finally:
        redis_server.start()

    assert reply["response"]["error_type"] == "internal_error" and reply["pipeline_id"] == "p"
    assert "Redis is unavailable" in reply["response"]["error_message"]
    assert_serving(manager)


def test_answers_made_at_once_and_answers_that_wait_keep_their_order(manager: RunningManager) -> None:
    # LIST is answered in the read's own callback (from memory), STATUS by a task that reads Redis: one write
    # that interleaves them still gets its replies in the order it sent them.
    assert_serving(manager)  # the pipelines' index has been read once: the LISTs below come from memory
    requests = [{"type": "list_pipelines"}, {"type": "status", "pipeline_id": "a"}, {"type": "list_pipelines"},
                {"type": "list_pipelines"}, {"type": "status", "pipeline_id": "b"}, {"type": "list_pipelines"}]
    with Client(manager.port) as client:
        client.send_raw(b"".join(encode_message(request) for request in requests))
        replies = [client.receive() for _ in requests]
    assert [reply["pipeline_id"] for reply in replies] == [None, "a", None, None, "b", None]
    assert [reply["response"]["status"] for reply in replies] == ["success", "failure", "success", "success",
                                                                  "failure", "success"]


def test_list_is_answered_from_memory_until_the_index_changes(start_manager: ManagerFactory, fake_worker: FakeWorker,
                                                              redis_client: redis.Redis) -> None:
    manager = start_manager(reaper_interval=60, reaper_lease_ttl=120)  # its scripts would count among the reads
    register_worker(redis_client)
    deadline = time.monotonic() + 2  # until the tracking connection is subscribed (the manager does not wait for it)
    while True:
        reads = commands_run(redis_client, "evalsha")
        assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []
        if commands_run(redis_client, "evalsha") == reads or time.monotonic() > deadline:
            break
    for _ in range(30):
        assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == []
    assert commands_run(redis_client, "evalsha") == reads  # thirty answers, no read of Redis

    created = call(manager.port, INIT_PAYLOAD)["pipeline_id"]  # this manager's own write: listed at once
    assert call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"] == [created]

    # Another writer (another manager, a worker restoring a pipeline after a Redis restart): listed once Redis's
    # message about the index has reached this manager.
    redis_client.hset(keys.pipeline_record("elsewhere"), mapping={"pipeline_id": "elsewhere", "created_at": "1"})
    redis_client.sadd(keys.pipelines_index(), "elsewhere")
    deadline = time.monotonic() + 2
    while (listed := call(manager.port, {"type": "list_pipelines"})["response"]["pipelines"]) != ["elsewhere", created]:
        assert time.monotonic() < deadline, listed
        time.sleep(0.01)
    with Client(manager.port) as client:  # encoded once for these ids, the reply is still json.dumps's bytes
        client.send({"type": "list_pipelines"})
        body = client.receive_raw()
    listing = {"status": "success", "pipelines": ["elsewhere", created]}
    assert body == json.dumps({"request_id": json.loads(body)["request_id"], "response": listing,
                               "pipeline_id": None}).encode()


class _StubbornHandlers:
    """Answers every request later, and swallows the first cancellation of its answer for ``stubborn`` s, as a
    redis.asyncio call may on Python 3.11."""

    def __init__(self, stubborn: float) -> None:
        self.stubborn = stubborn
        self.answered = asyncio.Event()

    def answer_at_once(self, request: object) -> None:
        return None

    async def handle(self, request: object, request_id: str) -> Reply:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(self.stubborn)
        self.answered.set()
        return Reply({"status": "success"}, None)


def test_closing_the_server_closes_a_connection_whose_answer_ignores_the_cancellation(
        caplog: pytest.LogCaptureFixture) -> None:
    # Its socket closed when close() returns (it used to stay open, owned by the task, and leak if the loop ended
    # first); the late answer then finds it closed and hands nothing over.
    async def scenario() -> None:
        handlers = _StubbornHandlers(stubborn=1.5)
        server = StreamManagerServer(ManagerSettings(host="127.0.0.1", port=0), handlers)  # type: ignore[arg-type]
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(encode_message({"type": "status", "pipeline_id": "x"}))
            await asyncio.sleep(0.2)  # the answer has begun
            await server.close(grace=0.1)
            assert await asyncio.wait_for(reader.read(), 1.0) == b""  # closed, with no reply
            await asyncio.wait_for(handlers.answered.wait(), 5)
            await asyncio.sleep(0.05)  # the answer's task has ended
        finally:
            writer.close()
    with caplog.at_level(logging.WARNING, logger="services.manager.server"):
        asyncio.run(scenario())
    assert caplog.records == []
