"""A failure envelope becomes the reference's error class, with the reply's ids and messages."""

import pytest

from services.client import (
    ProcessesManagerAuthorisationError,
    ProcessesManagerClientError,
    ProcessesManagerInternalError,
    ProcessesManagerInvalidPayload,
    ProcessesManagerNotFoundError,
    ProcessesManagerOperationError,
)
from services.client.errors import error_from_envelope
from services.core.errors import ERROR_TYPES


@pytest.mark.parametrize(
    ("error_type", "cls"),
    [
        ("internal_error", ProcessesManagerInternalError),
        ("invalid_payload", ProcessesManagerInvalidPayload),
        ("not_found", ProcessesManagerNotFoundError),
        ("operation_error", ProcessesManagerOperationError),
        ("authorisation_error", ProcessesManagerAuthorisationError),
    ],
)
def test_each_error_type_has_its_class(error_type: str, cls: type[ProcessesManagerClientError]) -> None:
    envelope = {"request_id": "r-1", "pipeline_id": "p-1", "response": {
        "status": "failure", "error_type": error_type, "error_class": "SomeError", "error_message": "details",
        "public_error_message": "A sentence."}}

    error = error_from_envelope(envelope)

    assert type(error) is cls and cls.error_type == error_type
    assert (str(error), error.public_message) == ("details", "A sentence.")
    assert (error.request_id, error.pipeline_id, error.error_class) == ("r-1", "p-1", "SomeError")
    assert error.inner_error_type == "SomeError"


def test_every_error_type_the_manager_sends_is_mapped() -> None:
    for error_type in ERROR_TYPES:
        error = error_from_envelope({"response": {"status": "failure", "error_type": error_type}})
        assert type(error) is not ProcessesManagerClientError, error_type


def test_older_generation_failure_without_details() -> None:
    error = error_from_envelope({"request_id": "r", "pipeline_id": None,
                                 "response": {"status": "failure", "error_type": "not_found"}})

    assert isinstance(error, ProcessesManagerNotFoundError)
    assert str(error) == "the stream manager reported not_found" and error.public_message == str(error)
    assert error.error_class is None and error.inner_error_type is None


def test_unknown_error_type_is_the_base_class() -> None:
    error = error_from_envelope({"response": {"status": "failure", "error_type": "quota_exceeded",
                                              "error_message": "too many"}})

    assert type(error) is ProcessesManagerClientError and str(error) == "too many"
    assert error.request_id is None and error.pipeline_id is None
