"""email_notification@v2's and twilio_sms_notification@v2's catalogue entries, through the compiler: the manifests'
fields and defaults, the managed provider ("Roboflow Managed API Key", Roboflow's hosted proxy, the default) refused
at INIT naming its field, the custom provider's fields required at INIT unless a step feeds them, and the
reference's integration definitions (verbatim in definitions/email_notification_v2/, from
roboflow/inference/tests/workflows/integration_tests/execution/control_flow_with_side_effects/workflow_definitions;
the ones whose other blocks or inputs this manager has)."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.catalogue import CATALOGUE
from services.core.workflows.catalogue.sinks import CHECKS, EMAIL_NOTIFICATION_V2, TWILIO_SMS_NOTIFICATION_V2
from services.core.workflows.compiler import compile_workflow

PATH = "workflow.steps[1]"
STEP = re.escape(PATH)
SMTP = {"sender_email": "alerts@example.com", "smtp_server": "smtp.example.com", "sender_email_password": "pw"}
TWILIO = {"twilio_account_sid": "AC-1", "twilio_auth_token": "tok", "sender_number": "+15550001111"}
REFERENCE_DEFINITIONS = sorted((Path(__file__).parent / "definitions" / "email_notification_v2").glob("*.json"))


def email(**fields: Any) -> dict[str, Any]:
    return {"type": EMAIL_NOTIFICATION_V2, "name": "sink", "subject": "Alert", "receiver_email": "ops@example.com",
            "message": "Hi", **fields}


def sms(**fields: Any) -> dict[str, Any]:
    return {"type": TWILIO_SMS_NOTIFICATION_V2, "name": "sink", "receiver_number": "+15550002222",
            "message": "Hi", **fields}


def definition(sink: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "secret"}],
        "steps": [{"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
                   "variables_storing_secrets": ["SMTP_PASSWORD", "SENDER"]}, sink],
        "outputs": [{"type": "JsonField", "name": "sent", "selector": "$steps.sink.message"}],
    }


def params(sink: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    return dict(compile_workflow(definition(sink), parameters=parameters).step("sink").params)


def refusal(sink: dict[str, Any], **parameters: Any) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        compile_workflow(definition(sink), parameters=parameters)
    return str(caught.value)


CONTROL = {"fire_and_forget": True, "disable_sink": False, "cooldown_seconds": 5}


def test_email_v2_defaults_are_the_manifests() -> None:
    assert params(email(email_provider="Custom SMTP", **SMTP)) == {
        "email_provider": "Custom SMTP", "subject": "Alert", "receiver_email": "ops@example.com", "message": "Hi",
        "message_parameters": {}, "message_parameters_operations": {}, **SMTP, "cc_receiver_email": None,
        "bcc_receiver_email": None, "smtp_port": 465, "attachments": {}, **CONTROL,
    }


def test_twilio_v2_defaults_are_the_manifests() -> None:
    assert params(sms(sms_provider="Custom Twilio", **TWILIO)) == {
        "sms_provider": "Custom Twilio", "receiver_number": "+15550002222", "message": "Hi", "message_parameters": {},
        "message_parameters_operations": {}, "media_url": None, **TWILIO, **CONTROL,
    }


@pytest.mark.parametrize("name", [EMAIL_NOTIFICATION_V2, TWILIO_SMS_NOTIFICATION_V2])
def test_outputs_and_operations_checks_are_the_v1_s(name: str) -> None:
    assert CATALOGUE[name].outputs == {"error_status": (kinds.BOOLEAN,), "throttling_status": (kinds.BOOLEAN,),
                                       "message": (kinds.STRING,)}
    with pytest.raises(InvalidPayloadError, match=r"steps\[1\]\.message_parameters_operations\.n"):
        CHECKS[(name, "message_parameters_operations")]({"n": [{"type": "NoSuchOperation"}]},
                                                        "workflow.steps[1].message_parameters_operations")


EMAIL_MANAGED = (rf"^field '{STEP}.email_provider': 'Roboflow Managed API Key' \(the default\) sends through "
                 r"Roboflow's hosted e-mail proxy, which this manager does not have; set email_provider to "
                 r"'Custom SMTP' and give sender_email, smtp_server and sender_email_password$")
SMS_MANAGED = (rf"^field '{STEP}.sms_provider': 'Roboflow Managed API Key' \(the default\) sends through Roboflow's "
               r"hosted SMS proxy, which this manager does not have; set sms_provider to 'Custom Twilio' and give "
               r"twilio_account_sid, twilio_auth_token and sender_number$")


@pytest.mark.parametrize(("sink", "expected"), [
    (email(email_provider="Roboflow Managed API Key"), EMAIL_MANAGED),
    (email(), EMAIL_MANAGED),  # the manifest's default
    (email(**SMTP), EMAIL_MANAGED),  # SMTP fields alone do not choose the provider
    (sms(sms_provider="Roboflow Managed API Key"), SMS_MANAGED),
    (sms(), SMS_MANAGED),
    (sms(**TWILIO), SMS_MANAGED),
])
def test_the_managed_provider_is_refused_naming_its_field(sink: dict[str, Any], expected: str) -> None:
    assert re.search(expected, refusal(sink))


@pytest.mark.parametrize("field", list(SMTP))
@pytest.mark.parametrize("value", [None, "", "$inputs.secret"])
def test_custom_smtp_needs_its_fields_at_init(field: str, value: Any) -> None:
    message = refusal(email(email_provider="Custom SMTP", **{**SMTP, field: value}), secret="")

    assert message == (f"field 'workflow.steps[1].{field}' is required when email_provider is 'Custom SMTP' "
                       "(give sender_email, smtp_server and sender_email_password)")


@pytest.mark.parametrize("field", list(TWILIO))
def test_custom_twilio_needs_its_fields_at_init(field: str) -> None:
    step = {key: value for key, value in sms(sms_provider="Custom Twilio", **TWILIO).items() if key != field}

    assert refusal(step) == (f"field 'workflow.steps[1].{field}' is required when sms_provider is 'Custom Twilio' "
                             "(give twilio_account_sid, twilio_auth_token and sender_number)")


def test_fields_a_step_feeds_are_checked_when_it_runs() -> None:
    compiled = params(email(email_provider="Custom SMTP",
                            **{**SMTP, "sender_email_password": "$steps.vault.smtp_password"}))
    assert compiled["sender_email_password"] == "$steps.vault.smtp_password"
    compiled = params(sms(sms_provider="Custom Twilio", **{**TWILIO, "twilio_auth_token": "$steps.vault.sender"}))
    assert compiled["twilio_auth_token"] == "$steps.vault.sender"


@pytest.mark.parametrize("media_url", ["https://example.com/a.jpg", ["https://example.com/a.jpg", "https://b/c.png"],
                                       "$inputs.image", []])
def test_media_url_takes_urls_and_image_selectors(media_url: Any) -> None:
    assert params(sms(sms_provider="Custom Twilio", media_url=media_url, **TWILIO))["media_url"] == media_url


@pytest.mark.parametrize(("sink", "expected"), [
    (email(email_provider="SES", **SMTP), f"field '{PATH}.email_provider': 'SES' is not one of "
                                          "'Roboflow Managed API Key', 'Custom SMTP'"),
    (sms(sms_provider="Custom SMTP", **TWILIO), f"field '{PATH}.sms_provider': 'Custom SMTP' is not one of"),
    (email(email_provider="Custom SMTP", **{**SMTP, "smtp_port": "465"}),
     f"field '{PATH}.smtp_port': expected a positive integer"),
    (email(email_provider="Custom SMTP", receiver_email=[], **SMTP), f"field '{PATH}.receiver_email': expected an"),
    (email(email_provider="Custom SMTP", **{**SMTP, "smtp_server": 5}),
     f"field '{PATH}.smtp_server': expected a string or null"),
    (email(email_provider="Custom SMTP", **{**SMTP, "sender_email": "$steps.vault.sender"}),
     f"field '{PATH}.sender_email': '$steps.vault.sender' gives secret, but the field takes string"),
    (sms(sms_provider="Custom Twilio", media_url=5, **TWILIO), f"field '{PATH}.media_url': expected a URL, a list of"),
    (sms(sms_provider="Custom Twilio", media_url=["https://a/b.jpg", 5], **TWILIO),
     f"field '{PATH}.media_url': expected a URL, a list of"),
    (sms(sms_provider="Custom Twilio", cooldown_seconds=-1, **TWILIO),
     f"field '{PATH}.cooldown_seconds': expected an integer >= 0"),
    (sms(sms_provider="Custom Twilio", **{**TWILIO, "sender_number": "$inputs.image"}),
     "gives image, but the field takes string"),
])
def test_bad_literals_are_refused_with_their_path(sink: dict[str, Any], expected: str) -> None:
    assert expected in refusal(sink)


def test_v2_s_cooldown_has_no_upper_bound() -> None:
    assert params(sms(sms_provider="Custom Twilio", cooldown_seconds=3600, **TWILIO))["cooldown_seconds"] == 3600


def test_the_reference_s_definitions_are_all_here() -> None:
    assert len(REFERENCE_DEFINITIONS) == 13


@pytest.mark.parametrize("path", REFERENCE_DEFINITIONS, ids=lambda path: path.stem)
def test_the_reference_s_definitions_are_refused_only_for_their_managed_provider(path: Path) -> None:
    written = json.loads(path.read_text())
    [index] = [i for i, step in enumerate(written["steps"]) if step["type"] == EMAIL_NOTIFICATION_V2]

    with pytest.raises(InvalidPayloadError, match=rf"^field 'workflow\.steps\[{index}\]\.email_provider': "
                                                  r"'Roboflow Managed API Key' \(the default\) sends through"):
        compile_workflow(written)

    custom = copy.deepcopy(written)
    custom["steps"][index].update(email_provider="Custom SMTP", **SMTP)
    compiled = compile_workflow(custom).step("email_notification").params
    assert {name: compiled[name] for name in written["steps"][index] if name not in ("type", "name")} == {
        name: value for name, value in written["steps"][index].items() if name not in ("type", "name")}
