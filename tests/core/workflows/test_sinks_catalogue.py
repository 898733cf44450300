"""The sink blocks' catalogue entries, through the compiler: names, defaults, outputs, nested selectors
and the refusals of bad literal values with their JSON path."""

import json
from pathlib import Path
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.catalogue.sinks import CHECKS, EMAIL_NOTIFICATION, WEBHOOK_SINK
from services.core.workflows.compiler import compile_workflow

WEBHOOK = {"type": "roboflow_core/webhook_sink@v1", "name": "sink", "url": "https://example.com/hook",
           "method": "POST"}
LOCAL_FILE = {"type": "roboflow_core/local_file_sink@v1", "name": "sink", "content": "$steps.csv.csv_content",
              "output_mode": "append_log", "target_directory": "logs"}
EMAIL = {"type": "roboflow_core/email_notification@v1", "name": "sink", "subject": "Alert",
         "sender_email": "a@example.com", "receiver_email": "b@example.com", "message": "Hi",
         "smtp_server": "smtp.example.com", "sender_email_password": "$inputs.password"}


def definition(sink: dict[str, Any], parameters: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   {"type": "WorkflowParameter", "name": "password", "default_value": "pw"}, *parameters],
        "steps": [
            {"type": "roboflow_core/csv_formatter@v1", "name": "csv", "columns_data": {"camera": "gate"}},
            sink,
        ],
        "outputs": [{"type": "JsonField", "name": name, "selector": f"$steps.sink.{name}"}
                    for name in ("error_status", "message")],
    }


def params(sink: dict[str, Any], *parameters: dict[str, Any]) -> dict[str, Any]:
    return dict(compile_workflow(definition(sink, parameters)).step("sink").params)


def refusal(sink: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition(sink))
    return str(caught.value)


def test_webhook_defaults_are_the_manifests() -> None:
    assert params(WEBHOOK) == {
        "url": "https://example.com/hook", "method": "POST", "query_parameters": {}, "headers": {},
        "json_payload": {}, "json_payload_operations": {}, "multi_part_encoded_files": {},
        "multi_part_encoded_files_operations": {}, "form_data": {}, "form_data_operations": {},
        "request_timeout": 2, "fire_and_forget": True, "disable_sink": False, "cooldown_seconds": 5,
    }


def test_local_file_defaults_are_the_manifests() -> None:
    assert params(LOCAL_FILE) == {
        "content": "$steps.csv.csv_content", "file_type": "csv", "output_mode": "append_log",
        "target_directory": "logs", "file_name_prefix": "workflow_output", "max_entries_per_file": 1024,
    }


def test_email_defaults_are_the_manifests() -> None:
    assert params(EMAIL) == {
        "subject": "Alert", "sender_email": "a@example.com", "receiver_email": "b@example.com",
        "cc_receiver_email": None, "bcc_receiver_email": None, "message": "Hi", "message_parameters": {},
        "message_parameters_operations": {}, "attachments": {}, "smtp_server": "smtp.example.com",
        "sender_email_password": "pw", "smtp_port": 465, "fire_and_forget": True, "disable_sink": False,
        "cooldown_seconds": 5,
    }


@pytest.mark.parametrize("name", ["roboflow_core/webhook_sink@v1", "roboflow_core/email_notification@v1"])
def test_notification_outputs(name: str) -> None:
    assert CATALOGUE[name].outputs == {"error_status": ("boolean",), "throttling_status": ("boolean",),
                                       "message": ("string",)}
    assert CATALOGUE["roboflow_core/local_file_sink@v1"].outputs == {"error_status": ("boolean",),
                                                                     "message": ("string",)}


def test_nested_values_may_be_selectors_or_parameters() -> None:
    compiled = params({**WEBHOOK, "headers": {"X-Api-Key": "$inputs.key", "X-Fixed": 1},
                       "json_payload": {"csv": "$steps.csv.csv_content", "static": [1, 2]}},
                      {"type": "WorkflowParameter", "name": "key", "default_value": "k-1"})

    assert compiled["headers"] == {"X-Api-Key": "k-1", "X-Fixed": 1}
    assert compiled["json_payload"] == {"csv": "$steps.csv.csv_content", "static": [1, 2]}


def test_receivers_may_be_a_list_given_by_a_parameter() -> None:
    compiled = params({**EMAIL, "receiver_email": "$inputs.to", "cc_receiver_email": ["c@example.com"]},
                      {"type": "WorkflowParameter", "name": "to", "default_value": ["b@example.com", "d@example.com"]})

    assert compiled["receiver_email"] == ["b@example.com", "d@example.com"]
    assert compiled["cc_receiver_email"] == ["c@example.com"]


