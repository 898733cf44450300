"""The command line without a stack: payloads built from flags (checked by the manager's own init
compiler), usage errors, local payload errors, and the human renderings of reports and results."""

import json
from pathlib import Path

import pytest

from services.client.cli import build_parser, frame_lines, init_payload, main, status_table
from services.client.models import StatusReport
from services.core.plan import compile_init
from services.core.states import BufferFillingStrategy
from tests.cli.support import installed_vsim, python_m_vsim, run, vsim

COMMANDS = ("start", "list", "status", "pause", "resume", "terminate", "consume", "watch")


def _payload(*argv: str) -> dict[str, object]:
    parser = build_parser()
    return init_payload(parser, parser.parse_args(["start", *argv]))


def test_flags_build_a_newer_generation_payload_the_manager_compiles() -> None:
    payload = _payload("--video", "data/a.mp4", "--video", "0", "--max-fps", "5", "--confidence", "0.4",
                       "--iou-threshold", "0.45", "--device", "gpu", "--results-buffer-size", "10",
                       "--consumption-timeout", "30", "--api-key", "k-123", "--buffer-filling", "drop_oldest",
                       "--buffer-consumption", "eager", "--model", "coco/3")
    assert "video_configuration" in payload
    spec = compile_init(payload)
    assert spec.video_references == ["data/a.mp4", 0]  # a camera index stays an integer
    assert spec.workflow is not None
    step = spec.workflow.steps[0].params
    assert (spec.max_fps, step["confidence"], step["iou_threshold"], step["model_id"]) == (5, 0.4, 0.45, "coco/3")
    assert (spec.device, spec.results_buffer_size, spec.consumption_timeout) == ("gpu", 10, 30)
    assert spec.source_buffer_filling_strategy is BufferFillingStrategy.DROP_OLDEST
    assert spec.api_key is not None and spec.api_key.get_secret_value() == "k-123"
    assert spec.udp_sink is None


@pytest.mark.parametrize("udp", [(), ("--udp", "127.0.0.1:9")], ids=["newer", "older"])
def test_processing_mode_flags_reach_the_spec_of_either_generation(udp: tuple[str, ...]) -> None:
    from services.core.plan import ProcessingMode

    spec = compile_init(_payload("--video", "rtsp://cam/live", "--processing-mode", "freshest",
                                 "--max-staleness", "0.2", *udp))
    assert (spec.processing_mode, spec.max_staleness) == (ProcessingMode.FRESHEST, 0.2)
    spec = compile_init(_payload("--video", "a.mp4", "--processing-mode", "every_frame", *udp))
    assert (spec.processing_mode, spec.max_staleness) == (ProcessingMode.EVERY_FRAME, None)


def test_udp_flag_builds_an_older_generation_payload() -> None:
    payload = _payload("--video", "rtsp://cam/live", "--udp", "127.0.0.1:9999", "--confidence", "0.3")
    assert payload["sink_configuration"] == {"type": "udp_sink", "host": "127.0.0.1", "port": 9999}
    spec = compile_init(payload)
    assert spec.udp_sink is not None and (spec.udp_sink.host, spec.udp_sink.port) == ("127.0.0.1", 9999)
    assert (spec.model_id, spec.confidence, spec.video_references) == ("yolov3-tiny/coco-416", 0.3,
                                                                      ["rtsp://cam/live"])
    assert compile_init(_payload("--video", "a.mp4", "--udp", "[::1]:7")).udp_sink.host == "::1"  # type: ignore[union-attr]


def test_api_key_fills_in_a_file_payload_only_when_it_has_none(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps({"model_id": "a/1", "video_reference": "v.mp4", "api_key": "own"}))
    assert _payload("--file", str(path), "--api-key", "other")["api_key"] == "own"
    path.write_text(json.dumps({"model_id": "a/1", "video_reference": "v.mp4"}))
    assert _payload("--file", str(path), "--api-key", "other")["api_key"] == "other"


