"""`make run` (tools/run_stack.py): the source named on its command line is allowed for that run only, and a
permanent error stops it at once with the reason and a non-zero status instead of retrying.

The policy tests build the manager's real settings from the environment ``make run`` gives its manager and
check references with the manager's real policy. The end-to-end tests run ``python -m tools.run_stack``
itself: its own redis-server, Flower, manager, API and worker, the real model, a real clip.
"""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.client.errors import (
    CommunicationProtocolError,
    ConnectivityError,
    ProcessesManagerAuthorisationError,
    ProcessesManagerClientError,
    ProcessesManagerInternalError,
    ProcessesManagerInvalidPayload,
    ProcessesManagerNotFoundError,
    ProcessesManagerOperationError,
)
from services.client.tcp import ManagerClient
from services.core.errors import InvalidPayloadError
from services.core.references import check_references
from services.manager.handlers import reference_policy
from services.manager.settings import ManagerSettings
from tests.support.pipelines import write_clip
from tools.embedded_redis import free_port
from tools.payloads import newer_init
from tools.run_stack import StackError, is_transient, main, source_allowance, video_reference, wait_for_init

ROOT = Path(__file__).resolve().parents[2]
VTEST = ROOT / "data" / "media" / "vtest.avi"
CLIP_FRAMES = 24
POLICY_VARIABLES = ("MANAGER_FILE_ROOTS", "MANAGER_ALLOWED_CAMERAS", "MANAGER_ALLOWED_SCHEMES")


@pytest.fixture
def manager_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The manager's working directory and an environment without reference policy variables."""
    monkeypatch.chdir(ROOT)
    for name in POLICY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def _refusal(reference: str | int, settings: ManagerSettings) -> str | None:
    try:
        check_references([reference], reference_policy(settings))
    except InvalidPayloadError as exc:
        return str(exc)
    return None


def _settings_with(monkeypatch: pytest.MonkeyPatch, allowance: dict[str, str]) -> ManagerSettings:
    for name, value in allowance.items():
        monkeypatch.setenv(name, value)
    return ManagerSettings()


