"""Exception -> HTTP error response, in ONE table, rendered in each API generation's body shape.

:data:`STATUS_CODES` maps every exception a route can meet to its status: the client's error classes
(one per wire ``error_type``, plus the transport's two), request validation, and anything else.
:func:`report_of` reads an exception into an :class:`ErrorReport` once; each generation only renders
it: the older routes as ``{status: "failure", message, context}`` (the reference's body, plus the
context so a failed init says its pipeline id), the newer ones as ``{message, error_type,
inner_error_type, inner_error_message, context}``.

What reaches a body: the manager's messages (it redacts credentials before sending them), the
manager address, validation messages. Never a traceback or an unexpected exception's text: that
is a generic 500, and the details go to the log.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException  # FastAPI raises this base class itself (e.g. an unreadable body)

from services.client.errors import (
    CommunicationProtocolError,
    ConnectivityError,
    ProcessesManagerAuthorisationError,
    ProcessesManagerClientError,
    ProcessesManagerInternalError,
    ProcessesManagerInvalidPayload,
    ProcessesManagerNotFoundError,
    ProcessesManagerOperationError,
)
from services.client.models import CommandContext
from services.core.errors import field_path


class ApiRequestRefused(Exception):
    """A request the API refuses itself, before any route runs (:mod:`services.api.security`).

    Its text is public (it names the reason and never a credential); ``headers`` go on the response.
    """

    headers: ClassVar[Mapping[str, str]] = {}


class ApiAuthenticationError(ApiRequestRefused):
    """API_AUTH_TOKEN is set and the request's ``Authorization: Bearer`` is missing or wrong."""

    headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": 'Bearer realm="stream-management-api"'}


class CrossOriginRequestRefused(ApiRequestRefused):
    """A state-changing request sent by a web page of another origin (CSRF)."""


class RequestBodyTooLarge(ApiRequestRefused):
    """The request body exceeds API_MAX_BODY_BYTES."""


# Looked up along the exception's MRO, so the most specific class wins and ``Exception`` is the fallback.
STATUS_CODES: Mapping[type[Exception], int] = {
    ProcessesManagerInvalidPayload: 400,
    ProcessesManagerAuthorisationError: 401,
    ProcessesManagerNotFoundError: 404,
    ProcessesManagerOperationError: 500,
    ProcessesManagerInternalError: 500,
    # The manager answered, but not in the protocol: an upstream fault, not ours (the reference says 500).
    CommunicationProtocolError: 502,
    ConnectivityError: 503,
    ProcessesManagerClientError: 500,  # an error_type this API does not know
    RequestValidationError: 422,
    ApiAuthenticationError: 401,
    CrossOriginRequestRefused: 403,
    RequestBodyTooLarge: 413,
    Exception: 500,
}

INTERNAL_ERROR_MESSAGE = "Internal error."

STATUS_DESCRIPTIONS: Mapping[int, str] = {
    400: "The manager refused the request as invalid (invalid_payload), e.g. a bad INIT payload or workflow "
         "definition, or an invalid workflow name; the detailed message names the JSON path.",
    401: "API_AUTH_TOKEN is set and `Authorization: Bearer` is missing or wrong (ApiAuthenticationError), or "
         "the manager refused the API's own token (authorisation_error): check API_MANAGER_TOKEN.",
    403: "A state-changing request (POST, PUT, DELETE) from a web page of another origin (CrossOriginRequestRefused).",
    413: "The request body is larger than API_MAX_BODY_BYTES (RequestBodyTooLarge).",
    404: "No such pipeline or named workflow (not_found).",
    422: "The request body or parameters are malformed (not a JSON object, a wrong type).",
    500: "The manager could not perform the operation (operation_error, internal_error), or the API failed.",
    502: "The stream manager's reply broke the protocol (CommunicationProtocolError).",
    503: "The stream manager is unreachable or did not answer in time (ConnectivityError).",
}


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """One failed request, read once from its exception; the generations render it."""

    status_code: int
    error_type: str  # the exception's class name, as the reference's newer body names it
    public_message: str  # a sentence for end users
    message: str  # the detailed message (already redacted by the manager)
    inner_error_type: str | None
    context: CommandContext


