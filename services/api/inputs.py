"""What the routes read from a request besides its path: the INIT payload and the consume options.

Both raise ``RequestValidationError`` (a 422 in the generation's error body) with a message that
says what is wrong, never a 500.
"""

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Body, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from services.api.payloads import ConsumePayload

bearer = HTTPBearer(auto_error=False, description="The API's token when it runs with API_AUTH_TOKEN; else, "
                                                  "optionally, the api_key of an INIT payload that carries none.")
api_key_header = APIKeyHeader(name="X-Api-Key", auto_error=False,
                              description="Optional: the api_key of an INIT payload that carries none.")


def _invalid(kind: str, message: str, value: object = None) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body",), "msg": message, "input": value}])


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object: any object passes, the manager validates its content.

    JSON is required by its Content-Type, as FastAPI does for its own bodies: a browser page can
    send a ``text/plain`` POST to a loopback API without asking (no CORS preflight), but not JSON.
    """
    raw = await request.body()
    if not raw.strip():
        raise _invalid("missing", "is required (a JSON object)")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise _invalid("content_type", f"must be sent as application/json, not {content_type or 'untyped'}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _invalid("json_invalid", f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _invalid("dict_type", f"must be a JSON object, got {_json_kind(data)}", data)
    return data


async def init_payload(
    payload: Annotated[dict[str, Any], Depends(json_object)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> dict[str, Any]:
    """The INIT payload to pass through, with ``api_key`` from ``X-Api-Key``, else from ``Authorization:
    Bearer``, when it has none. With API_AUTH_TOKEN set, Bearer is the API's token, which the request
    guard (:mod:`services.api.security`) removes before the route runs: it never becomes an api_key.

    A ``token`` key is dropped: the manager's token is the API's own credential (API_MANAGER_TOKEN),
    which the client adds; a caller neither supplies nor overrides it.
    """
    payload.pop("token", None)
    if payload.get("api_key") is None:
        if header_key:
            payload["api_key"] = header_key
        elif credentials is not None:
            payload["api_key"] = credentials.credentials
    return payload


InitPayload = Annotated[dict[str, Any], Depends(init_payload)]


@dataclass(frozen=True, slots=True)
class ConsumeOptions:
    excluded_fields: list[str]
    max_entries: int


async def consume_options(
    payload: Annotated[ConsumePayload | None, Body(description="Optional, as the reference sends it on GET.")] = None,
    excluded_fields: Annotated[list[str] | None, Query(
        description="Keys removed from each output; repeat the parameter or separate by commas.")] = None,
    max_entries: Annotated[int | None, Query(ge=1, le=1000, description="Read up to this many results.")] = None,
) -> ConsumeOptions:
    """The options from the JSON body and the query together: excluded fields add up, max_entries must agree."""
    body = payload or ConsumePayload()
    fields = list(body.excluded_fields)
    for value in excluded_fields or ():
        fields.extend(part.strip() for part in value.split(",") if part.strip())
    if body.max_entries is not None and max_entries is not None and body.max_entries != max_entries:
        raise RequestValidationError([{
            "type": "value_error", "loc": ("query", "max_entries"), "input": max_entries,
            "msg": f"disagrees with the body's max_entries ({body.max_entries}); give it once",
        }])
    return ConsumeOptions(list(dict.fromkeys(fields)), body.max_entries or max_entries or 1)


ConsumeParameters = Annotated[ConsumeOptions, Depends(consume_options)]


def _json_kind(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
