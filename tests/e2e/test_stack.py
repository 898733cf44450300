"""The whole system over TCP: the manager and Celery worker processes, real Redis, the real model
on real video. Each test drives the manager exactly as a reference client would."""

import json
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.core import keys
from tests.manager.fakes import call
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.waiting import settled, wait_until
from tools.payloads import MODEL_ID as MODEL
from tools.payloads import newer_init

VTEST = "data/media/vtest.avi"
BIKES = "data/media/bikes.mp4"


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with running_stack(redis_server.url, devices="cpu,edge") as running:
        running.start_manager()
        running.start_worker("cpu", "pipelines.cpu", concurrency=2)
        running.start_worker("edge", "pipelines.edge", concurrency=1)
        yield running


def _ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert list(reply) == ["request_id", "response", "pipeline_id"]
    assert reply["response"]["status"] == "success", reply
    return dict(reply["response"])


def _consume(port: int, pipeline_id: str, count: int = 100) -> list[dict[str, Any]]:
    response = _ok(call(port, {"type": "consume_result", "pipeline_id": pipeline_id, "excluded_fields": [],
                               "max_entries": count}))
    return list(response.get("entries", []))


def _drain(port: int, pipeline_id: str) -> int:
    drained = 0
    while entries := _consume(port, pipeline_id):
        drained += len(entries)
    return drained


def _terminate(port: int, pipeline_id: str) -> None:
    _ok(call(port, {"type": "terminate", "pipeline_id": pipeline_id}))
    assert pipeline_id not in _ok(call(port, {"type": "list_pipelines"}))["pipelines"]


def test_lifecycle_of_a_pipeline_over_tcp(stack: Stack) -> None:
    reply = call(stack.port, newer_init(VTEST, max_fps=5))
    _ok(reply)
    pipeline_id = reply["pipeline_id"]
    assert pipeline_id in _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"]

    # status: RUNNING with a sane report
    def running() -> bool:
        report = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]
        return bool(report["sources_metadata"][0]["state"] == "RUNNING" and report["inference_throughput"] > 0)

    wait_until(running, timeout=30)
    report = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]
    assert report["pipeline_state"] == "RUNNING"
    assert report["sources_metadata"][0]["source_properties"]["width"] == 768
    assert report["latency_reports"][0]["inference_latency"] > 0
    assert 0 < report["inference_throughput"] < 20  # max_fps 5 paces the file

    # consume: the reference shape, with person detections
    single: dict[str, Any] = {}
    deadline = time.monotonic() + 20
    while not single.get("outputs") and time.monotonic() < deadline:
        single = _ok(call(stack.port, {"type": "consume_result", "pipeline_id": pipeline_id,
                                       "excluded_fields": []}))
        time.sleep(0.2)
    assert set(single) >= {"status", "outputs", "frames_metadata"}
    assert len(single["outputs"]) == len(single["frames_metadata"]) == 1
    persons = [p for p in single["outputs"][0]["predictions"]["predictions"] if p["class"] == "person"]
    assert persons, single["outputs"][0]
    assert single["frames_metadata"][0]["source_id"] == 0

    # mute: no new results
    _ok(call(stack.port, {"type": "mute", "pipeline_id": pipeline_id}))
    # what was in flight when the mute landed drains; then nothing new for 2 s (the camera sends 10 fps)
    consumed = [0]

    def consumed_so_far() -> int:
        consumed[0] += _drain(stack.port, pipeline_id)
        return consumed[0]

    settled(consumed_so_far, quiet=2.0, timeout=30)
    assert _consume(stack.port, pipeline_id) == []
    report = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]
    assert report["pipeline_state"] == "MUTED"

    # resume: results again
    _ok(call(stack.port, {"type": "resume", "pipeline_id": pipeline_id}))
    wait_until(lambda: bool(_consume(stack.port, pipeline_id)), timeout=15)

    # terminate: gone from the list, the worker's slot free again
    _terminate(stack.port, pipeline_id)
    wait_until(lambda: (stack.registration("cpu@test") or {}).get("free_slots") == 2, timeout=15)


def _maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as maps:
        return maps.read()


def test_pipeline_processes_share_the_engine_forked_from_the_main_process_and_leave_onnxruntime_to_the_service(
        stack: Stack) -> None:
    import psutil

    main = psutil.Process(stack.workers["edge"].pid)
    # the edge worker has run no pipeline in this module before this test: its pool child is fresh
    children = main.children()
    services = [child for child in children if "services.worker.inference" in " ".join(child.cmdline())]
    pool = [child for child in children if child not in services]
    assert len(services) == 1, "one inference service process per worker"
    assert pool, "the prefork pool has its pipeline process"
    for process in (main, *pool):  # imported before the fork: an INIT never waits for these imports
        assert all(name in _maps(process.pid) for name in ("cv2", "scipy"))
    wait_until(lambda: "onnxruntime_pybind11_state" in _maps(services[0].pid), timeout=60)  # the preloaded model
    assert not any("onnxruntime_pybind11_state" in _maps(process.pid) for process in (main, *pool)), (
        "onnxruntime (and with it CUDA on a GPU host) lives in the inference service only")
    private_mib = [process.memory_full_info().uss / 2**20 for process in pool]
    assert max(private_mib) < 48, f"an idle pipeline process shares the engine's pages: USS {private_mib} MiB"


