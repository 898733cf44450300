"""The two hot reads (list and status, both route generations) answered without FastAPI's routing.

A dashboard or a fleet monitor polls these routes far more than anything else. When Redis is
configured they are answered from it (:class:`~services.infra.pipeline_reads.StoredReads`), and what is
left of their cost is the framework's: routing, dependency solving, validating the route's return
value and the exception wrappers cost about as much as the Redis read itself (py-spy, 50
connections). This ASGI layer, inside the request guard (origin, token and body checks apply as to
any route), answers a GET of exactly those paths when the stored reads can, with the body the route
would send: the same response model, serialised as FastAPI serialises a response model (memoised on
what was read from Redis, see :meth:`~services.infra.pipeline_reads.StoredReads.rendered`). Everything
else (other paths and methods, a pipeline the manager must be asked about, any error) goes on to
the app unchanged, so the routes keep answering those cases.
"""

import re
from typing import Any

from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from services.client.models import ListPipelinesResponse, StatusResponse, context_of
from services.infra.pipeline_reads import StoredReads

# path -> (command, response model); the pipeline id is the path segment FastAPI's "{pipeline_id}" matches
_LIST_PATHS = frozenset({"/list_pipelines", "/inference_pipelines/list"})
_STATUS_PATH = re.compile(r"/(?:status/([^/]+)|inference_pipelines/([^/]+)/status)")
_HEADERS = [(b"content-type", b"application/json")]


class HotReads:
    def __init__(self, app: ASGIApp, *, reads: StoredReads) -> None:
        self.app = app
        self._reads = reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            body = await self._answer(scope["path"])
            if body is not None:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _answer(self, path: str) -> bytes | None:
        """The route's response body, or None: the route answers."""
        if path in _LIST_PATHS:
            return await self._reads.rendered({"type": "list_pipelines"}, _render_list)
        match = _STATUS_PATH.fullmatch(path)
        if match is None:
            return None
        return await self._reads.rendered({"type": "status", "pipeline_id": match.group(1) or match.group(2)},
                                          _render_status)


def _render(model: type[BaseModel], envelope: dict[str, Any]) -> bytes:
    typed = model.model_validate({**envelope["response"], "context": context_of(envelope)})
    return typed.model_dump_json(by_alias=True).encode()  # as FastAPI serialises a route's response model


def _render_list(envelope: dict[str, Any]) -> bytes:
    return _render(ListPipelinesResponse, envelope)


def _render_status(envelope: dict[str, Any]) -> bytes:
    return _render(StatusResponse, envelope)
