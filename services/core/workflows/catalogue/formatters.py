"""Formatter blocks: property_definition, expression (switch-case), csv_formatter,
first_non_empty_or_default, string_template, current_time, json_parser, vlm_as_classifier and vlm_as_detector;
beside them the blocks that hand
values to other steps: environment_secrets_store (the worker's allowed environment variables as secrets) and
cache_set / cache_get (a key-value cache the steps of a workflow share on one video source).

``CHECKS``: the checks of their literal fields (the query language's, mostly), ``(block, field) -> check(value, path)``.
"""

from collections.abc import Callable, Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field
from services.core.workflows.query_language import validate_operations, validate_operations_map, validate_switch
from services.core.workflows.secrets import is_variable_name
from services.core.workflows.string_templates import TemplateError, check_declared
from services.core.workflows.vlm import VLM_BLOCKS

PROPERTY_DEFINITION = "roboflow_core/property_definition@v1"
EXPRESSION = "roboflow_core/expression@v1"
CSV_FORMATTER = "roboflow_core/csv_formatter@v1"
FIRST_NON_EMPTY = "roboflow_core/first_non_empty_or_default@v1"
STRING_TEMPLATE = "roboflow_core/string_template@v1"
CURRENT_TIME = "roboflow_core/current_time@v1"
JSON_PARSER = "roboflow_core/json_parser@v1"
ENVIRONMENT_SECRETS_STORE = "roboflow_core/environment_secrets_store@v1"
CACHE_GET = "roboflow_core/cache_get@v1"
CACHE_SET = "roboflow_core/cache_set@v1"
JSON_ERROR_STATUS = "error_status"  # json_parser's own output: no expected field may take its name
# current_time's timezones: the reference's curated IANA names (its manifest refuses any other).
TIMEZONES = (
    "Etc/GMT+12", "Pacific/Pago_Pago", "Pacific/Honolulu", "Pacific/Marquesas", "America/Anchorage",
    "Pacific/Gambier", "America/Los_Angeles", "America/Denver", "America/Phoenix", "America/Chicago",
    "America/Mexico_City", "America/New_York", "America/Bogota", "America/Halifax", "America/Puerto_Rico",
    "America/St_Johns", "America/Sao_Paulo", "Atlantic/South_Georgia", "Atlantic/Azores", "Atlantic/Cape_Verde",
    "UTC", "Europe/London", "Europe/Berlin", "Africa/Lagos", "Europe/Kyiv", "Africa/Cairo", "Africa/Johannesburg",
    "Europe/Moscow", "Europe/Istanbul", "Africa/Nairobi", "Asia/Tehran", "Asia/Dubai", "Asia/Kabul", "Asia/Karachi",
    "Asia/Kolkata", "Asia/Kathmandu", "Asia/Dhaka", "Asia/Yangon", "Asia/Bangkok", "Asia/Shanghai",
    "Australia/Eucla", "Asia/Tokyo", "Australia/Darwin", "Australia/Adelaide", "Australia/Sydney",
    "Pacific/Port_Moresby", "Australia/Lord_Howe", "Pacific/Guadalcanal", "Pacific/Norfolk", "Pacific/Fiji",
    "Pacific/Auckland", "Pacific/Chatham", "Pacific/Tongatapu", "Pacific/Apia", "Pacific/Kiritimati",
)
CSV_TIMESTAMP = "timestamp"  # the column csv_formatter adds itself (reserved)


def check_no_timestamp_column(value: Any, path: str) -> None:
    if isinstance(value, dict) and CSV_TIMESTAMP in value:
        raise InvalidPayloadError(f"field '{path}.{CSV_TIMESTAMP}': the column name {CSV_TIMESTAMP!r} is reserved")


def check_not_empty(value: Any, path: str) -> None:
    if isinstance(value, list) and not value:
        raise InvalidPayloadError(f"field '{path}': expected a list of at least one selector")


def check_columns_operations(value: Any, path: str) -> None:
    check_no_timestamp_column(value, path)
    validate_operations_map(value, path)


def check_timezone(value: Any, path: str) -> None:
    if value not in TIMEZONES:
        raise InvalidPayloadError(f"field '{path}': {value!r} is not one of the supported timezones "
                                  "(the reference's curated IANA names, e.g. 'UTC', 'Europe/Berlin')")


def check_expected_fields(value: Any, path: str) -> None:
    """json_parser: JSON keys as strings, ``error_status`` reserved for the block's own output."""
    if not all(isinstance(name, str) for name in value):
        raise InvalidPayloadError(f"field '{path}': expected a list of JSON field names (strings), got {value!r}")
    if JSON_ERROR_STATUS in value:
        raise InvalidPayloadError(f"field '{path}': {JSON_ERROR_STATUS!r} is reserved (json_parser's own output)")


