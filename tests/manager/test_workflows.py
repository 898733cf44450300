"""Named workflows: the registry over a real Redis (and a directory), the four TCP requests of a real
manager, and INIT resolving a named workflow from Redis first, then the directory."""

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from redis.asyncio import Redis

from services.core import keys
from services.core.errors import InvalidPayloadError, NotFoundError, OperationError
from services.manager.workflow_directory import WorkflowDirectory
from services.manager.workflow_store import WorkflowStore
from services.manager.workflows import WorkflowRegistry
from tests.manager.conftest import ManagerFactory, RunningManager
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.support.redis_server import RedisServer

T = TypeVar("T")


def detection(confidence: float = 0.4, image: str = "image") -> dict[str, Any]:
    """A one-step detection workflow in the published format (keys deliberately not sorted)."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": image}],
        "steps": [{"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model",
                   "images": f"$inputs.{image}", "model_id": "yolov3-tiny/coco-416", "confidence": confidence}],
        "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.model.predictions"}],
    }


def with_parameter(default: bool) -> dict[str, Any]:
    """A workflow whose confidence is a parameter, with or without a default_value."""
    workflow = detection()
    parameter: dict[str, Any] = {"type": "WorkflowParameter", "name": "confidence"}
    if default:
        parameter["default_value"] = 0.3
    workflow["inputs"].append(parameter)
    workflow["steps"][0]["confidence"] = "$inputs.confidence"
    return workflow


# --- the registry, on its own ------------------------------------------------------------------------------------


@pytest.fixture
def run_with(redis_server: RedisServer, redis_client: redis.Redis,
             tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``run_with(scenario, max_bytes=...)``: awaits ``scenario(registry)`` against the session's Redis (flushed)
    and ``tmp_path`` as the workflows directory."""
    def run(scenario: Callable[[WorkflowRegistry], Awaitable[T]], max_bytes: int = 512 * 1024) -> T:
        async def main() -> T:
            client = Redis.from_url(redis_server.url)
            try:
                return await scenario(WorkflowRegistry(WorkflowStore(client), WorkflowDirectory(tmp_path), max_bytes))
            finally:
                await client.aclose()
        return asyncio.run(main())
    yield run


def test_put_stores_the_definition_as_given_and_replaces_it(run_with: Callable[..., Any],
                                                            redis_client: redis.Redis) -> None:
    async def scenario(registry: WorkflowRegistry) -> Any:
        first = await registry.put("acme", "people", detection(0.4))
        second = await registry.put("acme", "people", detection(0.6))
        return first, second, await registry.get("acme", "people")

    (_, created), (_, created_again), got = run_with(scenario)

    assert created is True and created_again is False
    assert got.specification == detection(0.6)
    assert list(got.specification) == ["version", "inputs", "steps", "outputs"]  # the order it was given in
    assert datetime.fromisoformat(got.updated_at).tzinfo is not None
    raw = redis_client.hgetall(keys.workflow("acme", "people"))
    assert json.loads(raw[b"specification"]) == detection(0.6) and raw[b"updated_at"].decode() == got.updated_at
    assert redis_client.hgetall(keys.workflows_index()) == {b"acme/people": raw[b"updated_at"]}
    assert redis_client.ttl(keys.workflow("acme", "people")) == -1  # kept until deleted


def test_list_is_sorted_and_filtered_by_workspace_and_delete_removes(run_with: Callable[..., Any],
                                                                   redis_client: redis.Redis) -> None:
    async def scenario(registry: WorkflowRegistry) -> Any:
        for workspace, workflow_id in (("zeta", "a"), ("acme", "people"), ("acme", "cars")):
            await registry.put(workspace, workflow_id, detection())
        everything = [(e.workspace_name, e.workflow_id) for e in await registry.entries()]
        acme = [(e.workspace_name, e.workflow_id) for e in await registry.entries("acme")]
        await registry.delete("acme", "cars")
        with pytest.raises(NotFoundError, match="workflow 'acme/cars' not found"):
            await registry.delete("acme", "cars")
        with pytest.raises(NotFoundError):
            await registry.get("acme", "cars")
        return everything, acme, [(e.workspace_name, e.workflow_id) for e in await registry.entries()]

    everything, acme, after = run_with(scenario)

    assert everything == [("acme", "cars"), ("acme", "people"), ("zeta", "a")]
    assert acme == [("acme", "cars"), ("acme", "people")]
    assert after == [("acme", "people"), ("zeta", "a")]
    assert not redis_client.exists(keys.workflow("acme", "cars"))