def test_a_file_outside_data_is_allowed_for_that_run_only(manager_environment: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    clip, sibling = tmp_path / "clip.avi", tmp_path / "other.avi"
    clip.write_bytes(b"x")
    sibling.write_bytes(b"x")
    assert "outside the allowed roots" in (_refusal(str(clip), ManagerSettings()) or "")  # the default policy

    allowance = source_allowance(str(clip), dict(os.environ))
    assert allowance == {"MANAGER_FILE_ROOTS": f"data,{os.path.realpath(clip)}"}
    settings = _settings_with(manager_environment, allowance)
    assert _refusal(str(clip), settings) is None
    assert _refusal("data/media/vtest.avi", settings) is None  # the usual roots stay
    assert "outside the allowed roots" in (_refusal(str(sibling), settings) or "")  # the file, not its directory
    assert "outside the allowed roots" in (_refusal(str(tmp_path), settings) or "")
    assert "camera 0 is not allowed" in (_refusal(0, settings) or "")
    link = tmp_path / "link.avi"
    link.symlink_to(clip)
    assert _refusal(str(link), settings) is None  # resolved to the allowed file


def test_the_operators_own_file_roots_are_kept(manager_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"x")
    assert source_allowance(str(clip), {"MANAGER_FILE_ROOTS": "/srv/videos, data"}) == {
        "MANAGER_FILE_ROOTS": f"/srv/videos,data,{os.path.realpath(clip)}"}
    assert source_allowance(str(clip), {"MANAGER_FILE_ROOTS": ""}) == {"MANAGER_FILE_ROOTS": os.path.realpath(clip)}


def test_a_camera_index_is_allowed_alone(manager_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reference = video_reference("0")
    assert reference == 0  # an integer on the wire, as the reference's clients send a camera
    allowance = source_allowance(reference, {})
    assert allowance == {"MANAGER_ALLOWED_CAMERAS": "0"}
    settings = _settings_with(manager_environment, allowance)
    assert _refusal(0, settings) is None
    assert "camera 1 is not allowed; allowed: 0" in (_refusal(1, settings) or "")
    assert source_allowance(0, {"MANAGER_ALLOWED_CAMERAS": "2"}) == {"MANAGER_ALLOWED_CAMERAS": "2,0"}


def test_urls_are_left_to_the_schemes_policy() -> None:
    assert source_allowance("rtsp://user:pass@cam/live", {}) == {}
    assert source_allowance("udp://127.0.0.1:9", {}) == {}  # refused by the manager, not widened here


def test_sources_that_cannot_be_allowed_are_errors(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no such file"):
        source_allowance(str(tmp_path / "missing.mp4"), {})
    with pytest.raises(StackError, match="is a directory"):
        source_allowance(str(tmp_path), {})
    comma = tmp_path / "a,b.mp4"
    comma.write_bytes(b"x")
    with pytest.raises(StackError, match="contains ','"):
        source_allowance(str(comma), {})


@pytest.mark.parametrize(("error", "transient"), [
    (ConnectivityError("connection refused"), True),
    (ProcessesManagerOperationError("no worker serves queue pipelines.cpu"), True),
    (ProcessesManagerInvalidPayload("field 'video_reference' source 0: outside the allowed roots"), False),
    (ProcessesManagerNotFoundError("workflow acme/people not found"), False),
    (ProcessesManagerAuthorisationError("missing or wrong token"), False),
    (ProcessesManagerInternalError("ModelNotFoundError: model 'x/1' is not in the repository"), False),
    (CommunicationProtocolError("not a JSON envelope"), False),
])
def test_only_a_starting_stack_is_transient(error: ProcessesManagerClientError, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_manager_that_never_listens_ends_the_wait_at_its_deadline(tmp_path: Path) -> None:
    client = ManagerClient("127.0.0.1", free_port(), timeout=1.0)  # nothing listens there
    with pytest.raises(StackError, match=r"did not accept the pipeline in time; last answer \(ConnectivityError\)"):
        wait_for_init(client, newer_init("data/media/vtest.avi"), 0.0, {}, tmp_path)


def test_a_needed_process_that_exited_stops_the_wait(tmp_path: Path) -> None:
    manager = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    manager.wait()
    client = ManagerClient("127.0.0.1", free_port(), timeout=1.0)
    log = re.escape(f"see {tmp_path}/manager.log")
    with pytest.raises(StackError, match=rf"the manager exited with status 3 before the pipeline started; {log}"):
        wait_for_init(client, newer_init("data/media/vtest.avi"), float("inf"), {"manager": manager}, tmp_path)


# --- end to end: python -m tools.run_stack ---------------------------------------------------------------------


def _run_stack(video: str, log_dir: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("MANAGER_", "WORKER_", "API_", "FLOWER_", "STREAM_MANAGER")) and name != "REDIS_URL"}
    env["WORKER_INTRA_OP_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "tools.run_stack", "--video", video, "--log-dir", str(log_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _init_requests(log_dir: Path) -> list[str]:
    return [line for line in (log_dir / "manager.log").read_text().splitlines() if re.search(r"\binit \S+ -> ", line)]


def test_a_missing_file_stops_before_anything_starts(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    result = _run_stack(str(tmp_path / "missing.mp4"), logs, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"error: video '{tmp_path / 'missing.mp4'}': no such file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (logs / "manager.log").exists()  # no process was started


def test_a_missing_or_broken_workflow_file_stops_before_anything_starts(
    manager_environment: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    logs = tmp_path / "logs"
    assert main(["--workflow", str(tmp_path / "missing.json"), "--log-dir", str(logs)]) == 1
    assert f"error: workflow '{tmp_path / 'missing.json'}': No such file or directory" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["--workflow", str(broken), "--log-dir", str(logs)]) == 1
    assert f"error: workflow '{broken}' is not JSON: " in capsys.readouterr().err
    assert not logs.exists()  # nothing was started


@pytest.mark.slow
def test_a_refused_source_stops_at_once_after_one_init(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    result = _run_stack("udp://127.0.0.1:9/stream", logs, timeout=110)
    assert result.returncode == 1, result.stderr
    assert re.search(r"error: the manager refused the pipeline \(invalid_payload\): .*scheme 'udp' is not allowed",
                     result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    # Asked once and told no: not retried (the old script asked every 0.5 s for two minutes).
    assert len(_init_requests(logs)) == 1, _init_requests(logs)
    assert " started on " not in result.stderr  # no pipeline was started


@pytest.mark.slow
def test_a_file_outside_data_runs_to_its_end(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    clip = write_clip(VTEST, tmp_path / "elsewhere" / "clip.mp4", CLIP_FRAMES)
    assert not clip.resolve().is_relative_to(ROOT / "data")
    logs = tmp_path / "logs"
    result = _run_stack(str(clip), logs, timeout=110)
    assert result.returncode == 0, result.stderr[-3000:]
    frames = [line for line in result.stdout.splitlines() if line.startswith("[src 0 #")]
    assert len(frames) == CLIP_FRAMES, result.stdout[-2000:]
    assert sum("person" in line for line in frames) >= CLIP_FRAMES // 2
    assert re.search(r"done: pipeline \S+ ended; detections seen: \d+ person", result.stderr), result.stderr[-2000:]


@pytest.mark.slow
def test_a_pipeline_that_fails_ends_the_run_with_its_reason(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    logs = tmp_path / "logs"
    result = _run_stack(str(fake), logs, timeout=110)
    assert result.returncode == 1, result.stderr[-3000:]
    assert re.search(rf"error: pipeline \S+ failed: source 0: cannot open video source {re.escape(str(fake))}",
                     result.stderr), result.stderr[-2000:]
    assert "done:" not in result.stderr and "Traceback" not in result.stderr
