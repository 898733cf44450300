"""The guarded route classes answer a model of exactly their response model with its own JSON: the same
bytes FastAPI's own serialisation gives, and FastAPI's path for anything else."""

import asyncio
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import model_validator

from services.api.routing import NewerRoute, OlderRoute
from services.client.models import ListPipelinesResponse, StatusResponse

STATUS: dict[str, Any] = {
    "status": "success",
    "context": {"request_id": "r-1", "pipeline_id": "p-1"},
    "report": {
        "video_source_status_updates": [{"timestamp": "2026-12-03T18:00:01.250000+00:00",
                                         "severity": 20, "event_type": "SOURCE_CONNECTED",
                                         "payload": {"source_id": 0, "ünïcode": "ñ"}, "context": "video_consumer"}],
        "latency_reports": [{"source_id": 0, "frame_decoding_latency": 0.01, "inference_latency": None,
                             "e2e_latency": 0.2}],
        "inference_throughput": 28.5,
        "sources_metadata": [],
        "pipeline_state": "RUNNING", "restarts": 0, "last_error": None, "results_dropped": 0,
        "extra_field_of_ours": {"nested": [1, 2.5, "x"]},
    },
}


class _Client:
    """GETs from an app in this process (httpx over ASGI)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, path: str) -> httpx.Response:
        async def fetch() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://api") as client:
                return await client.get(path)

        return asyncio.run(fetch())


def _app(route_class: type[APIRoute], answer: Any) -> _Client:
    router = APIRouter(route_class=route_class)

    @router.get("/status", response_model=StatusResponse)
    async def status() -> Any:
        return answer() if callable(answer) else answer

    @router.get("/list", response_model=ListPipelinesResponse)
    async def pipelines() -> ListPipelinesResponse:
        return ListPipelinesResponse.model_validate({"status": "success", "context": {"request_id": "r"},
                                                     "pipelines": ["a", "b"]})

    app = FastAPI()
    app.include_router(router)
    return _Client(app)


@pytest.mark.parametrize("route_class", [NewerRoute, OlderRoute])
def test_a_model_of_the_response_model_is_answered_with_the_bytes_fastapi_would_send(
        route_class: type[APIRoute]) -> None:
    model = StatusResponse.model_validate(STATUS)
    ours, fastapis = _app(route_class, model), _app(APIRoute, model)
    for path in ("/status", "/list"):
        mine, theirs = ours.get(path), fastapis.get(path)
        assert mine.status_code == theirs.status_code == 200
        assert mine.headers["content-type"] == theirs.headers["content-type"] == "application/json"
        assert mine.content == theirs.content
    assert ours.app.openapi() == fastapis.app.openapi()  # the same documented schema


def test_anything_else_still_goes_through_fastapis_validation() -> None:
    wrong = {**STATUS, "status": 7}  # a dict: validated by FastAPI against the response model
    answered = _app(NewerRoute, dict(STATUS)).get("/status")
    assert answered.status_code == 200 and answered.json()["report"]["pipeline_state"] == "RUNNING"
    refused = _app(NewerRoute, wrong).get("/status")
    assert refused.status_code == 500  # FastAPI's response validation failed; the guard answered it
    assert refused.json()["error_type"] == "InternalError"


class _Counted(StatusResponse):
    """A response model that counts its validations."""

    validations: ClassVar[list[int]] = []

    @model_validator(mode="after")
    def _count(self) -> "_Counted":
        self.validations.append(1)
        return self


def test_the_model_is_not_validated_again_on_its_way_out() -> None:
    router = APIRouter(route_class=NewerRoute)

    @router.get("/status", response_model=_Counted)
    async def status() -> _Counted:
        return _Counted.model_validate(STATUS)

    app = FastAPI()
    app.include_router(router)
    _Counted.validations.clear()
    assert _Client(app).get("/status").json()["report"]["inference_throughput"] == 28.5
    assert len(_Counted.validations) == 1  # the endpoint's own; FastAPI's path validates it a second time
