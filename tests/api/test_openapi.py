"""The OpenAPI document: both route tables, a typed 200 body and documented errors on every route,
typed INIT bodies whose examples the manager accepts."""

from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from services.api.app import create_app
from services.api.payloads import (
    InitialiseWebRTCPayload,
    NewerInitialisePayload,
    OlderInitialisePayload,
    WorkflowDefinition,
)
from services.api.routing import NewerRoute, OlderRoute
from services.api.settings import ApiSettings
from services.core.plan import compile_init
from services.manager.workflows import check_definition

APP = create_app(ApiSettings(manager_port=7070))
DOCUMENT: dict[str, Any] = APP.openapi()
PREVIEW = "/inference_pipelines/{pipeline_id}/preview.jpg"
WORKSPACE = "/workflows/{workspace_name}"
WORKFLOW = "/workflows/{workspace_name}/{workflow_id}"
DRAIN = "/workers/{hostname}/drain"
OPERATIONS = [(path, method, operation) for path, item in DOCUMENT["paths"].items()
              for method, operation in item.items()]


def test_both_generations_route_tables() -> None:
    table = sorted((method.upper(), path) for path, method, _ in OPERATIONS)
    assert table == sorted([
        ("GET", "/list_pipelines"), ("GET", "/status/{pipeline_id}"), ("POST", "/initialise"),
        ("POST", "/pause/{pipeline_id}"), ("POST", "/resume/{pipeline_id}"), ("POST", "/terminate/{pipeline_id}"),
        ("GET", "/inference_pipelines/list"), ("GET", "/inference_pipelines/{pipeline_id}/status"),
        ("POST", "/inference_pipelines/initialise"), ("POST", "/inference_pipelines/initialise_webrtc"),
        ("POST", "/inference_pipelines/{pipeline_id}/pause"), ("POST", "/inference_pipelines/{pipeline_id}/resume"),
        ("POST", "/inference_pipelines/{pipeline_id}/terminate"), ("GET", "/inference_pipelines/{pipeline_id}/consume"),
        ("GET", "/healthz"), ("GET", "/readyz"),
        ("GET", "/dashboard/api/pipelines"), ("GET", PREVIEW),
        ("GET", "/workers"), ("POST", DRAIN), ("DELETE", DRAIN),
        ("GET", "/workflows"), ("GET", WORKSPACE), ("GET", WORKFLOW), ("PUT", WORKFLOW), ("DELETE", WORKFLOW),
    ])
    routes = {context.path: context.route for context in iter_route_contexts(APP.routes)
              if isinstance(context.route, APIRoute) and context.route.include_in_schema}  # not the dashboard's page
    assert set(routes) == {path for path, _, _ in OPERATIONS}  # no route is left out of the document
    for path, route in routes.items():  # each generation answers errors in its own shape
        newer = path.startswith(("/inference_pipelines", "/dashboard", "/workflows", "/workers")) \
            or path in ("/healthz", "/readyz")
        assert isinstance(route, NewerRoute if newer else OlderRoute), path


def _schema(response: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_every_route_has_a_typed_success_body_and_documented_errors(path: str, method: str,
                                                                    operation: dict[str, Any]) -> None:
    if path == PREVIEW:  # a JPEG, read from Redis: no manager involved
        binary = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}
        assert operation["responses"]["200"]["content"] == binary
        errors = {code: _schema(response)["$ref"] for code, response in operation["responses"].items()
                  if code != "200"}
        assert errors == dict.fromkeys(("404", "422", "500", "503"), "#/components/schemas/NewerErrorBody")
        return
    ref = _schema(operation["responses"]["200"]).get("$ref", "")
    assert ref.startswith("#/components/schemas/")
    assert ref.removeprefix("#/components/schemas/") in DOCUMENT["components"]["schemas"]

    errors = {code: _schema(response)["$ref"] for code, response in operation["responses"].items() if code != "200"}
    if path in ("/healthz",):
        assert errors == {}
    elif path == "/readyz":
        assert errors == {"503": "#/components/schemas/Readiness"}
    elif path.startswith("/workflows"):
        assert {"401", "500", "502", "503"} <= set(errors)
        assert set(errors.values()) == {"#/components/schemas/NewerErrorBody"}
        assert ("404" in errors) == (path == WORKFLOW and method != "put")
        assert ("400" in errors) == (path != "/workflows")  # an invalid name, or definition
    elif path.startswith("/workers"):
        assert {"401", "500", "502", "503"} <= set(errors)
        assert set(errors.values()) == {"#/components/schemas/NewerErrorBody"}
        assert ("404" in errors) == ("400" in errors) == (path == DRAIN)  # an unknown worker, an invalid name
    else:
        model = "NewerErrorBody" if path.startswith(("/inference_pipelines", "/dashboard")) else "OlderErrorBody"
        assert {"401", "500", "502", "503"} <= set(errors)
        assert set(errors.values()) == {f"#/components/schemas/{model}"}
        assert ("404" in errors) == ("{pipeline_id}" in path)
        assert ("400" in errors) == ("initialise" in path)


