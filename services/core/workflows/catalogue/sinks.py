"""Sink blocks: webhook, local file, e-mail (SMTP), Slack and Twilio SMS notifications, S3 uploads.

Field names, defaults and outputs follow the reference's manifests (``core_steps/sinks/...``).
E-mail receivers are checked by a literal check registered here; ``CHECKS`` holds the query-language
checks of the ``*_operations`` fields, ``(block, field) -> check(value, path)``.

The v2 e-mail and SMS blocks choose a provider (``email_provider``, ``sms_provider``) whose default,
"Roboflow Managed API Key", sends through Roboflow's hosted e-mail / SMS proxy. There is no such proxy
here: that provider, given or left as the default, is refused at INIT, naming the field and what to give
instead ("Custom SMTP" / "Custom Twilio" and their fields). The custom provider's fields are optional in
the manifests but required by it: one left out (or given as null or "") is refused at INIT; one fed by a
step's output is checked when the step runs (the reference's ``error_status`` and message).

``s3_sink@v1`` without ``aws_access_key_id`` or ``aws_secret_access_key`` would, in the reference, fall back to
boto3's default credential chain (the server's environment, its ``~/.aws``, an instance role). There is none
here: either left out (or given as null or "") is refused at INIT, naming the field; one fed by a step's output is
checked when the step runs. Its ``content`` may also be an image (uploaded as a JPEG object), its bucket name and
region are checked as S3 names them, and ``aws_session_token`` (not in the manifest) signs with temporary
credentials.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, is_int, register_literals
from services.core.workflows.query_language import validate_operations_map

WEBHOOK_SINK = "roboflow_core/webhook_sink@v1"
LOCAL_FILE_SINK = "roboflow_core/local_file_sink@v1"
EMAIL_NOTIFICATION = "roboflow_core/email_notification@v1"
EMAIL_NOTIFICATION_V2 = "roboflow_core/email_notification@v2"
SLACK_NOTIFICATION = "roboflow_core/slack_notification@v1"
TWILIO_SMS_NOTIFICATION = "roboflow_core/twilio_sms_notification@v1"
TWILIO_SMS_NOTIFICATION_V2 = "roboflow_core/twilio_sms_notification@v2"
MAX_COOLDOWN_S = 900  # the Slack and Twilio v1 manifests' bound (their cache keeps a cooldown 15 minutes)
MANAGED_PROVIDER = "Roboflow Managed API Key"  # the v2 blocks' default: Roboflow's hosted proxy, not here
CUSTOM_SMTP = "Custom SMTP"
CUSTOM_TWILIO = "Custom Twilio"
SMTP_FIELDS = ("sender_email", "smtp_server", "sender_email_password")  # what Custom SMTP needs
TWILIO_FIELDS = ("twilio_account_sid", "twilio_auth_token", "sender_number")  # what Custom Twilio needs
S3_SINK = "roboflow_core/s3_sink@v1"
S3_CREDENTIALS = ("aws_access_key_id", "aws_secret_access_key")  # what s3_sink needs (no default chain here)
# S3's bucket names (3 to 63 characters, lower case, digits, dots, hyphens), widened to the legacy ones (up to
# 255, upper case and underscores) some S3-compatible stores still accept; never a path's '/' or a dot segment.
S3_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}")
# A region as AWS (us-east-1) and S3-compatible stores (MinIO's us-east-1, R2's auto, Ceph's default) name it.
S3_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def is_media_urls(value: Any) -> bool:
    """twilio_sms_notification@v2's literal ``media_url``: null, a URL or a list of them."""
    items = [value] if isinstance(value, str) else value
    return value is None or (isinstance(items, list) and all(isinstance(item, str) for item in items))


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
    "optional_media_urls": (is_media_urls, "a URL, a list of URLs or null"),
    "s3_bucket": (lambda value: isinstance(value, str) and S3_BUCKET.fullmatch(value) is not None,
                  "an S3 bucket name (3 to 255 letters, digits, '.', '-' or '_', starting with a letter or digit)"),
    "optional_s3_region": (lambda value: value is None or (isinstance(value, str) and (
        value == "" or S3_REGION.fullmatch(value) is not None)), "a region name such as 'us-east-1', or null"),
}
register_literals(_LITERAL_CHECKS)