@pytest.mark.parametrize("argv", [
    ["start"],  # neither --video nor --file
    ["start", "--file", "p.json", "--video", "a.mp4"],
    ["start", "--file", "p.json", "--max-fps", "3"],
    ["start", "--video", "a.mp4", "--udp", "127.0.0.1:9", "--results-buffer-size", "5"],
    ["start", "--video", "a.mp4", "--udp", "127.0.0.1:9", "--consumption-timeout", "5"],
    ["start", "--video", "a.mp4", "--udp", "no-port"],
    ["start", "--video", "a.mp4", "--max-fps", "0"],
    ["start", "--video", "a.mp4", "--confidence", "2"],
    ["start", "--video", "a.mp4", "--buffer-filling", "sometimes"],
    ["status"],
    ["terminate"],
    ["consume", "x", "--max", "0"],
    ["watch", "x", "--format", "csv"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error:" in captured.err


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    (None, "cannot read payload"),
])
def test_unusable_payload_files_exit_2_before_any_request(tmp_path: Path, content: str | None,
                                                          message: str) -> None:
    path = tmp_path / "payload.json"
    if content is not None:
        path.write_text(content)
    result = vsim("--port", "1", "start", "--file", path)  # port 1: a request would fail differently
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("error: payload") or result.err.startswith("error: cannot read payload")
    assert message in result.err
    assert len(result.err.splitlines()) == 1


def test_status_table_redacts_and_shows_missing_values() -> None:
    report = StatusReport.model_validate({
        "pipeline_state": "RUNNING", "restarts": 2, "last_error": "cannot open rtsp://admin:hunter2@cam/live",
        "inference_throughput": 12.345, "results_dropped": 7,
        "latency_reports": [{"source_id": 0, "frame_decoding_latency": 0.0031, "inference_latency": 0.07,
                             "e2e_latency": 0.0731},
                            {"source_id": 1}],
        "sources_metadata": [
            {"source_id": 0, "state": "RUNNING", "source_reference": "data/media/vtest.avi"},
            {"source_id": 1, "state": "RESTARTING", "source_reference": "rtsp://admin:hunter2@cam/live?token=abc",
             "offline_since": "2024-01-01T12:00:00+00:00", "reconnect_attempts": 4},
        ],
        "video_source_status_updates": [
            {"timestamp": f"2024-01-01T12:00:0{i}+00:00", "severity": 20, "event_type": "SOURCE_STATE_UPDATE",
             "payload": {"source_id": 1, "previous_state": "RUNNING", "new_state": f"S{i}"}} for i in range(8)
        ] + [{"timestamp": "2024-01-01T12:00:09+00:00", "severity": 40, "event_type": "SOURCE_ERROR",
              "payload": {"source_id": 1, "error_message": "auth failed for rtsp://admin:hunter2@cam/live"}}],
    })
    text = "\n".join(status_table("p-1", report, events=3))
    assert "hunter2" not in text and "abc" not in text
    assert "state       RUNNING" in text and "restarts    2" in text and "throughput  12.3 fps" in text
    assert "7 results trimmed unread" in text
    rows = [line.split() for line in text.splitlines() if line[:2] in ("0 ", "1 ")]
    assert rows[0] == ["0", "RUNNING", "3.1", "70.0", "73.1", "data/media/vtest.avi"]
    assert rows[1][:5] == ["1", "RESTARTING", "-", "-", "-"]
    assert "4 reconnect attempts" in text
    events = text.split("recent events")[1].splitlines()[2:]
    assert len(events) == 3  # the latest three
    assert "ERROR" in events[-1] and "SOURCE_ERROR" in events[-1]
    assert "RUNNING -> S7" in events[-2]


def test_frame_lines_skip_sources_without_a_frame() -> None:
    outputs = [None, {"predictions": [{"class": "person"}, {"class": "car"}, {"class": "person"}]},
               {"predictions": []}]
    metadata = [None, {"frame_timestamp": "2024-01-01T12:00:01.123456", "frame_id": 101, "source_id": 1},
                {"frame_timestamp": "2024-01-01T12:00:01.2", "frame_id": 7, "source_id": 2}]
    assert frame_lines(outputs, metadata) == ["12:00:01.123 src 1 #  101  2 person, 1 car",
                                              "12:00:01.200 src 2 #    7  nothing"]


def test_help_of_every_command_as_a_real_process() -> None:
    main_help = run([str(installed_vsim()), "--help"])
    assert main_help.returncode == 0, main_help.stderr
    for command in COMMANDS:
        assert command in main_help.stdout
    assert "exit codes:" in main_help.stdout
    for command in COMMANDS:
        result = run(python_m_vsim(command, "--help"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: vsim {command}")
        assert "examples:" in result.stdout and "exit codes:" in result.stdout
    assert "without consuming" in run(python_m_vsim("watch", "--help")).stdout


def test_secrets_from_the_environment_never_reach_the_help(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ROBOFLOW_API_KEY", "rf-secret-key")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-password@db:6379/0")
    monkeypatch.setenv("STREAM_MANAGER_TOKEN", "manager-token")
    for command in ("start", "watch"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
    text = capsys.readouterr().out
    assert "rf-secret-key" not in text and "redis-password" not in text and "manager-token" not in text


def test_the_command_line_loads_no_heavy_module() -> None:
    probe = ("import sys, services.client.cli; "
             "print(sorted(m for m in ('cv2', 'onnxruntime', 'celery', 'numpy') if m in sys.modules))")
    result = run([python_m_vsim()[0], "-c", probe])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