@pytest.mark.parametrize(("sink", "expected"), [
    ({**WEBHOOK, "method": "DELETE"}, "field 'workflow.steps[1].method': 'DELETE' is not one of 'GET', 'POST', 'PUT'"),
    ({**WEBHOOK, "cooldown_seconds": -1}, "field 'workflow.steps[1].cooldown_seconds': expected an integer >= 0"),
    ({**WEBHOOK, "request_timeout": 0}, "field 'workflow.steps[1].request_timeout': expected a positive integer"),
    ({**WEBHOOK, "fire_and_forget": "yes"}, "field 'workflow.steps[1].fire_and_forget': expected true or false"),
    ({**WEBHOOK, "headers": "X-A: 1"}, "field 'workflow.steps[1].headers': expected an object"),
    ({**WEBHOOK, "json_payload_operations": []}, "field 'workflow.steps[1].json_payload_operations': expected an"),
    ({**WEBHOOK, "method": "$steps.csv.csv_content"}, "field 'workflow.steps[1].method' takes a literal value"),
    ({**WEBHOOK, "url": "$steps.nowhere.url"},
     "field 'workflow.steps[1].url': selector '$steps.nowhere.url' names no step"),
    ({**LOCAL_FILE, "file_type": "xml"},
     "field 'workflow.steps[1].file_type': 'xml' is not one of 'csv', 'json', 'txt'"),
    ({**LOCAL_FILE, "output_mode": "rotate"}, "field 'workflow.steps[1].output_mode': 'rotate' is not one of"),
    ({**LOCAL_FILE, "max_entries_per_file": 0}, "field 'workflow.steps[1].max_entries_per_file': expected a positive"),
    ({**LOCAL_FILE, "content": "a,b"}, "field 'workflow.steps[1].content' takes a selector of string"),
    ({**LOCAL_FILE, "content": "$inputs.image"}, "gives image, but the field takes string"),
    ({k: v for k, v in LOCAL_FILE.items() if k != "output_mode"}, "field 'workflow.steps[1].output_mode' is required"),
    ({**EMAIL, "receiver_email": []}, "field 'workflow.steps[1].receiver_email': expected an e-mail address or a"),
    ({**EMAIL, "receiver_email": 5}, "field 'workflow.steps[1].receiver_email': expected an e-mail address or a"),
    ({**EMAIL, "bcc_receiver_email": [""]}, "field 'workflow.steps[1].bcc_receiver_email': expected an e-mail"),
    ({**EMAIL, "smtp_port": "465"}, "field 'workflow.steps[1].smtp_port': expected a positive integer"),
    ({**EMAIL, "subject": "$steps.csv.csv_content"}, "field 'workflow.steps[1].subject' takes a literal value"),
    ({k: v for k, v in EMAIL.items() if k != "smtp_server"}, "field 'workflow.steps[1].smtp_server' is required"),
])
def test_bad_literals_are_refused_with_their_path(sink: dict[str, Any], expected: str) -> None:
    assert expected in refusal(sink)


@pytest.mark.parametrize(("block", "field"), [
    (WEBHOOK_SINK, "json_payload_operations"), (WEBHOOK_SINK, "multi_part_encoded_files_operations"),
    (WEBHOOK_SINK, "form_data_operations"), (EMAIL_NOTIFICATION, "message_parameters_operations"),
])
def test_operations_fields_are_checked_as_query_language(block: str, field: str) -> None:
    check = CHECKS[(block, field)]
    check({"count": [{"type": "SequenceLength"}]}, "workflow.steps[1]." + field)

    with pytest.raises(InvalidPayloadError, match=rf"workflow\.steps\[1\]\.{field}\.count"):
        check({"count": [{"type": "NoSuchOperation"}]}, "workflow.steps[1]." + field)


def test_the_published_delta_filter_workflow_compiles_with_its_file_sink() -> None:
    path = Path(__file__).parent / "definitions" / "workflow_with_delta_filter.json"

    plan = compile_workflow(json.loads(path.read_text()), parameters={"target_directory": "reports"})

    assert plan.step("reports_sink").params == {
        "content": "$steps.csv_formatter.csv_content", "file_type": "csv", "output_mode": "append_log",
        "target_directory": "reports", "file_name_prefix": "csv_containing_changes", "max_entries_per_file": 1024,
    }
