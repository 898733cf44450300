"""The checks every request passes before any route runs: cross-site requests, the API's token, the body size.

:class:`RequestGuard` is a plain ASGI middleware, so the FastAPI routes, ``/metrics`` (a Starlette
route) and unknown paths are treated alike. In order:

1. **Cross-site writes (CSRF).** A request other than GET/HEAD/OPTIONS whose ``Origin`` is present
   and is neither this API's own origin (its ``Host``) nor one of ``API_CORS_ORIGINS`` is refused
   with 403, and so is one marked ``Sec-Fetch-Site: cross-site`` (unless its origin is allowed).
   Browsers send ``Origin`` on every cross-origin POST; curl and the Python clients send none.
2. **The API's token** (``API_AUTH_TOKEN``, when set): every path but :data:`OPEN_PATHS` needs
   ``Authorization: Bearer <token>`` (compared in constant time), else 401 with
   ``WWW-Authenticate: Bearer``. The header is then removed from the request, so the token never
   becomes an INIT payload's ``api_key`` (which then comes from the payload or ``X-Api-Key``).
3. **The body size** (``API_MAX_BODY_BYTES``): a ``Content-Length`` above it is refused at once,
   with 413; otherwise the body is read here, counting, and refused as soon as it passes the limit,
   then handed to the route.

A refusal is answered in the error body of the generation of the route the path belongs to (the
newer one for paths of no route) and logged with the method, path and reason, never the token.
"""

import hmac
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import (
    ApiAuthenticationError,
    ApiRequestRefused,
    CrossOriginRequestRefused,
    ErrorReport,
    RequestBodyTooLarge,
    newer_body,
    older_body,
    report_of,
)
from services.api.routing import OlderRoute

logger = logging.getLogger(__name__)

# Open without the token: the probes (compose and orchestrators run them without credentials), and
# what carries no data: the dashboard's static page and files (it asks for the token itself), the
# redirect to it, and the API's schema and documentation pages.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/dashboard", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                        "/redoc"})
OPEN_PREFIXES = ("/dashboard/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}

Render = Callable[[ErrorReport], dict[str, Any]]


class RequestGuard:
    def __init__(self, app: ASGIApp, *, token: str | None, cors_origins: Iterable[str], max_body_bytes: int,
                 routes: Sequence[BaseRoute] = ()) -> None:
        """``routes``: the API's routes, which tell a refusal's body generation and pipeline id."""
        self.app = app
        self._routes = tuple(routes)
        self._token = token.encode() if token else None
        self._origins = frozenset(_normal_origin(origin) for origin in cors_origins)
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            self._check_origin(scope, headers)
            if self._token is not None and not is_open(scope["path"]):
                self._check_token(headers)
                scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k != b"authorization"])
            receive = await self._read_body(headers, receive)
        except ApiRequestRefused as exc:
            await self._refuse(scope, receive, send, exc)
            return
        await self.app(scope, receive, send)

    def _check_origin(self, scope: Scope, headers: Headers) -> None:
        if scope["method"] in SAFE_METHODS:
            return
        origin = headers.get("origin")
        allowed = origin is not None and ("*" in self._origins or _normal_origin(origin) in self._origins)
        if origin is not None and not allowed and not _same_origin(origin, headers):
            raise CrossOriginRequestRefused(f"cross-origin request refused: Origin {origin[:200]!r} is neither this "
                                            "API's own origin nor in API_CORS_ORIGINS")
        if headers.get("sec-fetch-site", "").lower() == "cross-site" and not allowed:
            raise CrossOriginRequestRefused("cross-site request refused (Sec-Fetch-Site: cross-site) and its Origin "
                                            "is not in API_CORS_ORIGINS")

    def _check_token(self, headers: Headers) -> None:
        assert self._token is not None
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise ApiAuthenticationError("authentication required: send Authorization: Bearer <API_AUTH_TOKEN>")
        if not hmac.compare_digest(credentials.strip().encode(), self._token):
            raise ApiAuthenticationError("invalid API token")

    async def _read_body(self, headers: Headers, receive: Receive) -> Receive:
        """The whole body, read here up to the limit; a ``receive`` that hands it to the route."""
        declared = headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self._max_body:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: the route sees it
                pending: list[Message] = [message]
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
                break

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        return replay

    def _too_large(self) -> RequestBodyTooLarge:
        return RequestBodyTooLarge(f"request body too large: the limit is {self._max_body} bytes (API_MAX_BODY_BYTES)")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: ApiRequestRefused) -> None:
        render, pipeline_id = _route_of(scope, self._routes)
        report = report_of(exc, pipeline_id)
        logger.warning("%s %s -> %d %s: %s", scope["method"], scope["path"], report.status_code, report.error_type,
                       report.message)
        headers = dict(exc.headers)
        if isinstance(exc, RequestBodyTooLarge):
            headers["Connection"] = "close"  # the rest of the body is not read
        response = JSONResponse(render(report), status_code=report.status_code, headers=headers)
        await response(scope, receive, send)


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _route_of(scope: Scope, routes: Sequence[BaseRoute]) -> tuple[Render, str | None]:
    """The error body renderer of the route the request is for (the newer one by default), and its pipeline id."""
    partial: tuple[Render, str | None] | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        render: Render = older_body if isinstance(route, OlderRoute) else newer_body
        pipeline_id = child.get("path_params", {}).get("pipeline_id")
        found = (render, pipeline_id if isinstance(pipeline_id, str) else None)
        if match is Match.FULL:
            return found
        partial = partial or found
    return partial or (newer_body, None)


def _normal_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _same_origin(origin: str, headers: Headers) -> bool:
    """Whether ``Origin`` names the host and port the request was sent to (its ``Host``)."""
    host = headers.get("host")
    if not host:
        return False
    try:
        sent_from, sent_to = urlsplit(origin), urlsplit(f"//{host}")
        if sent_from.scheme not in DEFAULT_PORTS or not sent_from.hostname:
            return False
        default = DEFAULT_PORTS[sent_from.scheme]
        return (sent_from.hostname, sent_from.port or default) == (sent_to.hostname, sent_to.port or default)
    except ValueError:  # a malformed port
        return False
