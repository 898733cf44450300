"""Test doubles for what the manager talks to: a pipeline task (thread), and a raw wire connection.

The fake task speaks the real task protocol against the real Redis: it claims the record, answers
the init on its reply list, subscribes the control channel, heartbeats, and answers commands.
Ordinary requests go through the library client (:func:`call`); :class:`Client` is for the tests
whose point is the bytes: malformed or split frames, several requests on one connection.
"""

import json
import socket
import threading
from typing import Any

import redis

from services.client import ManagerClient
from services.core import keys
from services.core.control import ControlCommand, ControlReply
from services.core.errors import OperationError, failure_response
from services.core.framing import FrameDecoder, encode_frame, encode_message
from services.core.tasks import queue_for
from services.infra import registry

REPORT = {
    "video_source_status_updates": [],
    "latency_reports": [{"source_id": 0, "frame_decoding_latency": 0.01, "inference_latency": 0.02,
                         "e2e_latency": 0.03}],
    "inference_throughput": 25.0,
    "sources_metadata": [{"source_id": 0, "source_reference": "rtsp://***:***@camera/stream",
                          "state": "RUNNING"}],
}


class RecordingDispatcher:
    """A dispatcher that only records what it was asked to send: ``(pipeline_id, epoch)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def dispatch(self, pipeline_id: str, epoch: int, spec: dict[str, Any], reply_to: str,
                       device: str) -> None:
        self.calls.append((pipeline_id, epoch))


def register_worker(client: redis.Redis, device: str = "cpu", hostname: str = "fake@host", ttl: int = 60,
                    **fields: Any) -> None:
    """Registers a worker of ``device``'s queue as a worker does (its key and its registry member);
    ``fields`` add to or replace the registration's (``free_slots=0``: a full worker)."""
    registry.publish(client, hostname, json.dumps({"hostname": hostname, "queues": [queue_for(device)], **fields}),
                     ttl)


def push_reply(client: redis.Redis, reply_to: str, response: dict[str, Any]) -> None:
    request_id = reply_to.removeprefix(keys.reply_list(""))
    client.rpush(reply_to, ControlReply(request_id=request_id, response=response).model_dump_json())
    client.expire(reply_to, keys.REPLY_TTL)


class FakeTask(threading.Thread):
    """One running pipeline: ``behaviour`` is "run", "fail" (init failure) or "silent" (never starts)."""

    def __init__(self, url: str, pipeline_id: str, epoch: int, reply_to: str, behaviour: str) -> None:
        super().__init__(daemon=True, name=f"fake-task-{pipeline_id}")
        self.client = redis.Redis.from_url(url)
        self.pipeline_id, self.epoch, self.reply_to, self.behaviour = pipeline_id, epoch, reply_to, behaviour
        self.commands: list[str] = []
        self.answer = True  # False: receives commands but never replies (a hung task)
        self.extra: dict[str, Any] = {}  # added to the success reply (a WebRTC task's SDP answer)
        self.owner = "fake@host"  # written into the record as a task writes ``<hostname>:<pid>``
        self._lost = threading.Event()
        self.subscribed = threading.Event()

    def lose(self) -> None:
        """The worker dies: no more heartbeats, no more answers, the record keeps its state."""
        self._lost.set()
        self.join(5)

    def run(self) -> None:
        try:
            if self.behaviour == "fail":
                push_reply(self.client, self.reply_to, failure_response(OperationError("camera unreachable")))
            elif self.behaviour == "run":
                self._run()
        finally:
            self.client.close()

    def _run(self) -> None:
        record = keys.pipeline_record(self.pipeline_id)
        self.client.hset(record, mapping={"state": "RUNNING", "owner": self.owner})
        with self.client.pubsub() as pubsub:  # type: ignore[no-untyped-call]
            pubsub.subscribe(keys.pipeline_control_channel(self.pipeline_id))
            pubsub.get_message(timeout=1.0)  # the subscribe confirmation
            self.subscribed.set()
            self._beat()
            push_reply(self.client, self.reply_to, {"status": "success", **self.extra})
            while not self._lost.is_set():
                message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
                self._beat()
                if message is not None and self._handle(ControlCommand.model_validate_json(message["data"])):
                    return

    def _beat(self) -> None:
        self.client.set(keys.pipeline_heartbeat(self.pipeline_id), f"fake@host:{self.epoch}", ex=5)
        self.client.set(keys.pipeline_report(self.pipeline_id), json.dumps(REPORT))

    def _handle(self, command: ControlCommand) -> bool:
        """Applies a command; True when the task ends."""
        self.commands.append(command.command.value)
        if command.epoch != self.epoch or not self.answer:
            return False
        state = {"mute": "MUTED", "resume": "RUNNING", "terminate": "TERMINATED"}.get(command.command.value)
        if state is not None:
            self.client.hset(keys.pipeline_record(self.pipeline_id), "state", state)
        response = {"status": "success", "report": REPORT} if command.command == "status" else {"status": "success"}
        push_reply(self.client, keys.reply_list(command.request_id), response)
        if command.command == "terminate":
            self.client.delete(keys.pipeline_heartbeat(self.pipeline_id))
            return True
        return False


class FakeWorker:
    """A ``Dispatcher`` that starts a :class:`FakeTask` thread per dispatch."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.behaviour = "run"
        self.extra: dict[str, Any] = {}  # each task's success reply carries these fields too
        self.owner = "fake@host"  # the owner each new task writes (a drain test names the worker)
        self.tasks: list[FakeTask] = []
        self.calls: list[dict[str, Any]] = []

    async def dispatch(self, pipeline_id: str, epoch: int, spec: dict[str, Any], reply_to: str,
                       device: str) -> None:
        self.calls.append({"pipeline_id": pipeline_id, "epoch": epoch, "spec": spec,
                           "reply_to": reply_to, "device": device})
        task = FakeTask(self.url, pipeline_id, epoch, reply_to, self.behaviour)
        task.extra = dict(self.extra)
        task.owner = self.owner
        self.tasks.append(task)
        task.start()

    def close(self) -> None:
        for task in self.tasks:
            task.lose()


class Client:
    """A raw socket on one connection: bytes as the test writes them. With ``keep_alive``, :meth:`send` asks the
    manager to keep the connection open after each reply (``"keep_alive": true``), for several requests."""

    def __init__(self, port: int, timeout: float = 10.0, *, keep_alive: bool = False,
                 receive_buffer: int | None = None) -> None:
        self.sock = socket.socket()
        self.sock.settimeout(timeout)
        if receive_buffer is not None:  # before connecting: it sets the window the client offers
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.connect(("127.0.0.1", port))
        self.decoder = FrameDecoder(64 * 1024 * 1024)
        self.frames: list[bytes] = []
        self.keep_alive = keep_alive

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, request: dict[str, Any]) -> None:
        self.send_raw(encode_message({**request, "keep_alive": True} if self.keep_alive else request))

    def send_body(self, body: bytes) -> None:
        self.send_raw(encode_frame(body))

    def receive_raw(self) -> bytes:
        """The next reply frame body."""
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    def receive(self) -> dict[str, Any]:
        return json.loads(self.receive_raw())  # type: ignore[no-any-return]

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send(request)
        return self.receive()

    def is_closed_by_server(self, wait: float = 2.0) -> bool:
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call(port: int, request: dict[str, Any]) -> dict[str, Any]:
    """The raw reply envelope (success or failure) to one request on its own connection, as the
    reference client sends it; raises :class:`~services.client.ConnectivityError` when unanswered."""
    return ManagerClient("127.0.0.1", port).request(request)
