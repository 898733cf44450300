"""openai_compatible@v1 and the first-generation GPT-4V blocks (open_ai@v1, lmm@v1, lmm_for_classification@v1)
against a fake server on 127.0.0.1 (real HTTP): the request each sends, the workflow's base URL honoured and refused
outside the allowed networks, the answer's JSON as outputs, every failure with the key and the URL's credentials
redacted, and cog_vlm refused when a step gives it."""

import base64
import json
import logging
import re
from datetime import datetime
from typing import Any

import cv2
import pytest

from services.core.networks import DestinationRefusedError, NetworkPolicy
from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment, SinkSettings
from services.worker.workflows.blocks.llm.client import ProviderError
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import VideoMetadata, WorkflowImage
from tests.support.llm_providers import FakeLlmApis
from tests.worker.workflows.hosted_support import build_step, make_env, orange_block_frame

KEY = "sk-local-0123456789abcdef-secret"
COMPATIBLE = "roboflow_core/openai_compatible@v1"
OPEN_AI_V1 = "roboflow_core/open_ai@v1"
LMM = "roboflow_core/lmm@v1"
LMM_CLASSIFIER = "roboflow_core/lmm_for_classification@v1"


@pytest.fixture
def env(apis: FakeLlmApis) -> BlockEnvironment:
    return make_env(apis)


@pytest.fixture
def frame() -> WorkflowImage:
    return orange_block_frame()


def build(step: dict[str, Any], env: BlockEnvironment, **parameters: Any) -> tuple[Any, dict[str, Any]]:
    return build_step(step, env, output="*", **parameters)


def run(step: dict[str, Any], env: BlockEnvironment, **values: Any) -> dict[str, Any]:
    """The step built as the worker builds it, then run with its fields and ``values`` (what selectors gave)."""
    block, params = build(step, env)
    result: dict[str, Any] = block.run(**{**params, **values})
    return result


def jpeg_of(frame: WorkflowImage) -> str:
    return base64.b64encode(cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()).decode()


