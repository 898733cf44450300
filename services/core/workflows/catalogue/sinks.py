"""Sink blocks: webhook, local file, e-mail (SMTP), Slack and Twilio SMS notifications.

Field names, defaults and outputs follow the reference's manifests (``core_steps/sinks/...``).
E-mail receivers are checked by a literal check registered here; ``CHECKS`` holds the query-language
checks of the ``*_operations`` fields, ``(block, field) -> check(value, path)``.
"""

from collections.abc import Callable
from typing import Any

from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, is_int, register_literals
from services.core.workflows.query_language import validate_operations_map

WEBHOOK_SINK = "roboflow_core/webhook_sink@v1"
LOCAL_FILE_SINK = "roboflow_core/local_file_sink@v1"
EMAIL_NOTIFICATION = "roboflow_core/email_notification@v1"
SLACK_NOTIFICATION = "roboflow_core/slack_notification@v1"
TWILIO_SMS_NOTIFICATION = "roboflow_core/twilio_sms_notification@v1"
MAX_COOLDOWN_S = 900  # the Slack and Twilio manifests' bound (their cache keeps a cooldown 15 minutes)


def is_addresses(value: Any) -> bool:
    """An e-mail address or a non-empty list of them (the manifest refuses an empty list)."""
    items = [value] if isinstance(value, str) else value
    return isinstance(items, list) and bool(items) and all(isinstance(item, str) and item.strip() for item in items)


_LITERAL_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "email_addresses": (is_addresses, "an e-mail address or a non-empty list of them"),
    "optional_email_addresses": (lambda value: value is None or is_addresses(value),
                                 "an e-mail address, a non-empty list of them or null"),
    "bounded_cooldown": (lambda value: is_int(value) and 0 <= value <= MAX_COOLDOWN_S,
                         f"an integer from 0 to {MAX_COOLDOWN_S} (seconds)"),
}
register_literals(_LITERAL_CHECKS)

_RECIPIENT_KINDS = (kinds.STRING, kinds.LIST_OF_VALUES)


def _mapping(name: str) -> Field:
    """An object whose values may each be a selector or a literal (``{"api_key": "$inputs.api_key"}``)."""
    return Field(name, literal="dict", default={}, nested=True)


def _operations(name: str) -> Field:
    return Field(name, literal="dict", default={})


_NOTIFICATION_CONTROL = (
    Field("fire_and_forget", kinds=(kinds.BOOLEAN,), literal="bool", default=True),
    Field("disable_sink", kinds=(kinds.BOOLEAN,), literal="bool", default=False),
    Field("cooldown_seconds", kinds=(kinds.INTEGER,), literal="non_negative_int", default=5),
)
# Slack's and Twilio's: the cooldown is bounded and the reference keys its shared cache with a session key
# (accepted; cooldowns here are per step and video source, as for the other sinks).
_BOUNDED_CONTROL = (
    *_NOTIFICATION_CONTROL[:2],
    Field("cooldown_seconds", kinds=(kinds.INTEGER,), literal="bounded_cooldown", default=5),
    Field("cooldown_session_key", literal="str"),
)
_NOTIFICATION_OUTPUTS: dict[str, tuple[str, ...]] = {
    "error_status": (kinds.BOOLEAN,),
    "throttling_status": (kinds.BOOLEAN,),
    "message": (kinds.STRING,),
}
_FILE_OUTPUTS: dict[str, tuple[str, ...]] = {"error_status": (kinds.BOOLEAN,), "message": (kinds.STRING,)}