def test_the_directory_is_a_read_only_fallback_that_redis_shadows(run_with: Callable[..., Any],
                                                                 tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "people.json").write_text(json.dumps(detection(0.4)))
    (tmp_path / "acme" / "bad name.json").write_text("{}")  # not a valid name: never listed

    async def scenario(registry: WorkflowRegistry) -> Any:
        from_file = await registry.get("acme", "people")
        listed = [(e.workspace_name, e.workflow_id) for e in await registry.entries()]
        with pytest.raises(OperationError, match="MANAGER_WORKFLOWS_DIRECTORY"):
            await registry.delete("acme", "people")
        await registry.put("acme", "people", detection(0.7))
        shadowed = await registry.get("acme", "people")
        await registry.delete("acme", "people")
        return from_file, listed, shadowed, await registry.get("acme", "people")

    from_file, listed, shadowed, back = run_with(scenario)

    assert from_file.specification == detection(0.4) and listed == [("acme", "people")]
    assert shadowed.specification == detection(0.7)
    assert back.specification == detection(0.4)  # the file again, once the Redis copy is deleted


@pytest.mark.parametrize(("workspace", "workflow_id", "field"), [
    ("..", "people", "workspace_name"), ("acme", "a/b", "workflow_id"), ("acme", ".hidden", "workflow_id"),
    ("acme", "x" * 129, "workflow_id"), ("ac me", "people", "workspace_name"),
])
def test_names_are_checked_before_any_key_is_built(run_with: Callable[..., Any], redis_client: redis.Redis,
                                                  workspace: str, workflow_id: str, field: str) -> None:
    async def scenario(registry: WorkflowRegistry) -> None:
        for attempt in (registry.put(workspace, workflow_id, detection()), registry.get(workspace, workflow_id),
                        registry.delete(workspace, workflow_id)):
            with pytest.raises(InvalidPayloadError, match=f"field '{field}': .* is not a valid name"):
                await attempt

    run_with(scenario)
    assert set(redis_client.keys("*")) <= {keys.reaper_lease().encode()}  # nothing but the manager's lease


@pytest.mark.parametrize(("change", "path"), [
    (lambda w: w["steps"][0].update(type="acme/unknown_block@v1"), "specification.steps[0].type"),
    (lambda w: w["steps"][0].update(images="$inputs.nothing"), "specification.steps[0].images"),
    (lambda w: w["outputs"][0].update(selector="$steps.ghost.predictions"), "specification.outputs[0]"),
    (lambda w: w.update(inputs=[]), "declares no image input"),
])
def test_an_invalid_definition_is_refused_with_its_json_path(run_with: Callable[..., Any], redis_client: redis.Redis,
                                                            change: Callable[[dict[str, Any]], None],
                                                            path: str) -> None:
    workflow = detection()
    change(workflow)

    async def scenario(registry: WorkflowRegistry) -> None:
        with pytest.raises(InvalidPayloadError, match=path.replace("[", r"\[").replace("]", r"\]")):
            await registry.put("acme", "broken", workflow)

    run_with(scenario)
    assert set(redis_client.keys("*")) <= {keys.reaper_lease().encode()}  # nothing but the manager's lease


def test_what_only_an_init_supplies_is_not_required(run_with: Callable[..., Any]) -> None:
    async def scenario(registry: WorkflowRegistry) -> list[bool]:
        return [(await registry.put("acme", name, workflow))[1] for name, workflow in (
            ("no-default", with_parameter(default=False)),  # INIT's workflows_parameters gives the value
            ("with-default", with_parameter(default=True)),
            ("frame-input", detection(image="frame")),  # INIT's image_input_name names it
        )]

    assert run_with(scenario) == [True, True, True]


