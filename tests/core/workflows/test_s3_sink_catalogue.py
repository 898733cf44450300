"""s3_sink@v1's catalogue entry, through the compiler: the manifest's fields, defaults and outputs, bad literals
refused with their JSON path, the keys required at INIT (there is no default credential chain here), and the
reference's own manifests.

The snapshot has no integration definition using the block; its manifests are those of the reference's unit
tests, verbatim in definitions/s3_sink/ (from
roboflow/inference/tests/workflows/unit_tests/core_steps/sinks/test_s3_sink.py, one file per ``test_manifest_parsing_*``
test, named after it), each compiled here in a definition that has the steps and inputs its selectors name."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.catalogue.sinks import S3_SINK
from services.core.workflows.compiler import compile_workflow
from services.core.workflows.secrets import plan_secrets

PATH = "workflow.steps[3]"
REFERENCE = Path(__file__).parent / "definitions" / "s3_sink"
KEYS = {"aws_access_key_id": "AKIDCATALOGUE", "aws_secret_access_key": "catalogue-secret"}


def sink(**fields: Any) -> dict[str, Any]:
    return {"type": S3_SINK, "name": "s3_sink", "content": "$steps.csv_formatter.csv_content",
            "output_mode": "separate_files", "bucket_name": "my-bucket", **KEYS, **fields}


def definition(step: dict[str, Any]) -> dict[str, Any]:
    """The steps and inputs the reference's manifests name: a CSV formatter, a formatter with an ``output``, a
    secrets store giving ``aws_key_id`` and ``aws_secret``, and the inputs ``bucket`` and ``max_entries``."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   {"type": "WorkflowParameter", "name": "bucket", "default_value": "param-bucket"},
                   {"type": "WorkflowParameter", "name": "max_entries", "default_value": 64}],
        "steps": [
            {"type": "roboflow_core/csv_formatter@v1", "name": "csv_formatter", "columns_data": {"camera": "gate"}},
            {"type": "roboflow_core/property_definition@v1", "name": "formatter", "data": "$inputs.image",
             "operations": [{"type": "ExtractImageProperty", "property_name": "width"}]},
            {"type": "roboflow_core/environment_secrets_store@v1", "name": "secrets",
             "variables_storing_secrets": ["AWS_KEY_ID", "AWS_SECRET"]},
            step,
        ],
        "outputs": [{"type": "JsonField", "name": "saved", "selector": "$steps.s3_sink.*"}],
    }


def params(step: dict[str, Any]) -> dict[str, Any]:
    return dict(compile_workflow(definition(step)).step("s3_sink").params)


def refusal(step: dict[str, Any]) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition(step))
    return str(caught.value)


def reference(name: str) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((REFERENCE / f"{name}.json").read_text())
    return manifest


def test_the_defaults_are_the_manifests() -> None:
    assert params(sink()) == {
        "content": "$steps.csv_formatter.csv_content", "file_type": "csv", "output_mode": "separate_files",
        "bucket_name": "my-bucket", "s3_prefix": "", "file_name_prefix": "workflow_output",
        "max_entries_per_file": 1024, **KEYS, "aws_region": None, "aws_session_token": None,
    }


def test_outputs_and_kinds() -> None:
    spec = CATALOGUE[S3_SINK]
    assert spec.outputs == {"error_status": (kinds.BOOLEAN,), "message": (kinds.STRING,)}
    assert spec.field("content").kinds == (kinds.STRING, kinds.IMAGE)  # type: ignore[union-attr]
    assert spec.field("aws_secret_access_key").kinds == (kinds.STRING, kinds.SECRET)  # type: ignore[union-attr]


def test_an_image_may_be_the_content() -> None:
    assert params(sink(content="$inputs.image"))["content"] == "$inputs.image"


