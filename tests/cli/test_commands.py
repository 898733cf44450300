"""Every manager command of ``vsim``, in-process, against the real stack (manager, Celery worker,
Redis, the ONNX model on real video)."""

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import BIKES, VTEST, start, status_line, terminate, track, vsim
from tests.support.stack import Stack
from tests.support.streams import free_port
from tests.support.waiting import wait_until
from tools.payloads import MODEL_ID, newer_init

SOURCE_ROW = re.compile(r"^(?P<id>\d+)\s+(?P<state>[A-Z_]+)\s+(?P<decode>[\d.]+)\s+(?P<infer>[\d.]+)\s+"
                        r"(?P<e2e>[\d.]+)\s+(?P<reference>\S+)$")


@pytest.fixture(scope="module")
def pipeline(stack: Stack) -> Iterator[str]:
    """A pipeline started from flags that runs for the whole module (a file, paced to a few fps)."""
    pipeline_id = start(stack, "--video", VTEST, "--max-fps", "4", "--results-buffer-size", "500")
    yield pipeline_id
    terminate(stack, pipeline_id)


def _source_rows(stack: Stack, pipeline_id: str) -> list[re.Match[str]]:
    result = vsim("--port", stack.port, "status", pipeline_id)
    assert result.code == 0, result
    return [match for line in result.lines if (match := SOURCE_ROW.match(line))]


def test_start_from_flags_list_and_status(stack: Stack, pipeline: str) -> None:
    assert re.fullmatch(r"[0-9a-f-]{36}", pipeline)
    listed = vsim("--port", stack.port, "list")
    assert listed.code == 0 and pipeline in listed.lines
    assert pipeline in json.loads(vsim("--port", stack.port, "list", "--json").out)["pipelines"]

    wait_until(lambda: [(m["state"], m["reference"]) for m in _source_rows(stack, pipeline)]
               == [("RUNNING", VTEST)], timeout=30)
    table = vsim("--port", stack.port, "status", pipeline)
    assert table.lines[0] == f"pipeline    {pipeline}"
    assert status_line(stack, pipeline, "state") == "RUNNING"
    assert status_line(stack, pipeline, "restarts") == "0"
    assert status_line(stack, pipeline, "last error") == "-"
    assert re.fullmatch(r"[\d.]+ fps", status_line(stack, pipeline, "throughput"))
    (row,) = _source_rows(stack, pipeline)
    assert float(row["infer"]) > 0 and float(row["e2e"]) >= float(row["infer"])
    assert "recent events" in table.out and "SOURCE_STATE_UPDATE" in table.out
    assert "INITIALISING -> RUNNING" in vsim("--port", stack.port, "status", pipeline, "--events", "50").out

    raw = json.loads(vsim("--port", stack.port, "status", pipeline, "--json").out)
    assert raw["context"]["pipeline_id"] == pipeline
    assert raw["report"]["pipeline_state"] == "RUNNING"
    assert raw["report"]["sources_metadata"][0]["source_properties"]["width"] == 768


def test_consume_takes_results_and_drops_excluded_fields(stack: Stack, pipeline: str) -> None:
    def consumed() -> dict[str, object]:
        result = vsim("--port", stack.port, "consume", pipeline, "--max", "5", "--exclude", "model_id")
        assert result.code == 0, result
        return dict(json.loads(result.out))

    reply: dict[str, object] = {}
    wait_until(lambda: reply.update(consumed()) or reply.get("entries"), timeout=30)
    entries = reply["entries"]
    assert isinstance(entries, list) and 1 <= len(entries) <= 5
    for entry in entries:
        (output,) = entry["outputs"]
        assert list(output) == ["predictions"]  # the workflow's outputs by name
    assert any(p["class"] == "person" for e in entries for p in e["outputs"][0]["predictions"]["predictions"])
    frame_ids = [e["frames_metadata"][0]["frame_id"] for e in entries]
    assert frame_ids == sorted(frame_ids)
    assert {"dropped", "remaining"} <= set(reply)

    single = vsim("--port", stack.port, "consume", pipeline)  # the reference's one-result reply
    assert set(json.loads(single.out)) >= {"status", "context", "outputs", "frames_metadata"}

    lines: list[str] = []
    wait_until(lambda: lines.extend(vsim("--port", stack.port, "consume", pipeline, "--max", "3", "--format",
                                         "table").lines) or lines, timeout=30)
    for line in lines:
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} src 0 # +\d+  (nothing|\d+ \w+(, \d+ [\w ]+)*)", line), line