def test_older_generation_with_udp_sink(stack: Stack) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(30)
    payload = {
        "model_id": MODEL,
        "video_reference": BIKES,
        "max_fps": 10,
        "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": receiver.getsockname()[1]},
        "model_configuration": {"type": "object-detection", "confidence": 0.3, "iou_threshold": 0.45},
        "api_key": "secret-api-key",
        "type": "init",
    }
    reply = call(stack.port, payload)
    _ok(reply)
    datagrams = [json.loads(receiver.recv(65535)) for _ in range(5)]
    for datagram in datagrams:
        assert datagram["image"] == {"width": 640, "height": 272}
        assert set(datagram["inference_metadata"]) == {"source_id", "frame_id", "frame_decoding_time",
                                                       "emission_time"}
    assert [d["inference_metadata"]["frame_id"] for d in datagrams] == sorted(
        d["inference_metadata"]["frame_id"] for d in datagrams)
    report = _ok(call(stack.port, {"type": "status", "pipeline_id": reply["pipeline_id"]}))["report"]
    assert "secret-api-key" not in json.dumps(report)
    _terminate(stack.port, reply["pipeline_id"])
    receiver.close()


def test_pipeline_lands_on_the_requested_device_queue(stack: Stack) -> None:
    reply = call(stack.port, newer_init(VTEST, max_fps=2, device="edge"))
    _ok(reply)
    pipeline_id = reply["pipeline_id"]
    record = stack.client.hgetall(keys.pipeline_record(pipeline_id))
    assert record[b"device"] == b"edge"
    assert record[b"owner"].decode().startswith("edge@test")
    _terminate(stack.port, pipeline_id)


def test_init_for_a_queue_without_workers_leaves_nothing(stack: Stack) -> None:
    before = set(stack.client.keys("*"))
    reply = call(stack.port, newer_init(VTEST, device="gpu"))
    assert reply["response"]["status"] == "failure"
    assert reply["response"]["error_type"] == "invalid_payload"  # gpu is not a configured device here
    reply = call(stack.port, newer_init("data/media/missing.avi"))
    assert reply["response"]["status"] == "failure", reply
    assert reply["pipeline_id"] not in _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"]
    wait_until(lambda: {k for k in stack.client.keys("*") if b":pipeline:" in k}
               <= {k for k in before if b":pipeline:" in k}, timeout=10)


def test_a_file_pipeline_ends_by_itself_and_its_status_stays_readable(stack: Stack) -> None:
    reply = call(stack.port, newer_init(BIKES))
    _ok(reply)
    pipeline_id = reply["pipeline_id"]
    wait_until(lambda: pipeline_id not in _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"],
               timeout=90)
    report = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]
    assert report["pipeline_state"] == "ENDED"
    assert report["sources_metadata"][0]["state"] == "ENDED"


def test_a_processing_mode_and_its_stale_drops_show_in_status(stack: Stack) -> None:
    # A file decodes faster than the model, so every prepared round waits in the queue for an inference
    # thread (tens of ms on CPU): with a 5 ms limit most frames go stale before inference starts.
    video = {"type": "VideoConfiguration", "video_reference": BIKES, "processing_mode": "freshest",
             "max_staleness": 0.005}
    reply = call(stack.port, {**newer_init(BIKES), "video_configuration": video})
    _ok(reply)
    pipeline_id = reply["pipeline_id"]
    wait_until(lambda: pipeline_id not in _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"],
               timeout=90)
    report = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]

    source = report["sources_metadata"][0]
    assert (source["processing_mode"], source["max_staleness"]) == ("freshest", 0.005)
    assert (source["buffer_filling_strategy"], source["buffer_consumption_strategy"]) == ("DROP_OLDEST", "EAGER")
    dropped = source["frames_dropped"]
    assert dropped["stale"] > 0, dropped
    # Every decoded frame is either processed or dropped for a counted cause.
    assert source["frames_decoded"] == 250 == report["frames_processed"] + sum(dropped.values()), (report, dropped)

    contradiction = {**video, "max_staleness": None, "source_buffer_consumption_strategy": "LAZY"}
    refused = call(stack.port, {**newer_init(BIKES), "video_configuration": contradiction})["response"]
    assert refused["status"] == "failure" and refused["error_type"] == "invalid_payload", refused
    assert "video_configuration.processing_mode" in refused["error_message"]
    assert "video_configuration.source_buffer_consumption_strategy" in refused["error_message"]


def test_a_manager_restart_loses_no_pipeline(stack: Stack) -> None:
    reply = call(stack.port, newer_init(VTEST, max_fps=2))
    _ok(reply)
    pipeline_id = reply["pipeline_id"]
    listed = _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"]
    status = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]

    stack.stop_manager(signal.SIGKILL)
    stack.start_manager()

    assert _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"] == listed
    after = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]
    assert after["pipeline_state"] == status["pipeline_state"]
    assert [m["source_reference"] for m in after["sources_metadata"]] == [
        m["source_reference"] for m in status["sources_metadata"]]
    _ok(call(stack.port, {"type": "mute", "pipeline_id": pipeline_id}))
    _ok(call(stack.port, {"type": "resume", "pipeline_id": pipeline_id}))
    _terminate(stack.port, pipeline_id)