@pytest.mark.parametrize(("fields", "expected"), [
    ({"file_type": "xml"}, f"field '{PATH}.file_type': 'xml' is not one of 'csv', 'json', 'txt'"),
    ({"output_mode": "overwrite"},
     f"field '{PATH}.output_mode': 'overwrite' is not one of 'append_log', 'separate_files'"),
    ({"max_entries_per_file": 0}, f"field '{PATH}.max_entries_per_file': expected a positive integer"),
    ({"max_entries_per_file": "10"}, f"field '{PATH}.max_entries_per_file': expected a positive integer"),
    ({"bucket_name": "logs/../other"}, f"field '{PATH}.bucket_name': expected an S3 bucket name"),
    ({"bucket_name": "ab"}, f"field '{PATH}.bucket_name': expected an S3 bucket name"),
    ({"bucket_name": 7}, f"field '{PATH}.bucket_name': expected an S3 bucket name"),
    ({"aws_region": "eu-west-1.evil.example"}, f"field '{PATH}.aws_region': expected a region name"),
    ({"s3_prefix": 5}, f"field '{PATH}.s3_prefix': expected a string"),
    ({"aws_session_token": 5}, f"field '{PATH}.aws_session_token': expected a string or null"),
    ({"content": "a,b\n1,2"}, f"field '{PATH}.content' takes a selector of"),
    ({"content": "$inputs.bucket"}, f"field '{PATH}.content'"),
    ({"file_type": "$steps.csv_formatter.csv_content"}, f"field '{PATH}.file_type' takes a literal value"),
    ({"output_mode": None}, f"field '{PATH}.output_mode'"),
])
def test_bad_literals_are_refused_with_their_path(fields: dict[str, Any], expected: str) -> None:
    assert expected in refusal(sink(**fields))


def test_output_mode_is_required() -> None:
    step = sink()
    del step["output_mode"]

    assert f"field '{PATH}.output_mode' is required" in refusal(step)


@pytest.mark.parametrize("missing", ["aws_access_key_id", "aws_secret_access_key"])
@pytest.mark.parametrize("given", [None, "", "left out"])
def test_the_keys_are_required_at_init(missing: str, given: str | None) -> None:
    step = sink(**{missing: given})
    if given == "left out":
        del step[missing]

    assert refusal(step).startswith(
        f"field '{PATH}.{missing}' is required here: this worker has no default AWS credential chain (the reference "
        "falls back to boto3's); give aws_access_key_id and aws_secret_access_key")


def test_the_keys_are_secrets_of_the_plan() -> None:
    plan = compile_workflow(definition(sink(aws_session_token="session-tok")))

    assert {"AKIDCATALOGUE", "catalogue-secret", "session-tok"} <= set(plan_secrets(plan))


def test_the_references_valid_manifest_compiles_once_given_keys() -> None:
    manifest = reference("when_input_is_valid")

    assert re.search(rf"field '{re.escape(PATH)}\.aws_access_key_id' is required here", refusal(manifest))
    assert params({**manifest, **KEYS}) == {
        "content": "$steps.csv_formatter.csv_content", "file_type": "csv", "output_mode": "separate_files",
        "bucket_name": "my-bucket", "s3_prefix": "logs/detections", "file_name_prefix": "run",
        "max_entries_per_file": 512, **KEYS, "aws_region": None, "aws_session_token": None,
    }


def test_the_references_manifest_with_selector_credentials_compiles() -> None:
    assert params(reference("with_selector_credentials")) == {
        "content": "$steps.formatter.output", "file_type": "json", "output_mode": "append_log",
        "bucket_name": "param-bucket", "s3_prefix": "", "file_name_prefix": "workflow_output",
        "max_entries_per_file": 64, "aws_access_key_id": "$steps.secrets.aws_key_id",
        "aws_secret_access_key": "$steps.secrets.aws_secret", "aws_region": "us-east-1", "aws_session_token": None,
    }


@pytest.mark.parametrize(("name", "expected"), [
    ("rejects_max_entries_per_file_of_zero", f"field '{PATH}.max_entries_per_file': expected a positive integer"),
    ("rejects_negative_max_entries_per_file", f"field '{PATH}.max_entries_per_file': expected a positive integer"),
    ("rejects_invalid_file_type", f"field '{PATH}.file_type': 'xml' is not one of"),
    ("rejects_invalid_output_mode", f"field '{PATH}.output_mode': 'overwrite' is not one of"),
])
def test_the_manifests_the_reference_rejects_are_refused(name: str, expected: str) -> None:
    assert expected in refusal({**reference(name), **KEYS})