def test_a_definition_over_the_size_limit_names_the_setting(run_with: Callable[..., Any],
                                                           redis_client: redis.Redis) -> None:
    workflow = {**detection(), "description": "x" * 2048}

    async def scenario(registry: WorkflowRegistry) -> None:
        with pytest.raises(InvalidPayloadError, match=r"over the limit of 1024 \(MANAGER_MAX_WORKFLOW_BYTES\)"):
            await registry.put("acme", "big", workflow)

    run_with(scenario, max_bytes=1024)
    assert set(redis_client.keys("*")) <= {keys.reaper_lease().encode()}  # nothing but the manager's lease


# --- the TCP requests --------------------------------------------------------------------------------------------


def put(port: int, workflow: dict[str, Any], workspace: str = "acme", workflow_id: str = "people",
        **extra: Any) -> dict[str, Any]:
    return call(port, {"type": "put_workflow", "workspace_name": workspace, "workflow_id": workflow_id,
                       "specification": workflow, **extra})


def test_put_get_list_delete_over_tcp(manager: RunningManager) -> None:
    created = put(manager.port, detection(0.4))
    replaced = put(manager.port, detection(0.5))
    put(manager.port, detection(), workspace="other", workflow_id="cars")
    got = call(manager.port, {"type": "get_workflow", "workspace_name": "acme", "workflow_id": "people"})
    listed = call(manager.port, {"type": "list_workflows"})
    of_acme = call(manager.port, {"type": "list_workflows", "workspace_name": "acme"})
    deleted = call(manager.port, {"type": "delete_workflow", "workspace_name": "acme", "workflow_id": "people"})
    gone = call(manager.port, {"type": "get_workflow", "workspace_name": "acme", "workflow_id": "people"})

    assert created["pipeline_id"] is None and created["response"]["status"] == "success"
    assert created["response"]["created"] is True and replaced["response"]["created"] is False
    updated_at = replaced["response"]["updated_at"]
    assert got["response"] == {"status": "success", "workspace_name": "acme", "workflow_id": "people",
                               "specification": detection(0.5), "updated_at": updated_at}
    assert [(w["workspace_name"], w["workflow_id"]) for w in listed["response"]["workflows"]] == [
        ("acme", "people"), ("other", "cars")]
    assert of_acme["response"]["workflows"] == [{"workspace_name": "acme", "workflow_id": "people",
                                                 "updated_at": updated_at}]
    assert deleted == {"request_id": deleted["request_id"], "response": {"status": "success"}, "pipeline_id": None}
    assert gone["response"]["error_type"] == "not_found"
    assert gone["response"]["public_error_message"] == "Workflow 'acme/people' was not found."


def test_unknown_and_invalid_over_tcp(manager: RunningManager) -> None:
    unknown = call(manager.port, {"type": "delete_workflow", "workspace_name": "acme", "workflow_id": "ghost"})
    invalid = put(manager.port, {**detection(), "steps": [{**detection()["steps"][0], "type": "acme/nope@v1"}]})
    bad_name = put(manager.port, detection(), workspace="../etc")
    not_an_object = put(manager.port, [detection()])  # type: ignore[arg-type]

    assert unknown["response"]["error_type"] == "not_found"
    assert invalid["response"]["error_type"] == "invalid_payload"
    assert "'specification.steps[0].type'" in invalid["response"]["error_message"]
    assert bad_name["response"]["error_type"] == "invalid_payload"
    assert "field 'workspace_name'" in bad_name["response"]["error_message"]
    assert "field 'specification': Input should be a valid dictionary" in not_an_object["response"]["error_message"]


def test_the_workflow_requests_need_the_token_like_every_other(start_manager: ManagerFactory,
                                                              redis_client: redis.Redis) -> None:
    manager = start_manager(auth_token="s3cret-token")
    requests: list[dict[str, Any]] = [
        {"type": "put_workflow", "workspace_name": "acme", "workflow_id": "people", "specification": detection()},
        {"type": "get_workflow", "workspace_name": "acme", "workflow_id": "people"},
        {"type": "list_workflows"},
        {"type": "delete_workflow", "workspace_name": "acme", "workflow_id": "people"},
    ]

    refused = [call(manager.port, request)["response"]["error_type"] for request in requests]
    assert set(redis_client.keys("*")) <= {keys.reaper_lease().encode()}  # nothing but the manager's lease
    accepted = [call(manager.port, {**request, "token": "s3cret-token"})["response"]["status"]
                for request in requests]

    assert refused == ["authorisation_error"] * 4
    assert accepted == ["success"] * 4


