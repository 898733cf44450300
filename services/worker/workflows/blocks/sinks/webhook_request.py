"""The HTTP request a webhook sink sends, built from the step's resolved inputs, and sending it (httpx); the
checked HTTP client every HTTP sink uses (``checked_client``), and the operator's APIs the Slack and Twilio
blocks call (``OperatorApi``).

Bodies as the reference (``requests``) builds them: multipart when there are files (form fields go in
the same body), else a URL-encoded form when there is form data, else the JSON payload. Query and form
values are written as ``str()`` does (``True``, ``1.5``), lists repeat the key and query parameters
follow the URL's own query, as ``requests`` does. Redirects are followed, each hop checked against
the allowed hosts.

Every connection (the first and each redirect's) is opened by :class:`CheckedTransport`: the host is
resolved once, every address must lie in the allowed networks, and the socket connects to one of
those addresses (TLS still verifies the certificate against the host's name). A name that resolved to
an allowed address when the step checked it and to another when the request connects (DNS
rebinding) is refused, and environment proxies are not used (the check must see the destination).

Unlike the reference, any workflow value may go into the JSON (detections, images, numpy values:
serialised as the workflow's outputs are), header values may be numbers, a file may be an image (sent
as JPEG) or any JSON value, and a GET with an empty payload has no body.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpcore
import httpx

from services.core.networks import NetworkPolicy
from services.infra.destinations import resolve_checked
from services.worker.workflows.blocks.base import SinkSettings
from services.worker.workflows.blocks.sinks.images import jpeg_bytes
from services.worker.workflows.blocks.sinks.notification import check_host
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import WorkflowImage

METHODS = ("GET", "POST", "PUT")


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    method: str
    url: str
    params: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    json_body: Any = None  # sent when there are neither files nor form data
    form: tuple[tuple[str, str], ...] = ()
    files: list[tuple[str, tuple[str, bytes]]] = field(default_factory=list)

    @classmethod
    def build(cls, method: str, url: str, query_parameters: dict[str, Any], headers: dict[str, Any],
              json_payload: dict[str, Any], files: dict[str, Any], form_data: dict[str, Any]) -> "WebhookRequest":
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        check_url(url)
        # The reference sends the (possibly empty) JSON object whenever there is no other body; an
        # empty GET goes without a body here, as some servers refuse GET bodies.
        body = serialise(json_payload) if json_payload or method != "GET" else None
        return cls(
            method=method,
            url=url,
            params=_pairs(query_parameters),
            headers={name: _text(value) for name, value in headers.items() if value is not None},
            json_body=body,
            form=_pairs(form_data),
            files=[(name, (name, _file_content(value))) for name, value in files.items() if value is not None],
        )

    @property
    def host(self) -> str:
        return url_host(self.url)

    @property
    def port(self) -> int:
        return url_port(self.url)

    def send(self, timeout: float, sinks: SinkSettings) -> None:
        """Sends once; raises on a transport error, a refused host or address, or a 4xx/5xx answer."""
        with checked_client(sinks, timeout, follow_redirects=True) as client:
            response = client.request(self.method, self._full_url(), headers=self.headers, **self._body())
        if response.is_error:
            raise RuntimeError(f"the endpoint answered HTTP {response.status_code} {response.reason_phrase}")

    def _full_url(self) -> str:
        """The URL with the query parameters after its own (httpx would replace its query)."""
        if not self.params:
            return self.url
        parts = urlsplit(self.url)
        extra = urlencode(self.params)
        return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))

    def _body(self) -> dict[str, Any]:
        if self.files:
            return {"files": self.files, "data": _grouped(self.form)}
        if self.form:
            return {"data": _grouped(self.form)}
        if self.json_body is not None:
            return {"json": self.json_body}
        return {}


def checked_client(sinks: SinkSettings, timeout: float, follow_redirects: bool = False) -> httpx.Client:
    """An httpx client whose every request goes only to an allowed host (``SinkSettings.allowed_hosts``) and
    whose every connection only to an allowed address (:class:`CheckedTransport`)."""

    def check(request: httpx.Request) -> None:
        check_host(request.url.host, sinks.allowed_hosts)

    return httpx.Client(timeout=timeout, follow_redirects=follow_redirects, event_hooks={"request": [check]},
                        transport=CheckedTransport(sinks.allowed_networks))


class OperatorApi:
    """A web API at an address the worker's operator set (a ``SinkSettings`` URL, never the workflow's),
    reached through checked connections; subclasses hold its credentials, which no repr shows."""

    def __init__(self, sinks: SinkSettings, base_url: str) -> None:
        self._sinks = sinks
        self._base = base_url.rstrip("/")

    def __repr__(self) -> str:  # never the credentials, even in a traceback's locals
        return f"{type(self).__name__}({self._base!r})"

    @property
    def host(self) -> str:
        return url_host(self._base)

    @property
    def port(self) -> int:
        return url_port(self._base)

    def client(self, timeout: float) -> httpx.Client:
        return checked_client(self._sinks, timeout)


def url_host(url: str) -> str:
    return urlsplit(url).hostname or ""


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport whose connections go only to addresses ``policy`` allows (see the module doc)."""

    def __init__(self, policy: NetworkPolicy) -> None:
        super().__init__()
        # httpx offers no network backend option; its pool is httpcore's, which does.
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(),
                                             network_backend=_CheckedNetwork(policy))


class _CheckedNetwork(httpcore.SyncBackend):
    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        """A connection to the first reachable address of ``host``, every one checked first."""
        error: httpcore.ConnectError | None = None
        for *_, sockaddr in resolve_checked(host, port, self._policy):  # raises DestinationRefusedError
            try:
                return super().connect_tcp(str(sockaddr[0]), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None  # resolve_checked returns at least one address
        raise error


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")


def _pairs(values: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((name, _text(item)) for name, value in values.items()
                 for item in (value if isinstance(value, list | tuple) else [value]) if item is not None)


def _grouped(pairs: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(serialise(value))


def _file_content(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, WorkflowImage):
        return jpeg_bytes(value)
    return json.dumps(serialise(value)).encode("utf-8")
