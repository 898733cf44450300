"""The inference service as the worker runs it: its own process, the real model, a real Unix socket."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from services.worker.detection.detector import Detector
from services.worker.detection.letterbox import to_tensor
from services.worker.inference import SOCKET_ENV
from services.worker.inference.client import InferenceClient, InferenceUnavailableError, RemoteRunner
from services.worker.inference.process import InferenceServiceProcess
from services.worker.inference.server import InferenceServer
from services.worker.inference.service import InferenceService
from services.worker.inference.wire import send
from services.worker.models.errors import ModelNotFoundError
from services.worker.models.repository import ModelRepository, ModelSpec
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "data" / "models"
VIDEO = ROOT / "data" / "media" / "vtest.avi"
MODEL = "yolov3-tiny/coco-416"


def _start(path: Path, *extra: str) -> "subprocess.Popen[bytes]":
    env = {**os.environ, "WORKER_MODEL_REPOSITORY": str(MODELS), "WORKER_PRELOAD_MODELS": MODEL}
    return subprocess.Popen([sys.executable, "-m", "services.worker.inference", "--socket", str(path), *extra],
                            cwd=ROOT, env=env)


def _stop(process: "subprocess.Popen[bytes]") -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:  # fails the test, and leaves no process behind for the next ones
            process.kill()
            process.wait()
            raise


@pytest.fixture
def socket_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("svc", numbered=True)) / "inference.sock"


@pytest.fixture
def service(socket_path: Path) -> Iterator["subprocess.Popen[bytes]"]:
    process = _start(socket_path)
    yield process
    _stop(process)


@pytest.fixture(scope="module")
def local() -> Detector:
    return Detector(ModelRepository(MODELS).resolve(MODEL), intra_op_threads=1)


@pytest.fixture(scope="module")
def tensors(local: Detector) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    for _ in range(12):
        ok, frame = capture.read()
        assert ok
        frames.append(local.preprocess(frame)[0])
    return frames


def test_the_service_runs_the_model_exactly_as_a_local_session_does(
        service: "subprocess.Popen[bytes]", socket_path: Path, local: Detector, tensors: list[np.ndarray]) -> None:
    client = InferenceClient(socket_path)
    assert client.load(MODEL) == ["CPUExecutionProvider"]
    remote = Detector(local.model, runner=RemoteRunner(client, MODEL, client.load(MODEL)))
    for canvas in tensors[:3]:  # the detector's letterboxed uint8 canvases, converted in the service
        assert canvas.dtype == np.uint8
        np.testing.assert_array_equal(remote.infer(canvas), local.infer(canvas))
        np.testing.assert_array_equal(client.run(MODEL, to_tensor(canvas)), local.infer(canvas))  # or float
    batch = np.concatenate(tensors[:4])  # a multi-source round: one request of 4 frames
    np.testing.assert_allclose(client.run(MODEL, batch), local.infer(batch), rtol=1e-4, atol=1e-4)
    client.close()


def test_concurrent_pipelines_each_get_their_own_frames_back_in_order(
        service: "subprocess.Popen[bytes]", socket_path: Path, local: Detector, tensors: list[np.ndarray]) -> None:
    expected = [local.infer(tensor) for tensor in tensors]
    clients = [InferenceClient(socket_path) for _ in range(3)]  # three pipelines, two inference threads each
    failures: list[str] = []

    def pipeline_thread(client: InferenceClient, order: list[int]) -> None:
        for index in order:
            if not np.allclose(client.run(MODEL, tensors[index]), expected[index], rtol=1e-4, atol=1e-4):
                failures.append(f"frame {index}")

    threads = [threading.Thread(target=pipeline_thread, args=(client, list(range(start, 12, 2)) * 2))
               for client in clients for start in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    stats = clients[0].stats()
    assert stats["models"] == [MODEL] and stats["frames"] == 72 and stats["failed_requests"] == 0
    assert stats["batch_ms"]["count"] == stats["batches"]  # every batch of this test ended within the last minute
    assert 0 < stats["batch_ms"]["p50"] <= stats["batch_ms"]["p99"]
    for client in clients:
        client.close()


def test_errors_come_back_as_their_own_types_and_the_connection_stays_usable(
        service: "subprocess.Popen[bytes]", socket_path: Path, tensors: list[np.ndarray]) -> None:
    client = InferenceClient(socket_path)
    with pytest.raises(ModelNotFoundError, match="nope/1"):
        client.load("nope/1")
    with pytest.raises(ValueError, match=r"expected \[B, 3, 416, 416\]"):
        client.run(MODEL, np.zeros((1, 3, 320, 320), np.float32))
    assert client.run(MODEL, tensors[0]).shape == (1, 2535, 85)
    with pytest.raises(ValueError, match="stats window must be a positive number"):
        client.stats(window=0)
    assert client.stats(window=3600)["batch_ms"]["count"] >= 1
    client.close()


def test_a_round_past_its_deadline_is_refused_as_stale_and_the_next_one_runs(
        service: "subprocess.Popen[bytes]", socket_path: Path, tensors: list[np.ndarray]) -> None:
    import time

    from services.worker.engine.staleness import StaleFrameError, round_scope

    client = InferenceClient(socket_path)
    client.load(MODEL)
    with round_scope(time.monotonic() - 0.01), pytest.raises(StaleFrameError):
        client.run(MODEL, tensors[0])
    with round_scope(time.monotonic() + 30):
        assert client.run(MODEL, tensors[0]).shape == (1, 2535, 85)
    assert client.stats()["missed_deadlines"] == 1
    client.close()


def test_a_client_that_dies_mid_request_touches_no_other_client(
        service: "subprocess.Popen[bytes]", socket_path: Path, tensors: list[np.ndarray]) -> None:
    client = InferenceClient(socket_path)
    client.load(MODEL)
    broken = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    broken.connect(str(socket_path))
    send(broken, {"op": "infer", "model": MODEL, "shape": [1, 3, 416, 416], "dtype": "<f4", "inline": True},
         b"\0" * 1000)  # a payload cut short, then gone
    broken.close()
    garbage = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    garbage.connect(str(socket_path))
    garbage.sendall(b"\xff\xff\xff\xff not a header")
    garbage.close()
    assert client.run(MODEL, tensors[1]).shape == (1, 2535, 85)
    assert service.poll() is None
    client.close()


def test_pipelines_wait_out_a_service_restart_and_the_new_service_loads_the_model_again(
        socket_path: Path, tensors: list[np.ndarray]) -> None:
    first = _start(socket_path)
    client = InferenceClient(socket_path, connect_timeout=30)
    try:
        before = client.run(MODEL, tensors[2])
        first.kill()
        first.wait(10)
        with pytest.raises(InferenceUnavailableError):
            client.run(MODEL, tensors[2])  # the round in flight when the service died fails
        second = subprocess.Popen([sys.executable, "-m", "services.worker.inference", "--socket", str(socket_path)],
                                  cwd=ROOT, env={**os.environ, "WORKER_MODEL_REPOSITORY": str(MODELS),
                                                 "WORKER_PRELOAD_MODELS": ""})
        try:
            np.testing.assert_array_equal(client.run(MODEL, tensors[2]), before)  # reconnects, loads on demand
        finally:
            _stop(second)
    finally:
        client.close()
        _stop(first)


def test_the_service_ends_when_the_process_that_started_it_is_gone(socket_path: Path) -> None:
    import psutil

    parent = subprocess.Popen(["bash", "-c", f'"{sys.executable}" -m services.worker.inference '
                               f'--socket "{socket_path}" --parent $$ & wait'],
                              cwd=ROOT, env={**os.environ, "WORKER_PRELOAD_MODELS": ""})
    wait_until(lambda: socket_path.is_socket(), timeout=30)
    (service,) = psutil.Process(parent.pid).children()
    parent.kill()  # like a worker killed with SIGKILL: no chance to stop its service
    parent.wait()
    service.wait(20)
    assert not service.is_running()


def test_an_output_larger_than_the_shared_buffer_travels_inline(tmp_path: Path) -> None:
    class Wide:
        providers: ClassVar[list[str]] = ["ScriptedProvider"]

        def run(self, batch: np.ndarray) -> np.ndarray:
            return np.repeat(batch.reshape(len(batch), -1), 64, axis=1)  # 8 MiB per frame of 416x416

    class Repository:
        def resolve(self, model_id: str) -> ModelSpec:
            return ModelSpec(model_id, Path("/dev/null"), ("a",), "images", 416, 416, None, "RGB", 1.0, "", "", "")

    service = InferenceService(Repository(), lambda spec: Wide(), 1, 8)  # type: ignore[arg-type]
    server = InferenceServer(service, tmp_path / "s.sock")
    server.bind()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = InferenceClient(tmp_path / "s.sock")
    batch = np.random.default_rng(1).random((1, 3, 416, 416), dtype=np.float32)
    output = client.run("wide/1", batch)
    np.testing.assert_array_equal(output, np.repeat(batch.reshape(1, -1), 64, axis=1))
    client.close()
    server.close()
    service.stop()


def test_the_worker_side_supervisor_restarts_a_dead_service_and_publishes_its_socket(
        socket_path: Path, tensors: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MODEL_REPOSITORY", str(MODELS))
    monkeypatch.setenv("WORKER_PRELOAD_MODELS", "")
    monkeypatch.chdir(ROOT)
    supervisor = InferenceServiceProcess(socket_path, initial_backoff=0.1)
    supervisor.start()
    try:
        assert os.environ[SOCKET_ENV] == str(socket_path)
        client = InferenceClient.from_environment()
        assert client is not None
        assert client.run(MODEL, tensors[0]).shape == (1, 2535, 85)
        client.close()
        wait_until(lambda: supervisor.pid is not None)
        os.kill(supervisor.pid, signal.SIGKILL)  # type: ignore[arg-type]
        wait_until(lambda: supervisor.starts == 2, timeout=20)
        client = InferenceClient(socket_path, connect_timeout=30)
        assert client.run(MODEL, tensors[0]).shape == (1, 2535, 85)
        client.close()
    finally:
        supervisor.stop()
    assert SOCKET_ENV not in os.environ
    assert supervisor.pid is None



def _runners(socket_path: Path, cores: set[int]) -> int:
    """The runners of a service process started with the automatic sizing and the CPU affinity ``cores``."""
    env = {**os.environ, "WORKER_MODEL_REPOSITORY": str(MODELS), "WORKER_INFERENCE_RUNNERS": "0"}
    process = subprocess.Popen([sys.executable, "-m", "services.worker.inference", "--socket", str(socket_path)],
                               cwd=ROOT, env=env, preexec_fn=lambda: os.sched_setaffinity(0, cores))
    try:
        wait_until(socket_path.exists, timeout=60)
        client = InferenceClient(socket_path)
        try:
            return int(client.stats()["runners"])
        finally:
            client.close()
    finally:
        _stop(process)


def test_a_service_pinned_to_one_core_runs_one_runner_not_one_per_host_core(socket_path: Path) -> None:
    """The automatic sizing counts the cores the process may use (services.worker.cores), not the host's."""
    every_core = os.sched_getaffinity(0)
    assert _runners(socket_path, {min(every_core)}) == 1
    assert _runners(socket_path.with_name("unpinned.sock"), every_core) == len(every_core)