def json_parser_outputs(step: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``error_status``, then one output of any kind per expected field."""
    fields = step.get("expected_fields")
    names = [name for name in fields if isinstance(name, str)] if isinstance(fields, list) else []
    return {JSON_ERROR_STATUS: (kinds.BOOLEAN,), **{name: (kinds.WILDCARD,) for name in names}}


def secret_output(variable: str) -> str:
    """The output environment_secrets_store gives a variable's value under (the reference lowercases it)."""
    return variable.lower()


def check_secret_variables(value: Any, path: str) -> None:
    """At least one environment variable name, no two of them the same output once lowercased."""
    if not value:
        raise InvalidPayloadError(f"field '{path}': expected a list of at least one environment variable name")
    outputs: dict[str, str] = {}
    for index, name in enumerate(value):
        if not is_variable_name(name):
            raise InvalidPayloadError(f"field '{path}[{index}]': expected an environment variable name "
                                      f"(letters, digits and '_', not starting with a digit), got {name!r}")
        if (other := outputs.setdefault(secret_output(name), name)) != name:
            raise InvalidPayloadError(f"field '{path}[{index}]': {name!r} and {other!r} would both be the output "
                                      f"{secret_output(name)!r}")


def secrets_store_outputs(step: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """One ``secret`` output per variable, named in lower case."""
    names = step.get("variables_storing_secrets")
    listed = [name for name in names if isinstance(name, str)] if isinstance(names, list) else []
    return {secret_output(name): (kinds.SECRET,) for name in listed}


def check_string_template(params: Mapping[str, Any], path: str) -> None:
    """Operations only for declared variables; a literal template that parses and reads only declared ones
    (one fed by a step is checked on each frame instead)."""
    declared = params["data"]
    for name in params["data_operations"]:
        if name not in declared:
            raise InvalidPayloadError(f"field '{path}.data_operations.{name}': operations are given for {name!r}, "
                                      f"which data does not declare (declared: {sorted(declared)})")
    template = params["template"]
    if not template.startswith("$"):
        try:
            check_declared(template, declared)
        except TemplateError as exc:
            raise InvalidPayloadError(f"field '{path}.template': {exc}") from exc


BLOCKS = (
    BlockSpec(
        names=(PROPERTY_DEFINITION, "PropertyDefinition", "PropertyExtraction"),
        family="formatters",
        fields=(
            Field("data", kinds=(kinds.WILDCARD,), literal=None),
            Field("operations", literal="list"),
        ),
        outputs={"output": (kinds.WILDCARD,)},
    ),
    BlockSpec(
        names=(EXPRESSION, "Expression"),
        family="formatters",
        fields=(
            Field("data", kinds=(kinds.WILDCARD,), literal="dict", nested=True),
            Field("data_operations", literal="dict", default={}),
            Field("switch", literal="dict"),
        ),
        outputs={"output": (kinds.WILDCARD,)},
    ),
    BlockSpec(
        names=(CSV_FORMATTER,),
        family="formatters",
        fields=(
            # column -> selector or literal (str, number, bool)
            Field("columns_data", kinds=(kinds.WILDCARD,), literal="dict", nested=True),
            Field("columns_operations", literal="dict", default={}),
        ),
        outputs={"csv_content": (kinds.STRING,)},
    ),
    BlockSpec(
        names=(FIRST_NON_EMPTY, "FirstNonEmptyOrDefault"),
        family="formatters",
        fields=(
            # selectors in priority order (a list of them, never one alone: the manifest's List[Selector()]);
            # the first that is not null on a frame wins, else ``default``
            Field("data", literal="list", nested=True),
            Field("default", default=None),
        ),
        outputs={"output": (kinds.WILDCARD,)},
        accepts_empty=True,
    ),
    BlockSpec(
        names=(STRING_TEMPLATE,),
        family="formatters",
        fields=(
            Field("template", kinds=(kinds.STRING,), literal="str"),
            # variable -> selector or literal; an object as written, never one selector for the whole
            Field("data", literal="dict", default={}, nested=True),
            Field("data_operations", literal="dict", default={}),
        ),
        outputs={"output": (kinds.STRING,)},
        check=check_string_template,
    ),
    BlockSpec(
        names=(CURRENT_TIME,),
        family="formatters",
        fields=(Field("timezone", kinds=(kinds.STRING,), literal="str", default="UTC"),),
        outputs={"timestamp": (kinds.TIMESTAMP,), "iso_string": (kinds.STRING,), "date": (kinds.STRING,),
                 "time": (kinds.STRING,)},
    ),
    BlockSpec(  # an LLM's answer or any JSON text (raw, or in a ```json block) -> its expected fields
        names=(JSON_PARSER,),
        family="formatters",
        fields=(
            Field("raw_json", kinds=(kinds.STRING, kinds.LANGUAGE_MODEL_OUTPUT), literal="str"),
            Field("expected_fields", literal="list"),
        ),
        dynamic_outputs=json_parser_outputs,
    ),
    BlockSpec(  # only the variables the worker's operator allows (WORKER_WORKFLOW_SECRETS), checked at run time
        names=(ENVIRONMENT_SECRETS_STORE,),
        family="formatters",
        fields=(Field("variables_storing_secrets", literal="list"),),
        dynamic_outputs=secrets_store_outputs,
    ),
    BlockSpec(
        names=(CACHE_SET,),
        family="formatters",
        fields=(
            image_field("image", ()),
            Field("key", kinds=(kinds.STRING,), literal="str"),
            Field("value", kinds=(kinds.WILDCARD, kinds.LIST_OF_VALUES), literal=None),
        ),
        outputs={"output": (kinds.WILDCARD,)},
    ),
    BlockSpec(
        names=(CACHE_GET,),
        family="formatters",
        fields=(image_field("image", ()), Field("key", kinds=(kinds.STRING,), literal="str")),
        outputs={"output": (kinds.WILDCARD,)},
    ),
    *VLM_BLOCKS,  # vlm_as_classifier, vlm_as_detector: services.core.workflows.vlm
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (PROPERTY_DEFINITION, "operations"): validate_operations,
    (EXPRESSION, "data_operations"): validate_operations_map,
    (EXPRESSION, "switch"): validate_switch,
    (CSV_FORMATTER, "columns_data"): check_no_timestamp_column,
    (CSV_FORMATTER, "columns_operations"): check_columns_operations,
    (FIRST_NON_EMPTY, "data"): check_not_empty,
    (STRING_TEMPLATE, "data_operations"): validate_operations_map,
    (CURRENT_TIME, "timezone"): check_timezone,
    (JSON_PARSER, "expected_fields"): check_expected_fields,
    (ENVIRONMENT_SECRETS_STORE, "variables_storing_secrets"): check_secret_variables,
}
