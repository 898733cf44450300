"""Sink blocks: webhook, local file and e-mail (SMTP) notifications.

Field names, defaults and outputs follow the reference's manifests (``core_steps/sinks/...``). The
``*_operations`` fields hold query-language chains, applied by the worker; here they are only objects.
"""

from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field

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
_NOTIFICATION_OUTPUTS = {
    "error_status": (kinds.BOOLEAN,),
    "throttling_status": (kinds.BOOLEAN,),
    "message": (kinds.STRING,),
}

WEBHOOK = BlockSpec(
    names=("roboflow_core/webhook_sink@v1",),
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
)

LOCAL_FILE = BlockSpec(
    names=("roboflow_core/local_file_sink@v1",),
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
    outputs={"error_status": (kinds.BOOLEAN,), "message": (kinds.STRING,)},
)

EMAIL = BlockSpec(
    names=("roboflow_core/email_notification@v1",),
    family="sinks",
    fields=(
        Field("subject", literal="str"),
        Field("sender_email", kinds=(kinds.STRING,), literal="str"),
        # A string or a non-empty list of strings; the worker checks the shape.
        Field("receiver_email", kinds=_RECIPIENT_KINDS, literal="any"),
        Field("cc_receiver_email", kinds=_RECIPIENT_KINDS, literal="any", default=None),
        Field("bcc_receiver_email", kinds=_RECIPIENT_KINDS, literal="any", default=None),
        Field("message", literal="str"),
        _mapping("message_parameters"),
        _operations("message_parameters_operations"),
        _mapping("attachments"),
        Field("smtp_server", kinds=(kinds.STRING,), literal="str"),
        Field("sender_email_password", kinds=(kinds.STRING, kinds.SECRET), literal="str"),
        Field("smtp_port", literal="positive_int", default=465),
        *_NOTIFICATION_CONTROL,
    ),
    outputs=_NOTIFICATION_OUTPUTS,
)

BLOCKS: tuple[BlockSpec, ...] = (WEBHOOK, LOCAL_FILE, EMAIL)