def _threads(pid: int) -> list[tuple[int, str]]:
    """(thread id, name) of the threads of process ``pid`` (one that ends meanwhile left out)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            found.append((int(task.name), (task / "comm").read_text().strip()))
    return found


def _signal_thread(pid: int, tid: int, signum: int) -> None:
    """``signum`` to one thread of process ``pid`` (tgkill): as the kernel may deliver a process's SIGTERM."""
    import ctypes
    import platform

    number = {"x86_64": 234, "aarch64": 131}[platform.machine()]  # SYS_tgkill
    assert ctypes.CDLL(None, use_errno=True).syscall(number, pid, tid, signum) == 0, ctypes.get_errno()


def test_a_sigterm_the_kernel_hands_to_another_thread_still_stops_the_service(socket_path: Path) -> None:
    # Python runs a signal's handler in the main thread only; blocked in accept() and not interrupted (the signal
    # went to an onnxruntime or runner thread), the main thread never got back to the interpreter: the service ran
    # on until SIGKILL (CI saw it once; a tgkill to another thread did it every time).
    process = _start(socket_path)
    try:
        wait_until(socket_path.exists, timeout=60)
        client = InferenceClient(socket_path)
        try:
            assert client.run(MODEL, np.zeros((1, 3, 416, 416), np.float32)).shape == (1, 2535, 85)  # loaded
        finally:
            client.close()
        runners = [tid for tid, name in _threads(process.pid) if name.startswith("runner-")]
        assert runners, "the service's batch runners are threads of their own"  # they live as long as it does
        _signal_thread(process.pid, runners[0], signal.SIGTERM)
        assert process.wait(10) == 0
        assert not socket_path.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