def test_no_default_validation_error_shape_is_documented() -> None:
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]


@pytest.mark.parametrize(("path", "model"), [
    ("/initialise", OlderInitialisePayload), ("/inference_pipelines/initialise", NewerInitialisePayload),
    ("/inference_pipelines/initialise_webrtc", InitialiseWebRTCPayload),
])
def test_init_bodies_are_typed(path: str, model: type[Any]) -> None:
    body = DOCUMENT["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    assert _schema(body) == {"$ref": f"#/components/schemas/{model.__name__}"}
    schema = DOCUMENT["components"]["schemas"][model.__name__]
    assert schema["additionalProperties"] is True  # the manager ignores unknown keys, so do the docs
    required = {"/initialise": {"model_id", "video_reference", "sink_configuration"},
                "/inference_pipelines/initialise": {"video_configuration", "processing_configuration"},
                "/inference_pipelines/initialise_webrtc": {"video_configuration", "processing_configuration",
                                                           "webrtc_offer"}}[path]
    assert set(schema["required"]) == required


def test_the_workflow_routes_are_typed() -> None:
    body = DOCUMENT["paths"][WORKFLOW]["put"]["requestBody"]
    assert _schema(body) == {"$ref": "#/components/schemas/WorkflowDefinition"}
    responses = {(path, method): _schema(DOCUMENT["paths"][path][method]["responses"]["200"])["$ref"]
                 for path, method in (("/workflows", "get"), (WORKSPACE, "get"), (WORKFLOW, "get"),
                                      (WORKFLOW, "put"), (WORKFLOW, "delete"))}
    assert responses == {
        ("/workflows", "get"): "#/components/schemas/ListWorkflowsResponse",
        (WORKSPACE, "get"): "#/components/schemas/ListWorkflowsResponse",
        (WORKFLOW, "get"): "#/components/schemas/WorkflowResponse",
        (WORKFLOW, "put"): "#/components/schemas/PutWorkflowResponse",
        (WORKFLOW, "delete"): "#/components/schemas/CommandResponse",
    }


def test_the_documented_workflow_definition_is_one_the_manager_stores() -> None:
    [example] = WorkflowDefinition.model_json_schema()["examples"]
    check_definition(example)


@pytest.mark.parametrize("model", [OlderInitialisePayload, NewerInitialisePayload])
def test_the_documented_examples_are_payloads_the_manager_accepts(model: type[Any]) -> None:
    [example] = model.model_json_schema()["examples"]
    model.model_validate(example)

    spec = compile_init(example)

    assert spec.model_ids() == ["yolov3-tiny/coco-416"]


def test_consume_documents_its_body_and_query() -> None:
    operation = DOCUMENT["paths"]["/inference_pipelines/{pipeline_id}/consume"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"pipeline_id", "excluded_fields", "max_entries"}
    assert {"$ref": "#/components/schemas/ConsumePayload"} in _schema(operation["requestBody"])["anyOf"]


def test_the_bearer_scheme_is_documented_on_the_initialise_routes() -> None:
    assert DOCUMENT["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    secured = sorted(path for path, _, operation in OPERATIONS if operation.get("security"))
    assert secured == ["/inference_pipelines/initialise", "/inference_pipelines/initialise_webrtc", "/initialise"]


def test_every_manager_post_route_documents_the_cross_origin_and_body_size_refusals() -> None:
    writes = [(path, item[method]) for path, item in DOCUMENT["paths"].items()
              for method in ("post", "put", "delete") if method in item]

    assert len([path for path, _ in writes if path.startswith("/workflows")]) == 2  # PUT and DELETE
    for path, operation in writes:
        assert {"403", "413"} <= set(operation["responses"]), path