BLOCKS = (
    BlockSpec(
        names=(WEBHOOK_SINK,),
        family="sinks",
        fields=(
            Field("url", kinds=(kinds.STRING,), literal="str"),
            Field("method", literal="str", choices=("GET", "POST", "PUT")),
            _mapping("query_parameters"),
            _mapping("headers"),
            _mapping("json_payload"),
            _operations("json_payload_operations"),
            _mapping("multi_part_encoded_files"),
            _operations("multi_part_encoded_files_operations"),
            _mapping("form_data"),
            _operations("form_data_operations"),
            Field("request_timeout", kinds=(kinds.INTEGER,), literal="positive_int", default=2),
            *_NOTIFICATION_CONTROL,
        ),
        outputs=_NOTIFICATION_OUTPUTS,
    ),
    BlockSpec(
        names=(LOCAL_FILE_SINK,),
        family="sinks",
        fields=(
            Field("content", kinds=(kinds.STRING,), literal=None),
            Field("file_type", literal="str", default="csv", choices=("csv", "json", "txt")),
            Field("output_mode", literal="str", choices=("append_log", "separate_files")),
            Field("target_directory", kinds=(kinds.STRING,), literal="str"),
            Field("file_name_prefix", kinds=(kinds.STRING,), literal="str", default="workflow_output"),
            # The manifest's selector takes the string kind here (sic); the worker checks the value.
            Field("max_entries_per_file", kinds=(kinds.INTEGER, kinds.STRING), literal="positive_int", default=1024),
        ),
        outputs=_FILE_OUTPUTS,
    ),
    BlockSpec(
        names=(EMAIL_NOTIFICATION,),
        family="sinks",
        fields=(
            Field("subject", literal="str"),
            Field("sender_email", kinds=(kinds.STRING,), literal="str"),
            Field("receiver_email", kinds=_RECIPIENT_KINDS, literal="email_addresses"),
            Field("cc_receiver_email", kinds=_RECIPIENT_KINDS, literal="optional_email_addresses", default=None),
            Field("bcc_receiver_email", kinds=_RECIPIENT_KINDS, literal="optional_email_addresses", default=None),
            Field("message", literal="str"),
            _mapping("message_parameters"),
            _operations("message_parameters_operations"),
            _mapping("attachments"),  # name -> selector of a string or bytes
            Field("smtp_server", kinds=(kinds.STRING,), literal="str"),
            Field("sender_email_password", kinds=(kinds.STRING, kinds.SECRET), literal="str"),
            Field("smtp_port", literal="positive_int", default=465),
            *_NOTIFICATION_CONTROL,
        ),
        outputs=_NOTIFICATION_OUTPUTS,
    ),
    BlockSpec(
        names=(SLACK_NOTIFICATION,),
        family="sinks",
        fields=(
            Field("slack_token", kinds=(kinds.STRING, kinds.SECRET), literal="str"),
            Field("channel", kinds=(kinds.STRING,), literal="str"),
            Field("message", literal="str"),
            _mapping("message_parameters"),
            _operations("message_parameters_operations"),
            _mapping("attachments"),  # file name -> selector of a string or bytes (a CSV formatter's output)
            *_BOUNDED_CONTROL,
        ),
        outputs=_NOTIFICATION_OUTPUTS,
    ),
    BlockSpec(
        names=(TWILIO_SMS_NOTIFICATION,),
        family="sinks",
        fields=(
            Field("twilio_account_sid", kinds=(kinds.STRING, kinds.SECRET), literal="str"),
            Field("twilio_auth_token", kinds=(kinds.STRING, kinds.SECRET), literal="str"),
            Field("message", literal="str"),
            Field("sender_number", kinds=(kinds.STRING,), literal="str"),
            Field("receiver_number", kinds=(kinds.STRING,), literal="str"),
            _mapping("message_parameters"),
            _operations("message_parameters_operations"),
            *_BOUNDED_CONTROL,
            Field("length_limit", kinds=(kinds.INTEGER,), literal="positive_int", default=160),
        ),
        outputs=_NOTIFICATION_OUTPUTS,
    ),
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (WEBHOOK_SINK, "json_payload_operations"): validate_operations_map,
    (WEBHOOK_SINK, "multi_part_encoded_files_operations"): validate_operations_map,
    (WEBHOOK_SINK, "form_data_operations"): validate_operations_map,
    (EMAIL_NOTIFICATION, "message_parameters_operations"): validate_operations_map,
    (SLACK_NOTIFICATION, "message_parameters_operations"): validate_operations_map,
    (TWILIO_SMS_NOTIFICATION, "message_parameters_operations"): validate_operations_map,
}
