"""Camera faults end to end: the real manager and Celery worker processes, the real model, real
ffmpeg (HTTP) and GStreamer (RTSP) cameras that the tests start, kill, restart or leave hanging.

What must hold (README, "When something dies"):

- a live camera unreachable at start, dropped mid-stream or back after a long outage keeps its
  pipeline alive: INIT succeeds (sources are opened by the task, after it replied), the source
  shows ``RESTARTING`` with ``offline_since`` (kept across attempts) and a growing
  ``reconnect_attempts``, the pipeline stays listed and ``RUNNING``, and results flow again once
  the camera is back, the source's frame ids continuing; it is never auto-terminated;
- ``terminate`` succeeds from every state: PENDING (no task took it yet), INITIALISING (model
  loading; or a source stuck inside OpenCV's open of a camera that never answers), RUNNING, MUTED,
  RESTARTING, again on a TERMINATED one. The pipeline then leaves ``list_pipelines`` and its record
  says ``TERMINATED``. A pipeline that had already finished by itself answers success too and keeps
  its state (``ENDED``, or ``FAILED`` with its ``last_error``): terminate is idempotent and does not
  rewrite how it finished. An id whose INIT failed is ``not_found`` (a failed INIT leaves nothing);
- a pipeline whose files all ended finishes by itself (``ENDED``, unlisted, status and results
  still readable for ``MANAGER_FINISHED_TTL``); a file beside a live camera does not end it;
- ``consumption_timeout`` as in the reference (``InferencePipelineManager._check_pipeline_timeout``):
  its clock starts when the pipeline starts and only a CONSUME_RESULT that returns at least one
  result resets it (an empty one does not: the reference returns before touching
  ``_last_consume_time`` when its buffer is empty); checked every second, the pipeline then
  terminates itself (``TERMINATED``, ``last_error`` "consumption_timeout: ..."); null = never.
  Consequence, as in the reference: a pipeline that produces nothing (muted, or its only camera
  offline) is terminated once its timeout passes, however often the client asks. A timeout is a
  lease the client renews by consuming results; leave it null for a pipeline meant to stay muted
  or to ride out long camera outages.

The worker runs with a reconnect backoff of 0.2 s initial / 1 s max
(``WORKER_RECONNECT_INITIAL_DELAY`` / ``WORKER_RECONNECT_MAX_DELAY``; defaults 0.5 / 30 s), so
"the camera is back after minutes" compresses to seconds: what matters is that several reconnect
attempts fail in a row without the pipeline being given up. Each terminate's wall time is printed
(``terminate from <state>: <ms> ms``, shown even without ``-s``) for the documentation; no test
asserts on timing beyond the client's own timeouts.
"""

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.client import ManagerClient
from services.client.errors import ProcessesManagerClientError, ProcessesManagerNotFoundError
from services.core import keys
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, running_stack
from tests.support.streams import LiveStream, free_port, silent_camera
from tests.support.waiting import wait_until
from tools.payloads import newer_init

ROOT = Path(__file__).resolve().parents[2]
VTEST = str(ROOT / "data" / "media" / "vtest.avi")  # 768x576, 10 fps, pedestrians
BACKOFF = {"WORKER_RECONNECT_INITIAL_DELAY": "0.2", "WORKER_RECONNECT_MAX_DELAY": "1"}
MAX_FPS = 5  # live cameras are read at this rate: little CPU, results within a second
INIT_TIMEOUT = 10  # MANAGER_INIT_TIMEOUT (default 30 s): an INIT that no task answers fails sooner
SLOTS = 3


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        # the tests' clips are cut into tmp_path: pytest's temporary directory is a file root too
        running.start_manager(MANAGER_INIT_TIMEOUT=str(INIT_TIMEOUT),
                              MANAGER_FILE_ROOTS=f"data,{tmp_path_factory.getbasetemp()}")
        # three slots: the consumption_timeout test runs three pipelines side by side
        running.start_worker_with_env("cpu", "pipelines.cpu", BACKOFF, concurrency=SLOTS)
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[ManagerClient]:
    manager = ManagerClient("127.0.0.1", stack.port, timeout=10)
    before = set(manager.list_pipelines().pipelines)
    yield manager
    for pipeline_id in set(manager.list_pipelines().pipelines) - before:  # a failed test leaves none running
        manager.terminate(pipeline_id)


