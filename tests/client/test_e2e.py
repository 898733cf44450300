"""Both clients against the real stack: manager and Celery worker processes, the real model on the
sample video. initialise -> status RUNNING -> consume real detections -> terminate."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from services.client import AsyncManagerClient, ConsumeResponse, ManagerClient, StatusReport
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until
from tools.payloads import newer_init

VTEST = "data/media/vtest.avi"


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        running.start_manager()
        running.start_worker("cpu", "pipelines.cpu", concurrency=2)
        yield running


def is_running(report: StatusReport) -> bool:
    """RUNNING, and processing frames already."""
    return (report.pipeline_state == "RUNNING" and [s.state for s in report.sources_metadata] == ["RUNNING"]
            and report.inference_throughput > 0)


def people(response: ConsumeResponse) -> list[dict[str, Any]]:
    """The person detections in every entry of a consume reply, checked against the reference shape."""
    found = []
    for entry in response.entries or []:
        [output], [metadata] = entry.outputs, entry.frames_metadata
        assert output is not None and metadata is not None and metadata.source_id == 0
        prediction = output["predictions"]  # the workflow's output named "predictions"
        assert prediction["image"] == {"width": 768, "height": 576}
        found += [p for p in prediction["predictions"] if p["class"] == "person"]
    return found


def test_sync_client_drives_a_real_pipeline(stack: Stack) -> None:
    client = ManagerClient("127.0.0.1", stack.port)

    pipeline_id = client.initialise(newer_init(VTEST, max_fps=5)).context.pipeline_id
    assert pipeline_id is not None and pipeline_id in client.list_pipelines().pipelines
    wait_until(lambda: is_running(client.status(pipeline_id).report), timeout=30)
    report = client.status(pipeline_id).report
    assert report.latency_reports[0].inference_latency and report.sources_metadata[0].source_reference == VTEST
    detections: list[dict[str, Any]] = []
    wait_until(lambda: detections.extend(people(client.consume(pipeline_id, max_entries=20))) or detections,
               timeout=30, interval=0.2)
    terminated = client.terminate(pipeline_id)

    assert terminated.status == "success" and terminated.context.pipeline_id == pipeline_id
    assert pipeline_id not in client.list_pipelines().pipelines
    assert {"x", "y", "width", "height", "confidence", "class_id", "detection_id"} <= set(detections[0])


async def eventually(predicate: Callable[[], Awaitable[object]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        await asyncio.sleep(0.2)


async def async_lifecycle(client: AsyncManagerClient) -> list[dict[str, Any]]:
    pipeline_id = (await client.initialise(newer_init(VTEST, max_fps=5))).context.pipeline_id
    assert pipeline_id is not None and pipeline_id in (await client.list_pipelines()).pipelines

    async def running() -> bool:
        return is_running((await client.status(pipeline_id)).report)

    await eventually(running, timeout=30)
    detections: list[dict[str, Any]] = []

    async def detected() -> bool:
        detections.extend(people(await client.consume(pipeline_id, max_entries=20)))
        return bool(detections)

    await eventually(detected, timeout=30)
    terminated = await client.terminate(pipeline_id)
    assert terminated.status == "success" and terminated.context.pipeline_id == pipeline_id
    assert pipeline_id not in (await client.list_pipelines()).pipelines
    return detections


def test_async_client_drives_a_real_pipeline(stack: Stack) -> None:
    detections = asyncio.run(async_lifecycle(AsyncManagerClient("127.0.0.1", stack.port)))

    assert 0 < detections[0]["confidence"] <= 1
