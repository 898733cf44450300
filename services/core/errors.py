"""The error hierarchy of the wire protocol, one class per ``error_type``, and its translations.

Translated once at each boundary: exception -> reply ``response`` (:func:`failure_response`, the
manager), reply ``response`` -> exception (:func:`error_from_response`, clients), pydantic
``ValidationError`` -> :class:`InvalidPayloadError` (:func:`invalid_payload_from`, parsers).
"""

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import ValidationError

from services.core.redaction import redact_text


class StreamManagerError(Exception):
    """Base of every error the manager reports on the wire.

    ``str(exc)`` is the detailed (``error_message``) text; ``public_message`` is a sentence fit
    for an end user (``public_error_message``).
    """

    error_type: ClassVar[str] = "internal_error"
    default_public_message: ClassVar[str] = "The stream manager failed to handle the request."

    def __init__(self, message: str, public_message: str | None = None) -> None:
        super().__init__(message)
        self._public_message = public_message

    @property
    def public_message(self) -> str:
        return self._public_message or self.default_public_message


class InternalError(StreamManagerError):
    error_type = "internal_error"


class InvalidPayloadError(StreamManagerError):
    error_type = "invalid_payload"
    default_public_message = "The request is malformed or carries invalid values."


class NotFoundError(StreamManagerError):
    error_type = "not_found"
    default_public_message = "The requested pipeline or resource does not exist."


class OperationError(StreamManagerError):
    error_type = "operation_error"
    default_public_message = "The operation could not be performed on the pipeline."


class AuthorisationError(StreamManagerError):
    error_type = "authorisation_error"
    default_public_message = "The request is not authorised."


ERROR_TYPES: Mapping[str, type[StreamManagerError]] = {
    cls.error_type: cls
    for cls in (InternalError, InvalidPayloadError, NotFoundError, OperationError, AuthorisationError)
}

FOREIGN_PUBLIC_MESSAGE = "Internal error in the stream manager."


def failure_response(exc: BaseException, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """The reply ``response`` for a failure, as the reference's newer generation shapes it.

    A foreign exception (not a :class:`StreamManagerError`) is reported as ``internal_error``
    with a generic public sentence; every message passes through credential redaction.
    """
    if isinstance(exc, StreamManagerError):
        error_type, public = exc.error_type, exc.public_message
    else:
        error_type, public = InternalError.error_type, FOREIGN_PUBLIC_MESSAGE
    return {
        "status": "failure",
        "error_type": error_type,
        "error_class": type(exc).__name__,
        "error_message": redact_text(str(exc), secrets),
        "public_error_message": redact_text(public, secrets),
    }


def error_from_response(response: Mapping[str, Any]) -> StreamManagerError:
    """The exception a client raises for a failure ``response`` (unknown types -> internal)."""
    cls = ERROR_TYPES.get(str(response.get("error_type")), InternalError)
    message = response.get("error_message")
    public = response.get("public_error_message")
    return cls(
        str(message) if message is not None else f"stream manager reported {response.get('error_type')}",
        str(public) if public is not None else None,
    )


def invalid_payload_from(
    exc: ValidationError, subject: str, rename: Mapping[str, str] | None = None, skip: int = 0
) -> InvalidPayloadError:
    """One :class:`InvalidPayloadError` naming every offending field path of a ValidationError.

    ``skip`` drops leading location parts (a union's tag); ``rename`` maps a top-level model field
    to the path it came from in the caller's payload. Raise the result ``from exc``.
    """
    problems = [_describe(error, rename or {}, skip) for error in exc.errors(include_url=False)]
    return InvalidPayloadError(f"invalid {subject}: " + "; ".join(problems))


def _describe(error: Any, rename: Mapping[str, str], skip: int) -> str:
    path = field_path(error["loc"][skip:], rename)
    if error["type"] == "missing":
        return f"field '{path}' is required"
    if error["type"] == "value_error":  # our own validators already say what they got
        return f"field '{path}': {error['msg'].removeprefix('Value error, ')}"
    return f"field '{path}': {error['msg']} (got {type(error['input']).__name__})"


def field_path(loc: tuple[int | str, ...], rename: Mapping[str, str] | None = None) -> str:
    """``("a", 0, "b")`` -> ``"a[0].b"``, the first segment renamed through ``rename``."""
    text = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = (rename or {}).get(part, part) if index == 0 else part
        text += f".{name}" if text else name
    return text or "<root>"