@pytest.fixture
def short_clips(tmp_path: Path) -> tuple[str, str]:
    """Two real clips of 12 and 24 frames cut from vtest.avi (so a file pipeline ends in seconds)."""
    clips = []
    for frames in (12, 24):
        clip = tmp_path / f"vtest-{frames}.avi"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", VTEST, "-frames:v", str(frames),
                        "-c:v", "mjpeg", "-q:v", "3", str(clip)], check=True, timeout=60)
        clips.append(str(clip))
    return clips[0], clips[1]


# ----------------------------------------------------------------------------------------- helpers


def start(client: ManagerClient, video: str | list[str], **extra: Any) -> str:
    reply = client.initialise(newer_init(video, **extra))  # type: ignore[arg-type]
    pipeline_id = reply.context.pipeline_id
    assert pipeline_id is not None and pipeline_id in client.list_pipelines().pipelines
    return pipeline_id


def report_of(client: ManagerClient, pipeline_id: str) -> dict[str, Any]:
    return client.status(pipeline_id).report.model_dump()


def source(client: ManagerClient, pipeline_id: str, source_id: int = 0) -> dict[str, Any]:
    metadata: dict[str, Any] = report_of(client, pipeline_id)["sources_metadata"][source_id]
    return metadata


def is_offline(client: ManagerClient, pipeline_id: str, attempts: int = 1) -> bool:
    meta = source(client, pipeline_id)
    return bool(meta["state"] == "RESTARTING" and meta["offline_since"] and meta["reconnect_attempts"] >= attempts)


def source_state(client: ManagerClient, pipeline_id: str, source_id: int = 0) -> str:
    return str(source(client, pipeline_id, source_id)["state"])


def consume(client: ManagerClient, pipeline_id: str) -> list[dict[str, Any]]:
    """Every unread result entry (oldest first), as plain dicts."""
    entries = client.consume(pipeline_id, max_entries=100).entries or []
    return [entry.model_dump() for entry in entries]


def frame_ids(entries: list[dict[str, Any]], source_id: int = 0) -> list[int]:
    return [int(entry["frames_metadata"][source_id]["frame_id"]) for entry in entries
            if entry["frames_metadata"][source_id] is not None]