def data_url(data: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def compatible(apis: FakeLlmApis, **fields: Any) -> dict[str, Any]:
    return {"type": COMPATIBLE, "base_url": apis.compatible_url, "model_name": "Qwen/Qwen2.5-VL-7B-Instruct",
            "prompt": "Describe what you see.", **fields}


# ----------------------------------------------------------------------------- openai_compatible: requests


def test_the_request_goes_to_the_workflow_s_base_url_with_the_manifest_s_fields(
        apis: FakeLlmApis, env: BlockEnvironment) -> None:
    result = run(compatible(apis, api_key=KEY, system_prompt="You are a helpful assistant.", temperature=0.0,
                            max_tokens=64, extra_body={"guided_choice": ["A", "B"],
                                                       "chat_template_kwargs": {"enable_thinking": False}}), env)

    assert result == {"output": "compatible says hi", "error_status": ""}
    [request] = apis.requests
    assert (request.provider, request.path) == ("openai_compatible", "/compatible/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "Qwen/Qwen2.5-VL-7B-Instruct", "max_tokens": 64, "temperature": 0.0,
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": [{"type": "text", "text": "Describe what you see."}]}],
        "guided_choice": ["A", "B"], "chat_template_kwargs": {"enable_thinking": False}}
    assert KEY not in request.body.decode() and KEY in env.secrets


def test_without_a_key_no_authorization_is_sent_and_defaults_leave_out_temperature(
        apis: FakeLlmApis, env: BlockEnvironment) -> None:
    run(compatible(apis, base_url=apis.compatible_url + "/"), env)

    [request] = apis.requests
    assert "authorization" not in request.headers
    assert request.json() == {"model": "Qwen/Qwen2.5-VL-7B-Instruct", "max_tokens": 500, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Describe what you see."}]}]}


def test_parameters_fill_the_text_and_images_become_parts(apis: FakeLlmApis, env: BlockEnvironment,
                                                          frame: WorkflowImage) -> None:
    crop = frame.crop(100, 100, 300, 400)
    jpeg = cv2.imencode(".jpg", crop.image)[1].tobytes()
    run(compatible(
        apis, prompt="  Count {{ $parameters.obj_type }} in {{$parameters.frame}}; keep {{ $parameters.unknown }} "
                     "and {{ $parameters.limit }} ",
        prompt_parameters={"frames": "$inputs.image", "obj_type": "cars", "frame": "$inputs.image", "limit": 3},
        prompt_parameters_operations={"obj_type": [{"type": "StringToUpperCase"}], "absent": [{"type": "ToString"}]}),
        env, prompt_parameters={"frames": [jpeg, "not an image", crop], "obj_type": "cars", "frame": frame,
                                "limit": 3})

    [user] = apis.requests[0].json()["messages"]
    assert user["content"] == [
        {"type": "text", "text": "Count CARS in ; keep {{ $parameters.unknown }} and 3"},
        data_url(jpeg_of(frame)),  # named by the text: first
        data_url(base64.b64encode(jpeg).decode()), data_url(jpeg_of(crop)),  # then the others, in order
    ]


def test_an_image_from_the_frame_through_the_executor_and_a_jpeg_operation(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.text["openai_compatible"] = '```json\n{"count": 2}\n```'
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "server"}],
        "steps": [
            {**compatible(apis, base_url="$inputs.server", prompt="{{ $parameters.picture }}How many?"), "name": "vlm",
             "prompt_parameters": {"picture": "$inputs.image"},
             "prompt_parameters_operations": {"picture": [{"type": "ConvertImageToJPEG", "compression_level": 80}]}},
            {"type": "roboflow_core/json_parser@v1", "name": "parsed", "raw_json": "$steps.vlm.output",
             "expected_fields": ["count"]},
        ],
        "outputs": [{"type": "JsonField", "name": "count", "selector": "$steps.parsed.count"},
                    {"type": "JsonField", "name": "error", "selector": "$steps.vlm.error_status"}],
    }
    executor = WorkflowExecutor(compile_workflow(workflow, parameters={"server": apis.compatible_url}), REGISTRY, env)
    image = WorkflowImage.frame(frame.image, "image", VideoMetadata("cam", 1, datetime(2026, 1, 1)))

    outputs, errors = executor.run(image)

    assert errors == [] and outputs == {"count": 2, "error": ""}
    [user] = apis.requests[0].json()["messages"]
    expected = base64.b64encode(cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    assert user["content"] == [{"type": "text", "text": "How many?"}, data_url(expected.decode())]


# ----------------------------------------------------------------------------- openai_compatible: the network policy


def test_a_base_url_outside_the_allowed_networks_is_refused_before_any_request(apis: FakeLlmApis) -> None:
    only_elsewhere = NetworkPolicy.parse(("10.0.0.0/8",), "WORKER_WORKFLOW_ALLOWED_NETWORKS")
    with pytest.raises(DestinationRefusedError, match=re.escape("127.0.0.1")):
        run(compatible(apis), make_env(apis, allowed_networks=only_elsewhere))
    with pytest.raises(ValueError, match=re.escape("host '127.0.0.1' is not among the hosts sinks may reach")):
        run(compatible(apis), make_env(apis, allowed_hosts=("vllm.internal",)))
    assert apis.requests == []


def test_by_default_only_loopback_is_reachable(apis: FakeLlmApis, env: BlockEnvironment) -> None:
    for url in ("http://10.20.30.40:8000/v1", "http://[2001:db8::1]:8000/v1", "http://169.254.169.254/v1"):
        with pytest.raises(DestinationRefusedError, match="WORKER_WORKFLOW_ALLOWED_NETWORKS"):
            run(compatible(apis, base_url=url), env)
    assert SinkSettings().allowed_networks == NetworkPolicy.loopback("WORKER_WORKFLOW_ALLOWED_NETWORKS")
    opened = NetworkPolicy.parse(("127.0.0.0/8", "10.0.0.0/8"), "WORKER_WORKFLOW_ALLOWED_NETWORKS")
    assert run(compatible(apis), make_env(apis, allowed_networks=opened))["output"] == "compatible says hi"


def test_a_base_url_from_a_step_is_checked_on_the_frame(apis: FakeLlmApis, env: BlockEnvironment) -> None:
    with pytest.raises(ValueError, match="base_url must be an http:// or https:// URL with a host"):
        run(compatible(apis), env, base_url="file:///etc/passwd")
    with pytest.raises(ValueError, match="model_name must be a non-empty string"):
        run(compatible(apis), env, model_name="")
    with pytest.raises(ValueError, match=re.escape("temperature must be a number from 0.0 to 2")):
        run(compatible(apis), env, temperature=3)
    assert apis.requests == []


# ----------------------------------------------------------------------------- openai_compatible: failures


def test_a_refused_key_is_error_status_without_the_key(apis: FakeLlmApis, env: BlockEnvironment,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    apis.status = 401
    caplog.set_level(logging.DEBUG)
    result = run(compatible(apis, api_key=KEY), env)

    assert result == {"output": "", "error_status": "OpenAI-compatible API answered HTTP 401 Unauthorized: "
                                                    "Incorrect API key provided: ***"}
    assert KEY not in caplog.text and "HTTP 401" in caplog.text


def test_a_key_from_a_parameter_and_the_url_s_credentials_are_secrets(
        apis: FakeLlmApis, env: BlockEnvironment, caplog: pytest.LogCaptureFixture) -> None:
    apis.status = 500
    caplog.set_level(logging.DEBUG)
    url = apis.compatible_url.replace("http://", "http://gateway-user:pw-SECRET-9@")
    block, params = build(compatible(apis, base_url=url, api_key="$inputs.key"), env, key=KEY)
    assert KEY in env.secrets and "pw-SECRET-9" in env.secrets, "registered as the step is built"

    result = block.run(**params)

    assert result == {"output": "", "error_status": "OpenAI-compatible API answered HTTP 500 Internal Server Error: "
                                                    "error 500"}
    assert apis.requests[0].headers["authorization"].startswith("Basic "), "httpx sends the URL's credentials"
    assert "HTTP 500" in caplog.text and "pw-SECRET-9" not in caplog.text and KEY not in caplog.text


@pytest.mark.parametrize(("raw", "status"), [
    (b'{"choices": [ {"oops"', "OpenAI-compatible API answered HTTP 200 with something other than JSON"),
    (json.dumps({"error": {"message": f"model not loaded ({KEY})"}}).encode(),
     "OpenAI-compatible API returned no choices: model not loaded (***)"),
    (b'{"choices": []}', "OpenAI-compatible API returned no choices: no response choices returned"),
    (json.dumps({"choices": [{"index": 0, "finish_reason": "tool_calls",
                              "message": {"role": "assistant", "content": None}}]}).encode(),
     "OpenAI-compatible API returned empty message content (finish_reason=tool_calls)"),
])
def test_an_answer_without_text_is_error_status(apis: FakeLlmApis, env: BlockEnvironment, raw: bytes,
                                                status: str) -> None:
    apis.raw = raw
    assert run(compatible(apis, api_key=KEY), env) == {"output": "", "error_status": status}


def test_a_timeout_and_an_unreachable_server_are_error_status(apis: FakeLlmApis) -> None:
    apis.delay = 3.0
    result = run(compatible(apis), make_env(apis, llm_api_timeout=0.3))
    assert result == {"output": "", "error_status": "OpenAI-compatible API did not answer within 0.3 s"}
    closed = FakeLlmApis()
    closed.close()
    result = run(compatible(apis, base_url=closed.compatible_url), make_env(apis))
    assert result["output"] == "" and result["error_status"].startswith(
        "OpenAI-compatible API could not be reached: ConnectError")


# ----------------------------------------------------------------------------- open_ai@v1, lmm@v1


def test_open_ai_v1_sends_the_prompt_with_its_json_format_and_gives_its_fields(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.text["openai"] = '```json\n{"description": "a box", "extra": 1}\n```'
    result = run({"type": "OpenAI", "image": "$inputs.image", "prompt": "Describe it", "openai_api_key": KEY,
                  "json_output_format": {"description": "what is there", "count": "how many"}}, env, images=frame)

    [request] = apis.requests
    assert (request.provider, request.path) == ("openai", "/v1/chat/completions"), "the operator's OpenAI"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    prompt = 'Describe it\n\nVALID response format is JSON:\n{\n    "description": "what is there",\n    ' \
             '"count": "how many"\n}'
    assert request.json() == {"model": "gpt-4o", "max_tokens": 450, "messages": [{"role": "user", "content": [
        {"type": "text", "text": prompt},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{jpeg_of(frame)}", "detail": "auto"}}]}]}
    assert result == {"raw_output": apis.text["openai"],
                      "structured_output": {"description": "a box", "count": "not_detected"},
                      "description": "a box", "count": "not_detected", "parent_id": "image.[0]",
                      "root_parent_id": "image.[0]", "image": {"width": 640, "height": 480}}


def test_open_ai_v1_without_a_format_sends_the_prompt_alone(apis: FakeLlmApis, env: BlockEnvironment,
                                                            frame: WorkflowImage) -> None:
    result = run({"type": OPEN_AI_V1, "images": "$inputs.image", "prompt": "Describe it", "openai_api_key": KEY,
                  "openai_model": "gpt-5.4-mini", "image_detail": "high", "max_tokens": 100}, env, images=frame)

    body = apis.requests[0].json()
    assert (body["model"], body["max_tokens"], body["messages"][0]["content"][0]["text"]) == (
        "gpt-5.4-mini", 100, "Describe it")
    assert body["messages"][0]["content"][1]["image_url"]["detail"] == "high"
    assert result["structured_output"] == {} and set(result) == {
        "raw_output", "structured_output", "parent_id", "root_parent_id", "image"}


@pytest.mark.parametrize(("answer", "structured", "fields"), [
    ('{"count": 3}', {"count": 3, "colour": "not_detected"}, {"count": 3, "colour": "not_detected"}),
    ("three, I think", {"count": "not_detected", "colour": "not_detected"},
     {"count": "not_detected", "colour": "not_detected"}),
    ('```json\n[1, 2]\n```', {"count": "not_detected", "colour": "not_detected"},
     {"count": "not_detected", "colour": "not_detected"}),
    ('```json\n{"count": 1}\n```\nand\n```json\n{"count": 2, "colour": "red"}\n```',
     [{"count": 1, "colour": "not_detected"}, {"count": 2, "colour": "red"}],
     {"count": 1, "colour": "not_detected"}),
], ids=["plain-json", "not-json", "not-an-object", "two-blocks"])
def test_lmm_v1_reads_the_answer_s_json_as_the_reference_does(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, answer: str, structured: Any,
        fields: dict[str, Any]) -> None:
    apis.text["openai"] = answer
    result = run({"type": "LMM", "images": "$inputs.image", "prompt": "Count", "lmm_type": "gpt_4v",
                  "remote_api_key": KEY, "json_output": {"count": "how many", "colour": "which colour"},
                  "lmm_config": {"max_tokens": 200, "gpt_image_detail": "low", "gpt_model_version": "gpt-4o-mini"}},
                 env, images=frame)

    assert result["structured_output"] == structured
    assert {name: result[name] for name in fields} == fields
    body = apis.requests[0].json()
    assert (body["model"], body["max_tokens"], body["messages"][0]["content"][1]["image_url"]["detail"]) == (
        "gpt-4o-mini", 200, "low")


def test_a_crop_s_lineage_is_its_own_and_the_frame_s(apis: FakeLlmApis, env: BlockEnvironment,
                                                      frame: WorkflowImage) -> None:
    crop = frame.crop(100, 100, 300, 400, crop_id="crop-1")
    result = run({"type": LMM, "images": "$inputs.image", "prompt": "What?", "lmm_type": "gpt_4v",
                  "remote_api_key": KEY}, env, images=crop)
    assert (result["parent_id"], result["root_parent_id"], result["image"]) == (
        "crop-1", "image.[0]", {"width": 200, "height": 300})


# ----------------------------------------------------------------------------- lmm_for_classification@v1


def test_lmm_for_classification_asks_for_the_top_class_in_the_reference_s_words(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage) -> None:
    apis.text["openai"] = '{"top": "cat"}'
    result = run({"type": "LMMForClassification", "image": "$inputs.image", "lmm_type": "gpt_4v",
                  "classes": ["cat", "dog"], "remote_api_key": KEY}, env, images=frame)

    assert result == {"raw_output": '{"top": "cat"}', "top": "cat", "parent_id": "image.[0]",
                      "root_parent_id": "image.[0]", "image": {"width": 640, "height": 480},
                      "prediction_type": "classification"}
    [message] = apis.requests[0].json()["messages"]
    assert message["content"][0] == {"type": "text", "text": (
        "You are supposed to perform image classification task. You are given image that should be assigned one of "
        "the following classes: ['cat', 'dog']. Your response must be JSON in format: {\"top\": \"some_class\"}")}
    apis.text["openai"] = "I would say a cat."
    assert run({"type": LMM_CLASSIFIER, "images": "$inputs.image", "lmm_type": "gpt_4v", "classes": ["cat"],
                "remote_api_key": KEY}, env, images=frame)["top"] == "not_detected"


# ----------------------------------------------------------------------------- the first generation: failures


@pytest.mark.parametrize("block", [LMM, LMM_CLASSIFIER])
def test_cog_vlm_from_a_step_fails_the_step_naming_it(apis: FakeLlmApis, env: BlockEnvironment,
                                                      frame: WorkflowImage, block: str) -> None:
    step = {"type": block, "images": "$inputs.image", "lmm_type": "gpt_4v", "remote_api_key": KEY,
            **({"prompt": "p"} if block == LMM else {"classes": ["a"]})}
    with pytest.raises(ValueError, match=r"^lmm_type 'cog_vlm' \(CogVLM\) ran on Roboflow's own inference server"):
        run(step, env, images=frame, lmm_type="cog_vlm")
    with pytest.raises(ValueError, match="lmm_type must be 'gpt_4v', got 'gpt-5'"):
        run(step, env, images=frame, lmm_type="gpt-5")
    assert apis.requests == []


def test_a_missing_key_and_a_refused_one_fail_the_step_without_the_key(
        apis: FakeLlmApis, env: BlockEnvironment, frame: WorkflowImage, caplog: pytest.LogCaptureFixture) -> None:
    step = {"type": OPEN_AI_V1, "images": "$inputs.image", "prompt": "p", "openai_api_key": KEY}
    with pytest.raises(ValueError, match="openai_api_key is required: a step that prompts GPT-4V needs an OpenAI"):
        run(step, env, images=frame, openai_api_key=None)
    assert apis.requests == []
    apis.status = 401
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as failure:
        run({**step, "type": LMM, "lmm_type": "gpt_4v", "remote_api_key": KEY}, env, images=frame)
    assert str(failure.value) == "OpenAI API answered HTTP 401 Unauthorized: Incorrect API key provided: ***"
    assert KEY not in caplog.text and KEY in env.secrets


def test_the_first_generation_calls_only_the_operator_s_allowed_openai(apis: FakeLlmApis,
                                                                       frame: WorkflowImage) -> None:
    only_elsewhere = NetworkPolicy.parse(("10.0.0.0/8",), "WORKER_WORKFLOW_ALLOWED_NETWORKS")
    with pytest.raises(DestinationRefusedError):
        run({"type": OPEN_AI_V1, "images": "$inputs.image", "prompt": "p", "openai_api_key": KEY},
            make_env(apis, allowed_networks=only_elsewhere), images=frame)
    assert apis.requests == []