class OlderErrorBody(BaseModel):
    """The older generation's error body: the reference's ``{status, message}`` plus the context."""

    status: Literal["failure"] = "failure"
    message: str = Field(description="What went wrong, in detail.")
    context: CommandContext


class NewerErrorBody(BaseModel):
    """The newer generation's error body, as the reference shapes it, plus the context and details."""

    message: str = Field(description="A sentence for end users (for 503: which manager is unreachable).")
    error_type: str = Field(description="The client error class, e.g. 'ProcessesManagerNotFoundError'.")
    inner_error_type: str | None = Field(description="The manager-side exception class, when one was reported.")
    inner_error_message: str | None = Field(description="The detailed message, e.g. which INIT field is wrong.")
    context: CommandContext


def status_code_of(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500  # a BaseException that is not an Exception never reaches a route's handler


def report_of(exc: Exception, pipeline_id: str | None) -> ErrorReport:
    """The report of ``exc``; ``pipeline_id`` (the route's) serves when the manager named none."""
    if isinstance(exc, ProcessesManagerClientError):
        context = CommandContext(request_id=exc.request_id, pipeline_id=exc.pipeline_id or pipeline_id)
        # An unreachable manager is an operator's problem: the public text names the address.
        public = str(exc) if isinstance(exc, ConnectivityError) else exc.public_message
        return ErrorReport(status_code_of(exc), type(exc).__name__, public, str(exc), exc.inner_error_type, context)
    context = CommandContext(pipeline_id=pipeline_id)
    if isinstance(exc, ApiRequestRefused):
        return ErrorReport(status_code_of(exc), type(exc).__name__, str(exc), str(exc), None, context)
    if isinstance(exc, RequestValidationError):
        text = describe_validation_error(exc)
        return ErrorReport(status_code_of(exc), type(exc).__name__, text, text, None, context)
    if isinstance(exc, HTTPException):  # FastAPI's own, e.g. a body it could not read
        # FastAPI answers a body that is not UTF-8 with 400 "error parsing the body", but malformed JSON with
        # 422: both are a malformed body, documented as 422 on every route.
        status = 422 if exc.status_code == 400 else exc.status_code
        return ErrorReport(status, type(exc).__name__, str(exc.detail), str(exc.detail), None, context)
    return ErrorReport(status_code_of(exc), "InternalError", INTERNAL_ERROR_MESSAGE, INTERNAL_ERROR_MESSAGE, None,
                       context)


def describe_validation_error(exc: RequestValidationError) -> str:
    """One line naming every offending part, e.g. ``invalid request: body: Input should be a valid dictionary``."""
    problems = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            loc = loc[:1]  # FastAPI adds the character position
        text = error.get("msg", "invalid")
        if isinstance(error.get("ctx"), dict) and "error" in error["ctx"]:
            text = f"{text} ({error['ctx']['error']})"
        problems.append(f"{field_path(loc)}: {text}")
    return "invalid request: " + "; ".join(problems or ["malformed"])


def older_body(report: ErrorReport) -> dict[str, Any]:
    return OlderErrorBody(message=report.message, context=report.context).model_dump(mode="json")


def newer_body(report: ErrorReport) -> dict[str, Any]:
    return NewerErrorBody(message=report.public_message, error_type=report.error_type,
                          inner_error_type=report.inner_error_type, inner_error_message=report.message,
                          context=report.context).model_dump(mode="json")


def error_responses(model: type[BaseModel], *status_codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` documentation of a route's errors, every one with the generation's body model."""
    return {code: {"model": model, "description": STATUS_DESCRIPTIONS[code]} for code in status_codes}
