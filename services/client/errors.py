"""The errors a client raises, named as the reference's clients name them.

A failure reply becomes the class of its ``error_type``; a manager that cannot be reached or does
not answer in time is :class:`ConnectivityError`; a reply that breaks the protocol is
:class:`CommunicationProtocolError`. Every error keeps the reply's ids, so a failed INIT still
says which pipeline id it had been given.
"""

from collections.abc import Mapping
from typing import Any, ClassVar


class ProcessesManagerClientError(Exception):
    """Base of every client error. ``str(exc)`` is the detailed message."""

    error_type: ClassVar[str | None] = None

    def __init__(self, message: str, public_message: str | None = None, *, request_id: str | None = None,
                 pipeline_id: str | None = None, error_class: str | None = None,
                 inner_error: BaseException | None = None) -> None:
        super().__init__(message)
        self._public_message = public_message
        self.request_id = request_id
        self.pipeline_id = pipeline_id
        self.error_class = error_class
        self.inner_error = inner_error

    @property
    def public_message(self) -> str:
        return self._public_message or str(self)

    @property
    def inner_error_type(self) -> str | None:
        if self.error_class is not None:
            return self.error_class
        return None if self.inner_error is None else type(self.inner_error).__name__


class ConnectivityError(ProcessesManagerClientError):
    """The manager could not be reached, or did not answer within the timeout."""


class CommunicationProtocolError(ProcessesManagerClientError):
    """The manager's reply broke the protocol (bad header, cut frame, not a JSON envelope)."""


class ProcessesManagerInternalError(ProcessesManagerClientError):
    error_type = "internal_error"


class ProcessesManagerInvalidPayload(ProcessesManagerClientError):
    error_type = "invalid_payload"


class ProcessesManagerNotFoundError(ProcessesManagerClientError):
    error_type = "not_found"


class ProcessesManagerOperationError(ProcessesManagerClientError):
    error_type = "operation_error"


class ProcessesManagerAuthorisationError(ProcessesManagerClientError):
    error_type = "authorisation_error"


ERRORS_BY_TYPE: Mapping[str, type[ProcessesManagerClientError]] = {
    str(cls.error_type): cls
    for cls in (ProcessesManagerInternalError, ProcessesManagerInvalidPayload, ProcessesManagerNotFoundError,
                ProcessesManagerOperationError, ProcessesManagerAuthorisationError)
}
ERRORS_BY_NAME: Mapping[str, type[ProcessesManagerClientError]] = {
    cls.__name__: cls for cls in (*ERRORS_BY_TYPE.values(), ConnectivityError, CommunicationProtocolError,
                                  ProcessesManagerClientError)
}


def error_from_envelope(envelope: Mapping[str, Any]) -> ProcessesManagerClientError:
    """The exception for a failure reply (an unknown ``error_type`` gives the base class)."""
    response = envelope.get("response")
    response = response if isinstance(response, Mapping) else {}
    error_type = response.get("error_type")
    cls = ERRORS_BY_TYPE.get(str(error_type), ProcessesManagerClientError)
    message = response.get("error_message") or f"the stream manager reported {error_type}"
    public = response.get("public_error_message")
    return cls(str(message), None if public is None else str(public), request_id=envelope.get("request_id"),
               pipeline_id=envelope.get("pipeline_id"), error_class=response.get("error_class"))
