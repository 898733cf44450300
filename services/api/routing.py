"""Route classes that turn every failure of a route into its generation's error response.

The guard wraps FastAPI's own request handler, so it also sees request validation (raised inside
that handler) and response serialisation errors, and answers them like any other failure; no
exception leaves a route, so the server never logs an unhandled error nor sends a traceback.

A route whose endpoint returns an instance of exactly its ``response_model`` (what the typed manager
client returns: already validated against that model) answers with the model's own JSON; FastAPI
would dump it, validate it again and serialise it once more, which took about a fifth of the API's
CPU per STATUS (``make bench``, "Load"). The bytes are the same: FastAPI serialises the same model,
by alias, without excluding anything. Anything else (a dict, another type) takes FastAPI's path.
"""

import functools
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException  # the base of FastAPI's: FastAPI raises it for an unreadable body

from services.api.errors import ErrorReport, newer_body, older_body, report_of
from services.client.errors import ProcessesManagerClientError

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class _GuardedRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        model = options.get("response_model")
        if (inspect.iscoroutinefunction(endpoint) and isinstance(model, type) and issubclass(model, BaseModel)
                and _plain_serialisation(options)):
            endpoint = _answering_with(endpoint, model)
        super().__init__(path, endpoint, **options)

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


def _plain_serialisation(options: dict[str, Any]) -> bool:
    """Whether FastAPI would serialise the route's model as it is: by alias, nothing excluded or included."""
    return (options.get("response_model_by_alias", True) and not options.get("response_model_include")
            and not options.get("response_model_exclude") and not options.get("response_model_exclude_unset")
            and not options.get("response_model_exclude_defaults")
            and not options.get("response_model_exclude_none"))


def _answering_with(endpoint: Callable[..., Any], model: type[BaseModel]) -> Callable[..., Any]:
    """``endpoint``, answering an instance of exactly ``model`` with its JSON (see the module docstring)."""

    @functools.wraps(endpoint)  # FastAPI reads the parameters through __wrapped__
    async def answer(*args: Any, **kwargs: Any) -> Any:
        result = await endpoint(*args, **kwargs)
        if type(result) is model:
            return Response(result.model_dump_json(by_alias=True), media_type="application/json")
        return result

    return answer


def _log(request: Request, exc: Exception, report: ErrorReport) -> None:
    # The path and the (redacted) messages only: never the body, which may carry an api_key.
    where = f"{request.method} {request.url.path}"
    if isinstance(exc, ProcessesManagerClientError | RequestValidationError | HTTPException):
        logger.warning("%s -> %d %s: %s", where, report.status_code, report.error_type, report.message)
    else:
        logger.error("%s -> %d: unexpected %s", where, report.status_code, type(exc).__name__, exc_info=exc)