def test_pause_resume_and_terminate_two_sources(stack: Stack) -> None:
    pipeline_id = start(stack, "--video", VTEST, "--video", BIKES, "--max-fps", "2")
    wait_until(lambda: [m["state"] for m in _source_rows(stack, pipeline_id)] == ["RUNNING", "RUNNING"],
               timeout=30)
    assert [m["reference"] for m in _source_rows(stack, pipeline_id)] == [VTEST, BIKES]

    paused = vsim("--port", stack.port, "pause", pipeline_id)
    assert (paused.code, paused.lines) == (0, [f"paused {pipeline_id}"])
    wait_until(lambda: status_line(stack, pipeline_id, "state") == "MUTED", timeout=15)
    resumed = vsim("--port", stack.port, "resume", pipeline_id, "--json")
    assert resumed.code == 0 and json.loads(resumed.out)["status"] == "success"
    wait_until(lambda: status_line(stack, pipeline_id, "state") == "RUNNING", timeout=15)

    # several ids: each is handled, a refused one is reported on stderr and sets the exit code
    mixed = vsim("--port", stack.port, "terminate", "no-such-pipeline", pipeline_id)
    assert mixed.code == 1
    assert mixed.lines == [f"terminated {pipeline_id}"]
    assert mixed.err == "error: not_found: pipeline no-such-pipeline not found\n"
    assert pipeline_id not in vsim("--port", stack.port, "list").lines
    assert status_line(stack, pipeline_id, "state") == "TERMINATED"

    refused = vsim("--port", stack.port, "pause", pipeline_id)
    assert refused.code == 1 and refused.out == ""
    assert refused.err.startswith("error: operation_error: ") and len(refused.err.splitlines()) == 1
    terminate(stack, pipeline_id)  # terminate works from every state, and waits for the worker's slot


def test_start_from_a_json_file_older_generation(stack: Stack, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(30)
        path = tmp_path / "payload.json"
        path.write_text(json.dumps({
            "model_id": MODEL_ID, "video_reference": BIKES, "max_fps": 5,
            "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": receiver.getsockname()[1]},
            "model_configuration": {"type": "object-detection", "confidence": 0.3},
        }))
        pipeline_id = start(stack, "--file", path, "--api-key", "cli-secret-key")
        datagram = json.loads(receiver.recv(65535))
    assert datagram["image"] == {"width": 640, "height": 272}
    assert datagram["inference_metadata"]["source_id"] == 0
    report = vsim("--port", stack.port, "status", pipeline_id, "--json")
    assert report.code == 0 and "cli-secret-key" not in report.out
    terminate(stack, pipeline_id)


def test_start_from_stdin_newer_generation(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = json.dumps(newer_init(VTEST, max_fps=2))  # carries "type": "init", as reference clients send it
    result = vsim("--port", stack.port, "start", "--file", "-", "--json", stdin=payload, monkeypatch=monkeypatch)
    assert result.code == 0, result
    reply = json.loads(result.out)
    assert reply["status"] == "success"
    pipeline_id = reply["context"]["pipeline_id"]
    track(stack, pipeline_id)
    assert pipeline_id in vsim("--port", stack.port, "list").lines
    terminate(stack, pipeline_id)


@pytest.mark.parametrize("command", ["status", "pause", "resume", "terminate", "consume"])
def test_unknown_pipeline_is_refused_with_exit_1(stack: Stack, command: str) -> None:
    result = vsim("--port", stack.port, command, "no-such-pipeline")
    assert (result.code, result.out) == (1, "")
    assert result.err == "error: not_found: pipeline no-such-pipeline not found\n"


def test_invalid_payload_is_refused_with_exit_1(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps({"model_id": "no-version", "video_reference": VTEST,
                                "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": 9}}))
    result = vsim("--port", stack.port, "start", "--file", path)
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("error: invalid_payload: ") and "model_id" in result.err
    assert len(result.err.splitlines()) == 1
    flags = vsim("--port", stack.port, "start", "--video", VTEST, "--device", "tpu")
    assert flags.code == 1 and flags.err.startswith("error: invalid_payload: ") and "tpu" in flags.err


def test_unreachable_or_silent_manager_exits_3() -> None:
    closed = vsim("--port", free_port(), "list")
    assert (closed.code, closed.out) == (3, "")
    assert re.fullmatch(r"error: stream manager at 127\.0\.0\.1:\d+ unreachable \(.*refused.*\)\n", closed.err)

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections (backlog), never answers
        silent_port = silent.getsockname()[1]
        result = vsim("--port", silent_port, "--timeout", "0.5", "status", "x")
    assert (result.code, result.out) == (3, "")
    assert result.err == f"error: stream manager at 127.0.0.1:{silent_port} did not answer in time\n"
