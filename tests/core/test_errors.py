"""The error hierarchy and its translations to and from the wire."""

import pytest
from pydantic import BaseModel, ValidationError

from services.core.errors import (
    ERROR_TYPES,
    FOREIGN_PUBLIC_MESSAGE,
    AuthorisationError,
    InternalError,
    InvalidPayloadError,
    NotFoundError,
    OperationError,
    StreamManagerError,
    error_from_response,
    failure_response,
    field_path,
    invalid_payload_from,
)


@pytest.mark.parametrize(
    ("cls", "error_type"),
    [
        (InternalError, "internal_error"),
        (InvalidPayloadError, "invalid_payload"),
        (NotFoundError, "not_found"),
        (OperationError, "operation_error"),
        (AuthorisationError, "authorisation_error"),
    ],
)
def test_every_wire_error_type_has_one_class(cls: type[StreamManagerError], error_type: str) -> None:
    assert cls.error_type == error_type
    assert ERROR_TYPES[error_type] is cls
    assert issubclass(cls, StreamManagerError)


def test_failure_response_has_the_newer_generation_shape_and_order() -> None:
    exc = NotFoundError("no pipeline 'p1'", "The pipeline does not exist.")

    assert list(failure_response(exc).items()) == [
        ("status", "failure"),
        ("error_type", "not_found"),
        ("error_class", "NotFoundError"),
        ("error_message", "no pipeline 'p1'"),
        ("public_error_message", "The pipeline does not exist."),
    ]


def test_a_default_public_message_is_a_sentence() -> None:
    response = failure_response(OperationError("pipeline p1 is ENDED"))

    assert response["public_error_message"].endswith(".")
    assert response["public_error_message"] == OperationError.default_public_message


def test_a_foreign_exception_becomes_a_redacted_internal_error() -> None:
    exc = ConnectionError("cannot open rtsp://admin:hunter2@cam.local/live?api_key=abc123 (key K-42)")

    response = failure_response(exc, secrets=("K-42",))

    assert response["error_type"] == "internal_error"
    assert response["error_class"] == "ConnectionError"
    assert response["public_error_message"] == FOREIGN_PUBLIC_MESSAGE
    for secret in ("hunter2", "admin", "abc123", "K-42"):
        assert secret not in str(response)


def test_our_own_messages_are_redacted_too() -> None:
    response = failure_response(OperationError("cannot reach rtsp://u:pw@h/x"))

    assert "pw" not in response["error_message"]


@pytest.mark.parametrize("cls", list(ERROR_TYPES.values()))
def test_error_round_trips_through_a_response(cls: type[StreamManagerError]) -> None:
    original = cls("details", "Public sentence.")

    restored = error_from_response(failure_response(original))

    assert type(restored) is cls
    assert str(restored) == "details"
    assert restored.public_message == "Public sentence."


def test_an_unknown_error_type_becomes_internal_error() -> None:
    restored = error_from_response({"status": "failure", "error_type": "quota_exceeded"})

    assert type(restored) is InternalError
    assert "quota_exceeded" in str(restored)


def test_an_older_generation_failure_without_messages() -> None:
    restored = error_from_response({"status": "failure", "error_type": "not_found"})

    assert type(restored) is NotFoundError
    assert restored.public_message == NotFoundError.default_public_message


class _Sample(BaseModel):
    name: str
    items: list[int]


def test_validation_errors_become_one_invalid_payload_naming_each_path() -> None:
    with pytest.raises(ValidationError) as caught:
        _Sample.model_validate({"items": [1, "x"]})

    error = invalid_payload_from(caught.value, "sample", rename={"name": "outer.name"})

    assert str(error) == (
        "invalid sample: field 'outer.name' is required; "
        "field 'items[1]': Input should be a valid integer, unable to parse string as an integer (got str)"
    )


def test_field_path_formats_nested_locations() -> None:
    assert field_path(("a", 0, "b")) == "a[0].b"
    assert field_path(()) == "<root>"