_RECIPIENT_KINDS = (kinds.STRING, kinds.LIST_OF_VALUES)
_CREDENTIAL_KINDS = (kinds.STRING, kinds.SECRET)


def _mapping(name: str) -> Field:
    """An object whose values may each be a selector or a literal (``{"api_key": "$inputs.api_key"}``)."""
    return Field(name, literal="dict", default={}, nested=True)


def _operations(name: str) -> Field:
    return Field(name, literal="dict", default={})


def is_missing(value: Any) -> bool:
    """A custom provider's field the step does not give (a selector's value is checked when the step runs)."""
    return value is None or value == ""


def _custom_provider_only(field: str, custom: str, needed: tuple[str, ...],
                          service: str) -> Callable[[Mapping[str, Any], str], None]:
    def check(params: Mapping[str, Any], path: str) -> None:
        if params[field] != custom:  # the field's choices leave only the managed provider
            raise InvalidPayloadError(
                f"field '{path}.{field}': {MANAGED_PROVIDER!r} (the default) sends through Roboflow's hosted {service} "
                f"proxy, which this manager does not have; set {field} to {custom!r} and give {_listed(needed)}")
        for name in needed:
            if is_missing(params[name]):
                raise InvalidPayloadError(f"field '{path}.{name}' is required when {field} is {custom!r} "
                                          f"(give {_listed(needed)})")
    return check


def _s3_credentials_given(params: Mapping[str, Any], path: str) -> None:
    for name in S3_CREDENTIALS:
        if is_missing(params[name]):
            raise InvalidPayloadError(
                f"field '{path}.{name}' is required here: this worker has no default AWS credential chain (the "
                f"reference falls back to boto3's); give {_listed(S3_CREDENTIALS)}, e.g. from WorkflowParameters or "
                "an environment_secrets_store step")


