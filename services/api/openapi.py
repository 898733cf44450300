"""Typed request bodies in the OpenAPI document for routes that read their body themselves.

The initialise routes accept any JSON object (the manager validates it), so FastAPI sees no body
model to document. :func:`documented_body` describes the body by a model's ``$ref``, and
:func:`include_schemas` adds those models to the document's components when it is first built.
"""

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF_TEMPLATE = "#/components/schemas/{model}"


def documented_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose JSON body is described by ``model``."""
    schema = {"$ref": REF_TEMPLATE.format(model=model.__name__)}
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}}}


def include_schemas(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Makes ``app.openapi()`` list ``models`` (and the models they use) under components.schemas."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        _, definitions = models_json_schema([(model, "validation") for model in models], ref_template=REF_TEMPLATE)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in definitions.get("$defs", {}).items():
            schemas.setdefault(name, schema)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
