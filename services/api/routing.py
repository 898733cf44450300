"""Route classes that turn every failure of a route into its generation's error response.

The guard wraps FastAPI's own request handler, so it also sees request validation (raised inside
that handler) and response serialisation errors, and answers them like any other failure; no
exception leaves a route, so the server never logs an unhandled error nor sends a traceback.
"""

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException  # the base of FastAPI's: FastAPI raises it for an unreadable body

from services.api.errors import ErrorReport, newer_body, older_body, report_of
from services.client.errors import ProcessesManagerClientError

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class _GuardedRoute(APIRoute):
    def render(self, report: ErrorReport) -> dict[str, Any]:
        raise NotImplementedError

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        render = self.render

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                report = report_of(exc, request.path_params.get("pipeline_id"))
                _log(request, exc, report)
                return JSONResponse(render(report), status_code=report.status_code)

        return guarded


class OlderRoute(_GuardedRoute):
    """``{"status": "failure", "message", "context"}`` bodies (the routes of reference seed 000)."""

    def render(self, report: ErrorReport) -> dict[str, Any]:
        return older_body(report)


class NewerRoute(_GuardedRoute):
    """``{"message", "error_type", "inner_error_type", "inner_error_message", "context"}`` bodies."""

    def render(self, report: ErrorReport) -> dict[str, Any]:
        return newer_body(report)


def _log(request: Request, exc: Exception, report: ErrorReport) -> None:
    # The path and the (redacted) messages only: never the body, which may carry an api_key.
    where = f"{request.method} {request.url.path}"
    if isinstance(exc, ProcessesManagerClientError | RequestValidationError | HTTPException):
        logger.warning("%s -> %d %s: %s", where, report.status_code, report.error_type, report.message)
    else:
        logger.error("%s -> %d: unexpected %s", where, report.status_code, type(exc).__name__, exc_info=exc)
