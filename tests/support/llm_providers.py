"""A fake of the hosted LLM APIs on 127.0.0.1, answering as the real ones do: OpenAI's chat completions
(``/v1/chat/completions``) and Responses API (``/v1/responses``: provider ``openai_responses``, answering with
``output`` items, as the REST API does, without the SDK's ``output_text`` convenience), Anthropic's messages
(``/v1/messages``) and Gemini's ``generateContent``
(``/v1beta/models/<model>:generateContent``), OpenRouter's chat completions (``/api/v1/chat/completions``),
an OpenAI-compatible server's (``/compatible/v1/chat/completions``: ``compatible_url`` is its base URL),
Google Cloud Vision's ``/v1/images:annotate`` and xAI's Responses API (``/xai/v1/responses``: answered as OpenAI's,
its errors as xAI writes them: ``{"code", "error": "<message>"}``). It records every
request; the test sets the answer's text (Vision's: the whole answer, ``vision``), an HTTP error status (answered
with the provider's error object, which echoes the key as some providers do), a raw body (malformed JSON), a delay
(a timeout) or the next few answers (``replies``: e.g. a refusal, then an answer)."""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class LlmRequest:
    provider: str  # "openai", "anthropic", "gemini", "google_vision", "openrouter", "openai_compatible",
    # "openai_responses", "xai"
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def provider_of(path: str) -> str | None:
    if path == "/v1/chat/completions":
        return "openai"
    if path == "/v1/responses":  # OpenAI's Responses API (open_ai v4/v5)
        return "openai_responses"
    if path == "/api/v1/chat/completions":
        return "openrouter"
    if path == "/xai/v1/responses":  # xAI's Responses API (spacexai; its base URL ends in /v1 as xAI's does)
        return "xai"
    if path == "/compatible/v1/chat/completions":  # an OpenAI-compatible server (openai_compatible's base_url)
        return "openai_compatible"
    if path == "/v1/messages":
        return "anthropic"
    if path.startswith("/v1beta/models/") and path.endswith(":generateContent"):
        return "gemini"
    if path == "/v1/images:annotate":  # Google Cloud Vision (google_vision_ocr): answers FakeLlmApis.vision
        return "google_vision"
    return None


def answer(provider: str, text: str, stop: str | None = None) -> dict[str, Any]:
    """A successful answer with ``text``, as each API writes it (``stop``: its stop / finish reason)."""
    if provider in ("openai", "openai_compatible"):
        return {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": stop or "stop"}]}
    if provider == "openrouter":  # OpenAI's shape, with the upstream provider that served it
        return {"id": "gen-1", "object": "chat.completion", "provider": "Moonshot AI", "model": "moonshotai/kimi-k2.6",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": stop or "stop"}]}
    if provider in ("openai_responses", "xai"):  # a reasoning item, then the message ("split": its text in two parts);
        # stop "failed": a failed response; any other: incomplete for that reason (e.g. "max_output_tokens")
        half = len(text) // 2
        parts = [text[:half], text[half:]] if stop == "split" else [text]
        status = "completed" if stop in (None, "split") else "failed" if stop == "failed" else "incomplete"
        return {"id": "resp_1", "object": "response", "model": "gpt-5.1", "status": status,
                "error": {"code": "server_error", "message": "The model failed"} if status == "failed" else None,
                "incomplete_details": {"reason": stop} if status == "incomplete" else None,
                "output": [{"id": "rs_1", "type": "reasoning", "summary": []},
                           {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                            "content": [{"type": "output_text", "text": part, "annotations": []} for part in parts]}]}
    if provider == "anthropic":
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                "content": [{"type": "thinking", "thinking": "hmm", "signature": "x"}, {"type": "text", "text": text}]
                if stop == "thinking" else [{"type": "text", "text": text}],
                "stop_reason": "end_turn" if stop in (None, "thinking") else stop}
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                            "finishReason": stop or "STOP", "index": 0}]}


def error_body(provider: str, status: int, key: str) -> dict[str, Any]:
    message = f"Incorrect API key provided: {key}" if status == 401 else f"error {status}"
    if provider == "anthropic":
        return {"type": "error", "error": {"type": "authentication_error", "message": message}}
    if provider in ("gemini", "google_vision"):
        return {"error": {"code": status, "message": message, "status": "UNAUTHENTICATED"}}
    if provider == "openrouter" and status != 401:  # an upstream provider's failure, in its own words
        return {"error": {"code": status, "message": "Provider returned error",
                          "metadata": {"provider_name": "Alibaba", "raw": f"upstream says {status} for key {key}"}}}
    if provider == "openrouter":
        return {"error": {"code": status, "message": message}}
    if provider == "xai":
        return {"code": "Client specified an invalid argument", "error": message}
    return {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}


class FakeLlmApis:
    def __init__(self) -> None:
        self.requests: list[LlmRequest] = []
        self.text: dict[str, str] = {"openai": "openai says hi", "anthropic": "claude says hi", "gemini": "gemini hi",
                                     "openrouter": "openrouter says hi", "openai_compatible": "compatible says hi"}
        self.text["openai_responses"] = "responses says hi"
        self.text["xai"] = "grok says hi"
        self.stop: str | None = None
        # Google Cloud Vision's images:annotate answer (tests/support/google_vision.py builds them); no text here.
        self.vision: dict[str, Any] = {"responses": [{}]}
        self.status = 200
        self.raw: bytes | None = None
        # Answers given first, one per request, before any of the above: (HTTP status, JSON body).
        self.replies: list[tuple[int, Any]] = []
        self.delay = 0.0
        self._release = threading.Event()
        self._received = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                provider = provider_of(self.path.split("?", 1)[0])
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._received:  # recorded before the answer: the client sees it once answered
                    fake.requests.append(LlmRequest(provider or "?", self.path, headers, body))
                    fake._received.notify_all()
                if fake.delay:
                    fake._release.wait(fake.delay)
                if provider is None:
                    status, reply = 404, b"{}"
                elif fake.replies:
                    status, canned = fake.replies.pop(0)
                    reply = json.dumps(canned).encode()
                elif fake.raw is not None:
                    status, reply = fake.status, fake.raw
                elif fake.status >= 400:
                    key = headers.get("x-api-key") or headers.get("x-goog-api-key") or \
                        headers.get("authorization", "").removeprefix("Bearer ")
                    status, reply = fake.status, json.dumps(error_body(provider, fake.status, key)).encode()
                elif provider == "google_vision":
                    status, reply = 200, json.dumps(fake.vision).encode()
                else:
                    status, reply = 200, json.dumps(answer(provider, fake.text[provider], fake.stop)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def compatible_url(self) -> str:
        """An OpenAI-compatible server's base URL here (openai_compatible@v1's ``base_url``; no operator setting)."""
        return f"{self.url}/compatible/v1"

    def settings(self) -> dict[str, str]:
        """The worker's settings pointing each provider here (SinkSettings field -> URL)."""
        return {"openai_api_url": f"{self.url}/v1", "anthropic_api_url": self.url, "gemini_api_url": self.url,
                "google_vision_api_url": self.url, "openrouter_api_url": f"{self.url}/api/v1",
                "xai_api_url": f"{self.url}/xai/v1"}

    def wait_for(self, count: int, timeout: float = 10.0) -> list[LlmRequest]:
        with self._received:
            assert self._received.wait_for(lambda: len(self.requests) >= count, timeout), self.requests
            return list(self.requests)

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