# --- INIT --------------------------------------------------------------------------------------------------------


def named_init(workspace: str = "acme", workflow_id: str = "people") -> dict[str, Any]:
    return {
        "type": "init",
        "video_configuration": {"type": "VideoConfiguration", "video_reference": "data/media/file.mp4"},
        "processing_configuration": {"type": "WorkflowConfiguration", "workspace_name": workspace,
                                     "workflow_id": workflow_id, "workflows_parameters": {"confidence": 0.65}},
        "sink_configuration": {"type": "MemorySinkConfiguration", "results_buffer_size": 8},
    }


def test_init_resolves_a_named_workflow_from_redis_then_the_directory(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "people.json").write_text(json.dumps(detection(0.41)))
    manager = start_manager(workflows_directory=tmp_path)
    register_worker(redis_client)

    from_file = call(manager.port, named_init())
    put(manager.port, detection(0.77))
    from_redis = call(manager.port, named_init())
    put(manager.port, with_parameter(default=False), workflow_id="tunable")
    with_parameter_value = call(manager.port, named_init(workflow_id="tunable"))
    missing = call(manager.port, named_init(workflow_id="ghost"))
    escaping = call(manager.port, named_init(workspace=".."))

    assert [reply["response"] for reply in (from_file, from_redis, with_parameter_value)] == [{"status": "success"}] * 3
    specs = [json.dumps(dispatched["spec"]) for dispatched in fake_worker.calls]
    assert '"confidence": 0.41' in specs[0]
    assert '"confidence": 0.77' in specs[1]  # Redis first: it shadows the file of the same name
    assert '"confidence": 0.65' in specs[2]  # the INIT's workflows_parameters
    assert missing["response"]["error_type"] == "not_found" and "acme/ghost" in missing["response"]["error_message"]
    assert escaping["response"]["error_type"] == "invalid_payload"
    assert "processing_configuration.workspace_name" in escaping["response"]["error_message"]


def inner(workflow_id: str = "people", workspace: str = "acme") -> dict[str, Any]:
    """A workflow whose one step is the workflow ``workspace/workflow_id`` of this manager, by reference."""
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [{"type": "roboflow_core/inner_workflow@v1", "name": "counted", "workflow_workspace_id": workspace,
                   "workflow_id": workflow_id, "parameter_bindings": {"image": "$inputs.image"}}],
        "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.counted.predictions"}],
    }


def test_inner_workflows_by_reference_name_this_manager_s_workflows(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "people.json").write_text(json.dumps(detection(0.41)))  # a file of the directory
    manager = start_manager(workflows_directory=tmp_path)
    register_worker(redis_client)

    assert put(manager.port, inner(), workflow_id="outer")["response"]["status"] == "success"
    middle = inner("outer")  # a reference to a workflow that itself refers to another
    assert put(manager.port, middle, workflow_id="outermost")["response"]["status"] == "success"
    by_name = call(manager.port, named_init(workflow_id="outermost"))
    inline = call(manager.port, {**named_init(), "processing_configuration": {
        "type": "WorkflowConfiguration", "workflow_specification": inner()}})
    missing = put(manager.port, inner("ghost"), workflow_id="broken")
    put(manager.port, inner("loop_b"), workflow_id="loop_a")  # refused: loop_b is not there yet
    cycle = put(manager.port, inner("loop_a"), workflow_id="loop_a")

    assert [reply["response"]["status"] for reply in (by_name, inline)] == ["success", "success"]
    specs = [dispatched["spec"] for dispatched in fake_worker.calls]
    steps = [step["name"] for step in specs[0]["workflow"]["steps"]]
    assert steps == ["counted__counted__model"]  # outermost -> outer -> people, inlined innermost first
    assert '"confidence": 0.41' in json.dumps(specs[0]) and '"confidence": 0.41' in json.dumps(specs[1])
    assert missing["response"]["error_type"] == "not_found"
    assert "acme/ghost" in missing["response"]["error_message"]
    assert "specification.steps[0]" in missing["response"]["error_message"]
    assert cycle["response"]["error_type"] == "invalid_payload"
    assert "cycle (acme/loop_a -> acme/loop_a)" in cycle["response"]["error_message"]