def wait_for_results(client: ManagerClient, pipeline_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def some() -> bool:
        seen.extend(consume(client, pipeline_id))
        return bool(seen)

    wait_until(some, timeout=timeout, interval=0.2,
               message=lambda: f"no results from {pipeline_id}: {report_of(client, pipeline_id)}")
    return seen


def listed(client: ManagerClient, pipeline_id: str) -> bool:
    return pipeline_id in client.list_pipelines().pipelines


def terminate(client: ManagerClient, pipeline_id: str, state: str, capsys: pytest.CaptureFixture[str],
              expected: str = "TERMINATED") -> float:
    """TERMINATE, timed; it must succeed, unlist the pipeline and leave a readable final record."""
    started = time.perf_counter()
    reply = client.terminate(pipeline_id)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nterminate from {state}: {elapsed * 1000:.0f} ms")
    assert reply.status == "success" and reply.context.pipeline_id == pipeline_id
    assert not listed(client, pipeline_id)
    assert report_of(client, pipeline_id)["pipeline_state"] == expected
    return elapsed


def no_key_lives_forever(stack: Stack, pipeline_id: str) -> bool:
    """Once a pipeline is over, every key of it expires (TTL) or is gone."""
    return all(stack.client.ttl(key) != -1 for key in keys.pipeline_keys(pipeline_id))


def record_field(stack: Stack, pipeline_id: str, field: str) -> str | None:
    raw = stack.client.hget(keys.pipeline_record(pipeline_id), field)
    return raw.decode() if isinstance(raw, bytes) else raw


@contextlib.contextmanager
def worker_paused(stack: Stack) -> Iterator[None]:
    """The worker's main process stopped (SIGSTOP): it takes no new task, like a worker too busy to
    start one; the pipelines its pool processes run carry on."""
    worker = stack.workers["cpu"]
    worker.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        worker.send_signal(signal.SIGCONT)
        stack.wait_for_registration("cpu@test")


class BackgroundInit:
    """An INIT sent from a thread, so the test can act while it is in flight."""

    def __init__(self, client: ManagerClient, video: str) -> None:
        self._client = client
        self._before = set(client.list_pipelines().pipelines)
        self.error: ProcessesManagerClientError | None = None
        self._thread = threading.Thread(target=self._run, args=(newer_init(video, max_fps=MAX_FPS),), daemon=True)
        self._thread.start()

    def _run(self, payload: dict[str, Any]) -> None:
        try:
            self._client.initialise(payload)
        except ProcessesManagerClientError as exc:
            self.error = exc

    def pipeline_id(self) -> str:
        """The new pipeline's id, as soon as the manager has written its record."""
        found: list[str] = []

        def listed_now() -> bool:
            found.extend(set(self._client.list_pipelines().pipelines) - self._before)
            return bool(found)

        wait_until(listed_now, timeout=10, interval=0.002)
        return found[0]

    def wait_until_claimed(self, stack: Stack) -> str:
        """The record's state as soon as a task has claimed it (INITIALISING, unless it was quick)."""
        pipeline_id = self.pipeline_id()
        wait_until(lambda: record_field(stack, pipeline_id, "state") != "PENDING", timeout=30, interval=0.002)
        return str(record_field(stack, pipeline_id, "state"))

    def join(self) -> None:
        self._thread.join(timeout=INIT_TIMEOUT + 20)
        assert not self._thread.is_alive(), "INIT never answered"


def wait_for_free_slots(stack: Stack, slots: int = SLOTS) -> None:
    wait_until(lambda: (stack.registration("cpu@test") or {}).get("free_slots") == slots, timeout=20)


# ----------------------------------------------------------------------------------------- reconnects


@pytest.mark.parametrize("kind", ["http", "rtsp"])
def test_camera_unreachable_at_start_keeps_the_pipeline_until_it_comes_up(
        client: ManagerClient, stack: Stack, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    camera = LiveStream.http(VTEST) if kind == "http" else LiveStream.rtsp()
    try:
        pipeline_id = start(client, camera.url, max_fps=MAX_FPS)  # INIT succeeds: the camera is not needed yet

        wait_until(lambda: is_offline(client, pipeline_id, attempts=2), timeout=20)
        first = source(client, pipeline_id)
        wait_until(lambda: source(client, pipeline_id)["reconnect_attempts"] > first["reconnect_attempts"],
                   timeout=10)
        assert source(client, pipeline_id)["offline_since"] == first["offline_since"]  # offline since the start
        report = report_of(client, pipeline_id)
        assert report["pipeline_state"] == "RUNNING" and listed(client, pipeline_id)
        assert consume(client, pipeline_id) == []

        camera.start()
        entries = wait_for_results(client, pipeline_id)
        if kind == "http":  # the RTSP camera streams a test pattern: results, but nothing to detect
            assert any(p["class"] == "person" for e in entries for p in e["outputs"][0]["predictions"]["predictions"])
        wait_until(lambda: source_state(client, pipeline_id) == "RUNNING", timeout=10)
        assert source(client, pipeline_id)["offline_since"] is None
        terminate(client, pipeline_id, f"RUNNING ({kind} camera that came up late)", capsys)
    finally:
        camera.stop()


@pytest.mark.parametrize("kind", ["http", "rtsp"])
def test_camera_dropped_mid_stream_is_not_given_up_and_frame_ids_continue(
        client: ManagerClient, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    camera = LiveStream.http(VTEST) if kind == "http" else LiveStream.rtsp()
    with camera:
        pipeline_id = start(client, camera.url, max_fps=MAX_FPS)
        before = frame_ids(wait_for_results(client, pipeline_id))

        camera.stop()  # the camera loses power
        wait_until(lambda: is_offline(client, pipeline_id), timeout=20)
        offline = source(client, pipeline_id)
        # several failed attempts later (seconds here, minutes with the default 30 s backoff cap)
        # the pipeline is still there, still RUNNING, still reconnecting
        wait_until(lambda: is_offline(client, pipeline_id, attempts=offline["reconnect_attempts"] + 3), timeout=20)
        assert listed(client, pipeline_id) and report_of(client, pipeline_id)["pipeline_state"] == "RUNNING"
        assert source(client, pipeline_id)["offline_since"] == offline["offline_since"]
        consume(client, pipeline_id)  # whatever was decoded before the drop

        camera.start()  # back, on the same URL
        wait_until(lambda: source_state(client, pipeline_id) == "RUNNING", timeout=20)
        after = frame_ids(wait_for_results(client, pipeline_id))
        assert min(after) > max(before)  # the source's frame ids continue across the reconnect
        assert after == sorted(after)
        assert source(client, pipeline_id)["offline_since"] is None
        terminate(client, pipeline_id, f"RUNNING ({kind} camera after a reconnect)", capsys)


# ----------------------------------------------------------------------------------------- terminate


def test_terminate_while_the_camera_is_offline(client: ManagerClient, capsys: pytest.CaptureFixture[str]) -> None:
    with LiveStream.http(VTEST) as camera:
        pipeline_id = start(client, camera.url, max_fps=MAX_FPS)
        wait_for_results(client, pipeline_id)
        camera.stop()
        wait_until(lambda: is_offline(client, pipeline_id, attempts=2), timeout=20)
        terminate(client, pipeline_id, "RESTARTING (camera dropped)", capsys)


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_terminate_while_the_camera_was_never_reachable(
        client: ManagerClient, scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline_id = start(client, f"{scheme}://127.0.0.1:{free_port()}/live", max_fps=MAX_FPS)
    wait_until(lambda: is_offline(client, pipeline_id), timeout=20)
    terminate(client, pipeline_id, f"RESTARTING ({scheme} camera never reachable)", capsys)


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_terminate_while_the_camera_hangs(
        client: ManagerClient, scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The source's thread is inside OpenCV's open for its whole open timeout (5 s): terminate does
    not wait for it."""
    with silent_camera(scheme) as url:
        pipeline_id = start(client, url, max_fps=MAX_FPS)
        assert source_state(client, pipeline_id) == "INITIALISING"
        terminate(client, pipeline_id, f"INITIALISING ({scheme} camera that never answers)", capsys)


def test_terminate_while_pending(client: ManagerClient, stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """No worker has taken the task yet: the record is PENDING. The task, delivered afterwards, never
    starts the pipeline."""
    with worker_paused(stack):
        init = BackgroundInit(client, f"http://127.0.0.1:{free_port()}/live")
        pipeline_id = init.pipeline_id()
        assert record_field(stack, pipeline_id, "state") == "PENDING"
        terminate(client, pipeline_id, "PENDING (INIT in flight, no worker took it yet)", capsys)
    init.join()
    assert not listed(client, pipeline_id)
    assert record_field(stack, pipeline_id, "state") in (None, "TERMINATED")  # gone once the INIT failed
    assert not stack.client.exists(keys.pipeline_heartbeat(pipeline_id))  # no task ever ran it


def test_terminate_while_initialising(client: ManagerClient, stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """A task claimed the pipeline and is loading the model: the record is INITIALISING. The task
    starts the pipeline and stops it at its first supervision tick."""
    with silent_camera() as url:
        init = BackgroundInit(client, url)
        pipeline_id = init.pipeline_id()
        caught = init.wait_until_claimed(stack)
        assert caught == "INITIALISING"  # loading the model takes long enough to be caught
        terminate(client, pipeline_id, "INITIALISING (model loading)", capsys)
        init.join()
        wait_until(lambda: not stack.client.exists(keys.pipeline_heartbeat(pipeline_id)), timeout=10)
    assert not listed(client, pipeline_id)
    assert report_of(client, pipeline_id)["pipeline_state"] == "TERMINATED"


def test_terminate_running_and_muted(client: ManagerClient, capsys: pytest.CaptureFixture[str]) -> None:
    with LiveStream.http(VTEST) as camera:
        running = start(client, camera.url, max_fps=MAX_FPS)
        wait_for_results(client, running)
        terminate(client, running, "RUNNING", capsys)

    muted = start(client, VTEST, max_fps=MAX_FPS)
    wait_for_results(client, muted)
    client.mute(muted)
    wait_until(lambda: report_of(client, muted)["pipeline_state"] == "MUTED", timeout=10)
    terminate(client, muted, "MUTED", capsys)
    terminate(client, muted, "TERMINATED (again: terminate is idempotent)", capsys)


def test_terminate_after_the_pipeline_finished_and_after_a_failed_init(
        client: ManagerClient, short_clips: tuple[str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ended = start(client, short_clips[0])
    wait_until(lambda: not listed(client, ended), timeout=30)
    assert report_of(client, ended)["pipeline_state"] == "ENDED"
    # success, and the record keeps saying how it finished: it ended by itself, nobody terminated it
    terminate(client, ended, "ENDED", capsys, expected="ENDED")

    garbage = tmp_path / "garbage.avi"  # exists (INIT succeeds), but no video in it: the source fails
    garbage.write_bytes(b"not a video" * 100)
    failed_later = start(client, str(garbage))
    wait_until(lambda: not listed(client, failed_later), timeout=30)
    report = report_of(client, failed_later)
    assert report["pipeline_state"] == "FAILED" and "garbage.avi" in report["last_error"]
    terminate(client, failed_later, "FAILED (its only source failed)", capsys, expected="FAILED")

    with pytest.raises(ProcessesManagerClientError) as failed:
        client.initialise(newer_init(str(ROOT / "data" / "media" / "missing.avi")))
    pipeline_id = failed.value.pipeline_id
    assert pipeline_id is not None
    started = time.perf_counter()
    with pytest.raises(ProcessesManagerNotFoundError):  # a failed INIT leaves nothing behind
        client.terminate(pipeline_id)
    with capsys.disabled():
        print(f"\nterminate after a failed INIT (not_found): {(time.perf_counter() - started) * 1000:.0f} ms")


# ----------------------------------------------------------------------------------------- known bugs elsewhere


def test_an_init_terminated_while_pending_answers_at_once(client: ManagerClient, stack: Stack) -> None:
    with worker_paused(stack):
        init = BackgroundInit(client, f"http://127.0.0.1:{free_port()}/live")
        client.terminate(init.pipeline_id())
    init.join()
    error = init.error
    assert error is None or "terminated" in str(error), error  # not "did not start in time"


def test_no_key_of_a_pipeline_terminated_while_initialising_lives_forever(
        client: ManagerClient, stack: Stack) -> None:
    with silent_camera() as url:
        init = BackgroundInit(client, url)
        pipeline_id = init.pipeline_id()
        assert init.wait_until_claimed(stack) == "INITIALISING"
        client.terminate(pipeline_id)
        init.join()
        wait_until(lambda: not stack.client.exists(keys.pipeline_heartbeat(pipeline_id)), timeout=10)
    forever = [key for key in keys.pipeline_keys(pipeline_id) if stack.client.ttl(key) == -1]
    assert forever == []


# ----------------------------------------------------------------------------------------- ending by itself


def test_a_pipeline_of_files_ends_by_itself_once_every_file_ended(
        client: ManagerClient, stack: Stack, short_clips: tuple[str, str]) -> None:
    pipeline_id = start(client, list(short_clips))
    wait_until(lambda: not listed(client, pipeline_id), timeout=60)
    report = report_of(client, pipeline_id)
    assert report["pipeline_state"] == "ENDED" and report["last_error"] is None
    assert [meta["state"] for meta in report["sources_metadata"]] == ["ENDED", "ENDED"]
    entries = consume(client, pipeline_id)  # the results stay readable too
    # files are read WAIT/LAZY: every frame of both files was processed, the longer one to its end
    assert frame_ids(entries, 0) == list(range(1, 13))
    assert frame_ids(entries, 1) == list(range(1, 25))
    assert no_key_lives_forever(stack, pipeline_id)


def test_a_file_beside_an_offline_camera_does_not_end_the_pipeline(
        client: ManagerClient, short_clips: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    camera = f"http://127.0.0.1:{free_port()}/live"
    pipeline_id = start(client, [short_clips[0], camera])
    wait_until(lambda: source_state(client, pipeline_id, 0) == "ENDED", timeout=30)
    attempts = source(client, pipeline_id, 1)["reconnect_attempts"]
    # well after its file ended, the pipeline still waits for its camera
    wait_until(lambda: source(client, pipeline_id, 1)["reconnect_attempts"] >= attempts + 3, timeout=20)
    assert source_state(client, pipeline_id, 1) == "RESTARTING"
    assert listed(client, pipeline_id) and report_of(client, pipeline_id)["pipeline_state"] == "RUNNING"
    terminate(client, pipeline_id, "RUNNING (file ended, camera offline)", capsys)


# ----------------------------------------------------------------------------------------- consumption_timeout


def test_consumption_timeout(client: ManagerClient, stack: Stack) -> None:
    """Three pipelines side by side: 3 s unconsumed, 3 s consumed every 0.3 s, and no timeout at all."""
    wait_for_free_slots(stack)
    started = time.monotonic()
    idle = start(client, VTEST, max_fps=2, consumption_timeout=3)
    unlimited = start(client, VTEST, max_fps=2)
    consumed = start(client, VTEST, max_fps=2, consumption_timeout=3)
    consumed_since = time.monotonic()
    got: list[dict[str, Any]] = []

    def idle_terminated() -> bool:
        got.extend(consume(client, consumed))
        return not listed(client, idle)

    def consumed_for(seconds: float) -> bool:
        got.extend(consume(client, consumed))
        return time.monotonic() - consumed_since > seconds

    wait_until(idle_terminated, timeout=30, interval=0.3)
    report = report_of(client, idle)
    assert report["pipeline_state"] == "TERMINATED"
    assert "consumption_timeout" in (report["last_error"] or "")
    assert time.monotonic() - started > 3  # not before its timeout (counted from its start)

    # the consumed one outlives two of its timeouts; the one without a timeout runs on unconsumed
    wait_until(lambda: consumed_for(7), timeout=15, interval=0.3)
    assert got and listed(client, consumed) and report_of(client, consumed)["pipeline_state"] == "RUNNING"
    assert listed(client, unlimited) and report_of(client, unlimited)["pipeline_state"] == "RUNNING"
    assert consume(client, unlimited)  # nothing was lost either


def test_consumption_timeout_of_a_muted_pipeline(client: ManagerClient) -> None:
    """As in the reference, only a non-empty CONSUME_RESULT resets the clock, and a muted pipeline
    produces nothing: muted longer than its consumption_timeout, it terminates itself even though
    the client keeps asking."""
    pipeline_id = start(client, VTEST, max_fps=2, consumption_timeout=3)
    wait_for_results(client, pipeline_id)
    client.mute(pipeline_id)
    wait_until(lambda: consume(client, pipeline_id) == [] and not listed(client, pipeline_id),
               timeout=20, interval=0.3)
    report = report_of(client, pipeline_id)
    assert report["pipeline_state"] == "TERMINATED" and "consumption_timeout" in (report["last_error"] or "")
