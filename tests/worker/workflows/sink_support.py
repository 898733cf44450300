"""Real endpoints for the sink tests: an HTTP server recording what it receives, a minimal SMTP server
(implicit TLS or STARTTLS, AUTH PLAIN) recording the mails it accepts, a self-signed certificate made
with ``openssl``, and the blocks' environment (a settable clock, a background that runs at once)."""

import base64
import contextlib
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment, SinkSettings

# ----------------------------------------------------------------------------- blocks


class FakeClock:
    """The wall clock blocks read (``env.clock``), moved by the test."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class InlineBackground:
    """Runs each job at once (what the frame would see after the job ran); ``accept`` False refuses."""

    def __init__(self) -> None:
        self.accept = True
        self.jobs = 0

    def submit(self, work: Callable[[], None]) -> bool:
        if not self.accept:
            return False
        self.jobs += 1
        work()
        return True


class NoModels:
    def detect(self, model_id: str, image: Any, params: Any) -> Any:
        raise AssertionError("sinks use no model")

    def classify(self, model_id: str, image: Any, confidence: float) -> Any:
        raise AssertionError("sinks use no model")


def definition(step: dict[str, Any], *inputs: dict[str, Any]) -> dict[str, Any]:
    """A published-format workflow with one image input, ``inputs`` (parameters) and ``step``."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, *inputs],
        "steps": [step],
        "outputs": [{"type": "JsonField", "name": "message", "selector": f"$steps.{step['name']}.message"}],
    }


def make_env(clock: FakeClock | None = None, background: Any = None, **sinks: Any) -> BlockEnvironment:
    return BlockEnvironment(source_id=0, models=NoModels(), background=background or InlineBackground(),
                            sinks=SinkSettings(**sinks), clock=clock or FakeClock())