def _listed(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _provider(name: str, custom: str) -> Field:
    return Field(name, literal="str", default=MANAGED_PROVIDER, choices=(MANAGED_PROVIDER, custom))


def _optional(name: str, field_kinds: tuple[str, ...]) -> Field:
    """A custom provider's field: optional in the manifest, required by the provider (``_custom_provider_only``)."""
    return Field(name, kinds=field_kinds, literal="optional_str", default=None)


# A notification's text: ``{{ $parameters.x }}`` placeholders filled from the parameters, after their operations.
_MESSAGE = (Field("message", literal="str"), _mapping("message_parameters"),
            _operations("message_parameters_operations"))
_RECEIVER = Field("receiver_email", kinds=_RECIPIENT_KINDS, literal="email_addresses")
_CC_BCC = (
    Field("cc_receiver_email", kinds=_RECIPIENT_KINDS, literal="optional_email_addresses", default=None),
    Field("bcc_receiver_email", kinds=_RECIPIENT_KINDS, literal="optional_email_addresses", default=None),
)
_SMTP_PORT = Field("smtp_port", literal="positive_int", default=465)

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
            _RECEIVER,
            *_CC_BCC,
            *_MESSAGE,
            _mapping("attachments"),  # name -> selector of a string or bytes
            Field("smtp_server", kinds=(kinds.STRING,), literal="str"),
            Field("sender_email_password", kinds=_CREDENTIAL_KINDS, literal="str"),
            _SMTP_PORT,
            *_NOTIFICATION_CONTROL,
        ),
        outputs=_NOTIFICATION_OUTPUTS,
    ),
    BlockSpec(
        names=(EMAIL_NOTIFICATION_V2,),
        family="sinks",
        fields=(
            _provider("email_provider", CUSTOM_SMTP),
            Field("subject", literal="str"),
            _RECEIVER,
            *_MESSAGE,
            _optional("sender_email", (kinds.STRING,)),
            _optional("smtp_server", (kinds.STRING,)),
            _optional("sender_email_password", _CREDENTIAL_KINDS),
            *_CC_BCC,
            _SMTP_PORT,
            _mapping("attachments"),  # name -> selector of a string, bytes or an image (sent as JPEG)
            *_NOTIFICATION_CONTROL,
        ),
        outputs=_NOTIFICATION_OUTPUTS,
        check=_custom_provider_only("email_provider", CUSTOM_SMTP, SMTP_FIELDS, "e-mail"),
    ),
    BlockSpec(
        names=(SLACK_NOTIFICATION,),
        family="sinks",
        fields=(
            Field("slack_token", kinds=_CREDENTIAL_KINDS, literal="str"),
            Field("channel", kinds=(kinds.STRING,), literal="str"),
            *_MESSAGE,
            _mapping("attachments"),  # file name -> selector of a string or bytes (a CSV formatter's output)
            *_BOUNDED_CONTROL,
        ),
        outputs=_NOTIFICATION_OUTPUTS,
    ),
    BlockSpec(
        names=(TWILIO_SMS_NOTIFICATION,),
        family="sinks",
        fields=(
            Field("twilio_account_sid", kinds=_CREDENTIAL_KINDS, literal="str"),
            Field("twilio_auth_token", kinds=_CREDENTIAL_KINDS, literal="str"),
            Field("sender_number", kinds=(kinds.STRING,), literal="str"),
            Field("receiver_number", kinds=(kinds.STRING,), literal="str"),
            *_MESSAGE,
            *_BOUNDED_CONTROL,
            Field("length_limit", kinds=(kinds.INTEGER,), literal="positive_int", default=160),
        ),
        outputs=_NOTIFICATION_OUTPUTS,
    ),
    BlockSpec(
        names=(TWILIO_SMS_NOTIFICATION_V2,),
        family="sinks",
        fields=(
            _provider("sms_provider", CUSTOM_TWILIO),
            Field("receiver_number", kinds=(kinds.STRING,), literal="str"),
            *_MESSAGE,
            # MMS media: URLs Twilio fetches (an image is refused when the step runs: see the worker's block).
            Field("media_url", kinds=(kinds.STRING, kinds.LIST_OF_VALUES, kinds.IMAGE), literal="optional_media_urls",
                  default=None),
            _optional("twilio_account_sid", _CREDENTIAL_KINDS),
            _optional("twilio_auth_token", _CREDENTIAL_KINDS),
            _optional("sender_number", (kinds.STRING,)),
            *_NOTIFICATION_CONTROL,  # v2's cooldown has no upper bound and no session key
        ),
        outputs=_NOTIFICATION_OUTPUTS,
        check=_custom_provider_only("sms_provider", CUSTOM_TWILIO, TWILIO_FIELDS, "SMS"),
    ),
    BlockSpec(
        names=(S3_SINK,),
        family="sinks",
        fields=(
            # A string (a formatter's CSV or JSON, any text), or an image: one JPEG object (not in the manifest).
            Field("content", kinds=(kinds.STRING, kinds.IMAGE), literal=None),
            Field("file_type", literal="str", default="csv", choices=("csv", "json", "txt")),
            Field("output_mode", literal="str", choices=("append_log", "separate_files")),
            Field("bucket_name", kinds=(kinds.STRING,), literal="s3_bucket"),
            Field("s3_prefix", kinds=(kinds.STRING,), literal="str", default=""),
            Field("file_name_prefix", kinds=(kinds.STRING,), literal="str", default="workflow_output"),
            # The manifest's selector takes the string kind here (sic), as local_file_sink's; the worker checks it.
            Field("max_entries_per_file", kinds=(kinds.INTEGER, kinds.STRING), literal="positive_int", default=1024),
            Field("aws_access_key_id", kinds=_CREDENTIAL_KINDS, literal="optional_str", default=None),
            Field("aws_secret_access_key", kinds=_CREDENTIAL_KINDS, literal="optional_str", default=None),
            Field("aws_region", kinds=(kinds.STRING,), literal="optional_s3_region", default=None),
            Field("aws_session_token", kinds=_CREDENTIAL_KINDS, literal="optional_str", default=None),
        ),
        outputs=_FILE_OUTPUTS,
        check=_s3_credentials_given,
    ),
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (WEBHOOK_SINK, "json_payload_operations"): validate_operations_map,
    (WEBHOOK_SINK, "multi_part_encoded_files_operations"): validate_operations_map,
    (WEBHOOK_SINK, "form_data_operations"): validate_operations_map,
    **{(block, "message_parameters_operations"): validate_operations_map
       for block in (EMAIL_NOTIFICATION, EMAIL_NOTIFICATION_V2, SLACK_NOTIFICATION, TWILIO_SMS_NOTIFICATION,
                     TWILIO_SMS_NOTIFICATION_V2)},
}
