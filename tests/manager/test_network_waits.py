"""Every network wait of the manager is bounded: a client that stops reading its replies cannot hold a
server task (MANAGER_WRITE_TIMEOUT), and a broker that stops answering cannot hold a dispatch."""

import asyncio
import os
import signal
import socket
import threading
import time

from kombu.exceptions import OperationalError

from services.core.framing import FrameDecoder, encode_message
from services.manager.dispatch import CeleryDispatcher
from tests.manager.conftest import ManagerFactory
from tests.manager.fakes import call
from tests.manager.test_server import assert_serving
from tests.support.redis_server import running_redis
from tests.support.workflow_definitions import IMAGE, detection_only

REQUESTS = 40  # replies of ~400 KB each: far more than the socket buffers between server and client hold


def big_workflow() -> dict[str, object]:
    definition = detection_only()
    definition["inputs"] = [IMAGE, {"type": "WorkflowParameter", "name": "notes", "default_value": "x" * 400_000}]
    return definition


def test_a_client_that_stops_reading_is_disconnected_and_the_server_serves_others(
        start_manager: ManagerFactory) -> None:
    manager = start_manager(write_timeout=0.5, max_requests_per_second=0)
    stored = call(manager.port, {"type": "put_workflow", "workspace_name": "acme", "workflow_id": "big",
                                 "specification": big_workflow()})
    assert stored["response"]["status"] == "success", stored
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(("127.0.0.1", manager.port))
    try:
        reader.sendall(encode_message({"type": "get_workflow", "workspace_name": "acme", "workflow_id": "big",
                                       "keep_alive": True}) * REQUESTS)
        assert_serving(manager)  # while that connection's task waits to write
        time.sleep(6 * 0.5)  # reading nothing for several write timeouts
        assert_serving(manager)

        replies, closed = drain(reader)
    finally:
        reader.close()

    assert closed, "the server kept the connection of a client that read nothing for 3 s"
    assert replies < REQUESTS
    assert_serving(manager)


def test_a_client_that_reads_none_of_the_answers_made_at_once_is_disconnected(start_manager: ManagerFactory) -> None:
    manager = start_manager(write_timeout=0.5, max_requests_per_second=0)
    assert_serving(manager)
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(("127.0.0.1", manager.port))
    try:
        reader.setblocking(False)
        frames = encode_message({"type": "list_pipelines", "keep_alive": True}) * 50_000  # 6 MB of replies, none read
        sent = 0
        deadline = time.monotonic() + 5
        while sent < len(frames) and time.monotonic() < deadline:
            try:
                sent += reader.send(frames[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)  # the server stopped reading: its replies are not taken
        assert_serving(manager)
        time.sleep(6 * 0.5)
        assert_serving(manager)
        reader.setblocking(True)
        replies, closed = drain(reader)
    finally:
        reader.close()
    assert closed, "the server kept the connection of a client that read none of its replies for 3 s"
    assert replies < 50_000
    assert_serving(manager)


def drain(sock: socket.socket) -> tuple[int, bool]:
    """(complete reply frames read, whether the server closed the connection) once nothing more comes for 5 s."""
    sock.settimeout(5.0)
    decoder = FrameDecoder(64 * 1024 * 1024)
    replies = 0
    while True:
        try:
            data = sock.recv(1 << 20)
        except ConnectionResetError:
            return replies, True
        except TimeoutError:
            return replies, False
        if not data:
            return replies, True
        replies += len(decoder.feed(data))


def test_a_dispatch_to_a_broker_that_stopped_answering_fails_instead_of_hanging() -> None:
    with running_redis() as server:
        assert server.process is not None
        dispatcher = CeleryDispatcher(server.url, socket_timeout=0.5, connect_timeout=0.5)
        asyncio.run(dispatcher.dispatch("p-1", 1, {}, "vsim:reply:r-1", "cpu"))  # connected, and it works
        outcome: list[BaseException | None] = []

        def dispatch() -> None:
            try:
                asyncio.run(dispatcher.dispatch("p-2", 1, {}, "vsim:reply:r-2", "cpu"))
                outcome.append(None)
            except Exception as exc:
                outcome.append(exc)

        os.kill(server.process.pid, signal.SIGSTOP)  # its connections stay open; nothing answers
        try:
            publisher = threading.Thread(target=dispatch, daemon=True)
            publisher.start()
            publisher.join(60)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert not publisher.is_alive(), "the publish still waits on a broker that stopped answering"
        dispatcher.close()
    assert len(outcome) == 1 and isinstance(outcome[0], OperationalError), outcome
