"""The TCP front benchmark's load generator (``tcp_once.c``), compiled and run against small real servers:
what it counts as answered, as an error, and what it reports."""

import json
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from services.core.framing import encode_message
from tests.benchmarks.tcp_front import REQUEST, answered_at_a_time, generate
from tools.embedded_redis import free_port


class _OneReply(socketserver.BaseRequestHandler):
    status = "success"
    delay = 0.0

    def handle(self) -> None:
        time.sleep(self.delay)
        header = self.request.recv(4, socket.MSG_WAITALL)
        body = self.request.recv(struct.unpack(">I", header)[0], socket.MSG_WAITALL)
        assert json.loads(body) == {"type": "list_pipelines"}
        response = {"status": self.status, "pipelines": []} if self.status == "success" else {
            "status": "failure", "error_type": "internal_error", "message": "said \"no\""}
        self.request.sendall(encode_message({"request_id": "r", "response": response, "pipeline_id": None}))


@contextmanager
def serving(status: str, delay: float = 0.0) -> Iterator[int]:
    handler = type("Handler", (_OneReply,), {"status": status, "delay": delay})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_the_generator_counts_each_successful_reply_with_its_latency() -> None:
    assert encode_message({"type": "list_pipelines"}) == REQUEST
    with serving("success") as port:
        result = generate(port, 3, 0.3)
    assert result["answered"] > 10 and result["errors"] == 0 and result["first_errors"] == []
    assert 0 < result["p50"] <= result["p99"] <= result["max"] < 1.0 and 0 < result["mean"] <= result["max"]
    assert 0 <= result["over_100ms"] <= result["answered"]
    # Three clients, each waiting for its reply most of the time: about three answered at a time, never more.
    assert 0 < answered_at_a_time(result) <= 3.0


def test_replies_slower_than_100_ms_are_counted() -> None:
    with serving("success", delay=0.15) as port:
        result = generate(port, 2, 0.2)
    assert result["answered"] >= 2 and result["over_100ms"] == result["answered"] and result["max"] >= 0.15
    assert result["under_100ms_s"] == 0 and answered_at_a_time(result) == 0
    assert 0.3 <= result["elapsed"] < 5 and result["cpu"] > 0


def test_a_failure_reply_is_an_error_shown_in_the_first_errors() -> None:
    with serving("failure") as port:
        result = generate(port, 2, 0.2)
    assert result["answered"] == 0 and result["errors"] > 0
    assert len(result["first_errors"]) == 3 and "failure" in result["first_errors"][0]


def test_a_server_that_is_not_there_is_counted_as_connect_errors() -> None:
    result = generate(free_port(), 1, 0.1)
    assert result["answered"] == 0 and result["errors"] >= 1
    assert result["first_errors"][0].startswith("connect: ")