def build(step: dict[str, Any], env: BlockEnvironment, *inputs: dict[str, Any],
          parameters: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """The block of ``step`` (compiled from a definition) and its params (literals, as run gets them)."""
    plan = compile_workflow(definition(step, *inputs), parameters=parameters)
    planned = plan.step(step["name"])
    return REGISTRY[planned.type](planned, env), dict(planned.params)


# ----------------------------------------------------------------------------- HTTP


@dataclass
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """A URL-encoded body."""
        return parse_qs(self.body.decode())

    def parts(self) -> list[tuple[str, str | None, bytes]]:
        """Multipart body: (field name, file name, content) per part."""
        raw = b"Content-Type: " + self.headers["content-type"].encode() + b"\r\n\r\n" + self.body
        message = BytesParser(policy=HTTP).parsebytes(raw)
        assert isinstance(message, EmailMessage) and message.is_multipart()
        return [(str(part.get_param("name", header="content-disposition")), part.get_filename(),
                 bytes(part.get_payload(decode=True))) for part in message.iter_parts()]


class HttpRecorder:
    """An HTTP server on ``host`` (127.0.0.1) answering ``status`` (after ``delay`` s) to GET, POST and PUT,
    with the body ``respond`` gives for the request (JSON), or none."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[ReceivedRequest] = []
        self.status = 200
        self.respond: Callable[[ReceivedRequest], Any] | None = None
        self.redirect: str | None = None  # answer 302 to this location instead
        self.delay = 0.0
        self.release = threading.Event()  # set: a delayed answer goes at once
        self._received = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = ReceivedRequest(self.command, parts.path, parse_qs(parts.query),
                                          {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                if recorder.delay:
                    recorder.release.wait(recorder.delay)
                body = b"" if recorder.respond is None else json.dumps(recorder.respond(request)).encode()
                self.send_response(302 if recorder.redirect else recorder.status)
                if recorder.redirect:
                    self.send_header("Location", recorder.redirect)
                self.send_header("Content-Length", str(len(body)))
                if body:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
                with recorder._received:
                    recorder.requests.append(request)
                    recorder._received.notify_all()

            do_GET = do_POST = do_PUT = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        with self._received:
            assert self._received.wait_for(lambda: len(self.requests) >= count, timeout), self.requests
            return list(self.requests)

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class FakeSlack(HttpRecorder):
    """Answers ``ok`` to chat.postMessage and files.completeUploadExternal, an upload URL on this server to
    files.getUploadURLExternal, and ``refuse`` (a Slack error code) to every API method when set."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: str | None = None
        self.respond = self._answer

    def _answer(self, request: ReceivedRequest) -> Any:
        if request.path.startswith("/upload/"):
            return "OK"
        if self.refuse is not None:
            return {"ok": False, "error": self.refuse}
        if request.path == "/api/files.getUploadURLExternal":
            name = request.form()["filename"][0]
            return {"ok": True, "upload_url": f"{self.url}/upload/{name}", "file_id": f"F-{name}"}
        return {"ok": True}


def closed_port() -> int:
    """A local port nothing listens on (bound then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ----------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificate(folder: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, its own CA (made by ``openssl``)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=vsim test SMTP",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True, timeout=60)
    return Certificate(cert, key)


# ----------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    sender: str
    receivers: list[str]
    data: bytes
    user: str
    tls: bool

    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=default_policy).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Session:
    sock: socket.socket
    tls: bool = False
    user: str = ""
    sender: str = ""
    receivers: list[str] = field(default_factory=list)
    buffer: bytes = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def readline(self) -> str | None:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")


class SmtpRecorder:
    """A minimal SMTP server: ``mode`` "tls" (implicit TLS, as port 465), "starttls" or "plain" (no TLS
    offered); AUTH PLAIN with one account, over TLS only; it records every mail it accepts."""

    def __init__(self, certificate: Certificate, mode: str, user: str, password: str) -> None:
        self.mails: list[ReceivedMail] = []
        self.logins: list[tuple[str, bool]] = []  # (user, accepted)
        self._context = certificate.server_context()
        self._mode, self._user, self._password = mode, user, password
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._received = threading.Condition()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        with self._received:
            assert self._received.wait_for(lambda: len(self.mails) >= count, timeout), self.mails
            return list(self.mails)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (Linux)
        self._listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with sock:
                sock.settimeout(10)
                with contextlib.suppress(OSError):  # ssl.SSLError is an OSError
                    self._serve(sock)

    def _serve(self, sock: socket.socket) -> None:
        session = _Session(sock)
        try:
            if self._mode == "tls":
                session = _Session(self._context.wrap_socket(sock, server_side=True), tls=True)
            session.send("220 test ESMTP")
            while (line := session.readline()) is not None:
                verb, _, argument = line.partition(" ")
                verb = verb.upper()
                if verb == "STARTTLS" and not session.tls:
                    session.send("220 go ahead")
                    session = _Session(self._context.wrap_socket(session.sock, server_side=True), tls=True)
                elif verb == "QUIT":
                    session.send("221 bye")
                    return
                else:
                    self._command(session, verb, argument)
        finally:
            session.sock.close()  # the TLS socket once wrapped (the plain one is then detached)

    def _command(self, session: _Session, verb: str, argument: str) -> None:
        if verb in ("EHLO", "HELO"):
            extensions = ["test"] + (["STARTTLS"] if self._mode == "starttls" and not session.tls else [])
            for extension in extensions:
                session.send(f"250-{extension}")
            session.send("250 AUTH PLAIN")
        elif verb == "AUTH":
            self._auth(session, argument)
        elif verb == "MAIL":
            session.sender, session.receivers = argument.split(":", 1)[1].strip().strip("<>"), []
            session.send("250 ok")
        elif verb == "RCPT":
            session.receivers.append(argument.split(":", 1)[1].strip().strip("<>"))
            session.send("250 ok")
        elif verb == "DATA":
            self._data(session)
        elif verb in ("RSET", "NOOP"):
            session.send("250 ok")
        else:
            session.send("502 not implemented")

    def _auth(self, session: _Session, argument: str) -> None:
        mechanism, _, initial = argument.partition(" ")
        if mechanism.upper() != "PLAIN" or not session.tls:
            session.send("504 PLAIN over TLS only")
            return
        _, user, password = base64.b64decode(initial).decode().split("\0")
        accepted = user == self._user and password == self._password
        self.logins.append((user, accepted))
        session.user = user if accepted else ""
        session.send("235 ok" if accepted else "535 5.7.8 authentication failed")

    def _data(self, session: _Session) -> None:
        if not session.user:
            session.send("530 authentication required")
            return
        session.send("354 go ahead")
        lines = []
        while (line := session.readline()) is not None and line != ".":
            lines.append(line[1:] if line.startswith("..") else line)
        mail = ReceivedMail(session.sender, list(session.receivers), "\r\n".join(lines).encode() + b"\r\n",
                            session.user, session.tls)
        session.send("250 queued")
        with self._received:
            self.mails.append(mail)
            self._received.notify_all()
