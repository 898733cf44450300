"""Many streams per host: how close the worker gets to the model's own limit, and what each pipeline costs.

A pipeline is worth running only if the host's cores go to the model: this benchmark measures that
limit first and every other figure against it, in the same run (this machine's speed drifts):

1. **The limit**: ``session.run`` alone on pre-processed frames of vtest.avi, over a grid of runs at
   once (threads each calling ``run`` on ONE shared session, or each on its own session) x
   onnxruntime intra-op threads x batch size; the best cell is the limit. It is measured again (5 s,
   the stack idle) just before and just after each run of parts 2 and 3, whose ratio uses the mean of
   that bracket and is judged only when its two ends agree within ``LIMIT_DRIFT`` (``LimitProbe``).
   Parts 2 and 3 also split the worker tree's CPU per result by stage (threads by OS name, schedstat).
2. **One pipeline on the file**, every frame, INIT -> last result through the real stack
   (redis-server, ``python -m services.manager``, one ``python -m services.worker``).
3. **1, 4, 16 pipelines** on one worker with 16 prefork slots, the file, every frame: aggregate fps
   over the window in which all of them run, memory of the worker's whole process tree (PSS and
   RSS, so the inference service's process counts too) and e2e latency per pipeline.
4. **16 live streams at 30 fps** (ffmpeg servers, MPEG-TS over HTTP, ``-c copy`` of a small H.264
   clip) in ``freshest`` mode with ``max_staleness``: e2e latency p99 against "two frame intervals
   plus one batch", frames processed and dropped by cause, and the servers' own CPU.

Parts 2-4 run once with ``WORKER_INFERENCE_SERVICE=false`` (every pipeline process loads its own
model) and once with ``=true`` (one inference service per worker host and device batches the frames
of all pipelines), with ``WORKER_INFERENCE_RUNNERS`` and ``WORKER_INFERENCE_MAX_BATCH`` passed too.
E2e latency = Redis's time of the result's XADD (the stream entry id) minus the frame's
``frame_timestamp`` (wall clock at decode), both on this host's clock: decode -> readable by clients.
CPU is accounted per process group over each window (worker tree, redis-server, manager, load
generator; other processes = host busy time minus those, this benchmark's own sampling included), so
a run that shared the machine shows it.

Usage: ``python -m tests.benchmarks.streams [--output docs/benchmarks.md] [--seconds 20] [--quick]
[--parts single,many,live] [--services false,true] [--counts 1,4,16] [--streams 16]`` (``--quick``: a
dry run of every part with short windows, two pipelines and a short clip; its figures mean nothing).
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis

from services.core import keys
from services.core.results import FRAMES_METADATA
from tests.benchmarks.report import cpu_seconds as _cpu_seconds
from tests.benchmarks.report import host_busy as _host_busy
from tests.benchmarks.report import process_tree as _tree
from tests.benchmarks.report import run_child, stamp, write_section

VIDEO = Path("data/media/vtest.avi")
MODEL_ID = "yolov3-tiny/coco-416"
REPOSITORY = Path("data/models")
SECTION = "streams"
BATCHES = (1, 2, 4, 8)
BATCH_TOLERANCE = 0.05  # the worker's max batch: the smallest one within this of the limit (Findings.worker_batch)
GRID_FRAMES = 32  # distinct pre-processed frames the grid cycles through (2 MiB each)
GOAL_RATIO = 0.95
LIMIT_DRIFT = 0.10  # the limit measured before and after the stack runs may differ this much for a verdict
GOAL_MIB_PER_PIPELINE = 64.0
LIVE_FPS = 30
LIVE_SCALE = "384:288"  # half of vtest.avi: decoding 16 x 30 fps must not eat the cores the model needs
PARTS = frozenset({"single", "many", "live"})
FINAL_STATES = {"ENDED", "FAILED", "TERMINATED"}
Log = Callable[[str], None]
Memory = tuple[float, float]  # (PSS, RSS) in MiB


# ------------------------------------------------------------------ the model alone (run in a child)


def _grid_batches() -> tuple[str, dict[int, list[Any]], Any]:
    """(model input name, batch size -> batches cycled through, the model's batch dimension)."""
    import cv2
    import numpy as np

    from services.worker.detection.letterbox import letterbox
    from services.worker.models.repository import ModelRepository

    spec = ModelRepository(REPOSITORY).resolve(MODEL_ID)
    capture = cv2.VideoCapture(str(VIDEO))
    tensors: list[Any] = []
    while len(tensors) < GRID_FRAMES:
        ok, image = capture.read()
        if not ok:
            break
        tensors.append(letterbox(image, spec.input_width, spec.input_height)[0])
    capture.release()
    if not tensors:
        raise RuntimeError(f"cannot read {VIDEO}")
    batches = {size: [np.concatenate(tensors[i:i + size]) for i in range(0, len(tensors) - size + 1, size)]
               for size in BATCHES}
    dimension = _session(1).get_inputs()[0].shape[0]
    return spec.input_name, batches, dimension


def _session(threads: int) -> Any:
    """A CPU session with the worker's options (one inter-op thread, sequential, no spinning)."""
    import onnxruntime as ort

    from services.worker.models.repository import ModelRepository

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    path = ModelRepository(REPOSITORY).resolve(MODEL_ID).onnx_path
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _measure_cell(cell: dict[str, Any], name: str, batches: list[Any], seconds: float) -> dict[str, Any]:
    """``parallel`` threads call ``run`` for ``seconds`` on one shared session or on one session each."""
    parallel = cell["parallel"]
    sessions = [_session(cell["threads"]) for _ in range(1 if cell["sharing"] == "shared" else parallel)]
    calls, busy, ends = [0] * parallel, [0.0] * parallel, [0.0] * parallel
    ready, go = threading.Barrier(parallel + 1), threading.Event()
    deadline = [0.0]

    def loop(index: int) -> None:
        session = sessions[index % len(sessions)]
        session.run(None, {name: batches[index % len(batches)]})  # warm-up of this thread
        ready.wait()
        go.wait()
        turn = index
        while time.perf_counter() < deadline[0]:
            began = time.perf_counter()
            session.run(None, {name: batches[turn % len(batches)]})
            busy[index] += time.perf_counter() - began
            calls[index] += 1
            turn += 1
        ends[index] = time.perf_counter()

    workers = [threading.Thread(target=loop, args=(index,)) for index in range(parallel)]
    for worker in workers:
        worker.start()
    ready.wait()  # every thread has warmed up
    cpu_before = os.times()
    started = time.perf_counter()
    deadline[0] = started + seconds
    go.set()
    for worker in workers:
        worker.join()
    wall = max(ends) - started
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    frames = sum(calls) * cell["batch"]
    return {**cell, "frames": frames, "seconds": wall, "fps": frames / wall,
            "call_ms": 1000 * sum(busy) / max(1, sum(calls)), "cores": cpu / wall}


def measure_grid(cells: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    name, batches, dimension = _grid_batches()
    dynamic = not isinstance(dimension, int)
    results = [_measure_cell(cell, name, batches[cell["batch"]], seconds) for cell in cells
               if dynamic or cell["batch"] == dimension]
    return {"batch_dimension": str(dimension), "dynamic": dynamic, "cells": results}


def measure_ipc(calls: int) -> dict[str, Any]:
    """One request at a time, batch 1, one thread: ``run`` on a local session vs through a real inference
    service process (Unix socket + shared buffer), in alternating blocks; the difference is what the
    service adds to a request."""
    import numpy as np

    from services.worker.detection.detector import load_runner
    from services.worker.inference.client import InferenceClient
    from services.worker.models.repository import ModelRepository

    _, batches, _ = _grid_batches()
    tensors = batches[1]
    local = load_runner(ModelRepository(REPOSITORY).resolve(MODEL_ID), "cpu", 1)
    with tempfile.TemporaryDirectory(prefix="bench-ipc-") as tmp:
        path = Path(tmp) / "inference.sock"
        env = {**os.environ, "WORKER_MODEL_REPOSITORY": str(REPOSITORY), "WORKER_PRELOAD_MODELS": MODEL_ID,
               "WORKER_INTRA_OP_THREADS": "1", "WORKER_LOG_LEVEL": "WARNING"}
        service = subprocess.Popen([sys.executable, "-m", "services.worker.inference", "--socket", str(path)],
                                   env=env)
        client = InferenceClient(path, connect_timeout=30)
        try:
            client.load(MODEL_ID)
            for tensor in tensors[:3]:  # warm-up of both
                local.run(tensor)
                client.run(MODEL_ID, tensor)
            local_ms: list[float] = []
            remote_ms: list[float] = []
            block = 20  # alternating blocks, not single calls: two sessions' weights alternating in the
            for start in range(0, calls, block):  # caches would slow both sides alike and hide the difference
                for run, times in ((local.run, local_ms), (lambda t: client.run(MODEL_ID, t), remote_ms)):
                    for index in range(start, min(calls, start + block)):
                        tensor = tensors[index % len(tensors)]
                        began = time.perf_counter()
                        run(tensor)
                        times.append(1000 * (time.perf_counter() - began))
            round_trips = []
            wrong = np.zeros((1, 3, 8, 8), np.float32)  # refused by the shape check: socket + header, no model
            for _ in range(calls):
                began = time.perf_counter()
                with contextlib.suppress(ValueError):
                    client.run(MODEL_ID, wrong)
                round_trips.append(1000 * (time.perf_counter() - began))
        finally:
            client.close()
            service.terminate()
            service.wait(20)
    return {"calls": calls, "local_ms": statistics.median(local_ms), "remote_ms": statistics.median(remote_ms),
            "round_trip_ms": statistics.median(round_trips), "tensor_mib": tensors[0].nbytes / 2**20}


def grid_cells(cores: int) -> list[dict[str, Any]]:
    """Runs at once x intra-op threads up to twice the cores, each with a shared and separate sessions."""
    cells = []
    for parallel in sorted({1, cores, 2 * cores}):
        for threads in sorted({1, cores}):
            if parallel * threads > 2 * cores:
                continue
            for sharing in (("shared",) if parallel == 1 else ("shared", "separate")):
                cells += [{"sharing": sharing, "parallel": parallel, "threads": threads, "batch": batch}
                          for batch in BATCHES]
    return cells


# ------------------------------------------------------------------ process accounting (parent)


def tree_memory(root: psutil.Process) -> Memory:
    """(sum of PSS, sum of RSS) over ``root``'s process tree, MiB."""
    pss = rss = 0
    for process in _tree(root):
        with contextlib.suppress(psutil.Error):
            info = process.memory_full_info()
            pss, rss = pss + info.pss, rss + info.rss
    return pss / 2**20, rss / 2**20


ThreadKey = tuple[int, int]  # (pid, tid)
ThreadSample = tuple[float, dict[ThreadKey, tuple[str, float]]]  # (unix time, {thread: (OS name, CPU s)})

# A pipeline's stages by their threads' OS names (services/infra/os_threads.py), in the table's order.
STAGES = (
    ("model runs", "the service's runners (`runner-N`: the canvases' conversion to the model's tensor, "
     "`session.run`), or a pipeline's own `inference-N` without the service"),
    ("decode", "`source-N` and the decoder's own threads (FFmpeg's, unnamed)"),
    ("prepare", "`collector`: letterbox, stack the round"),
    ("post", "`post`: boxes, NMS, the workflow's steps, the round's result"),
    ("hand-off to the service", "the pipeline's `inference-N` (the canvas into the shared buffer, the request, "
     "the output back) and the service's `connection` threads"),
    ("sinks", "`sink-*`: the results' JSON and their fenced XADD"),
    ("the rest", "heartbeat (`beat-*`), control, preview, the workflow's background jobs, the worker's own "
     "threads (`registration`, `service-watch`, its main one), the service's other threads"),
)


def thread_cpu(processes: list[psutil.Process]) -> dict[ThreadKey, tuple[str, float]]:
    """Every thread of ``processes``: its OS name and CPU seconds so far.

    The CPU time is the scheduler's own count in nanoseconds (``/proc/<pid>/task/<tid>/schedstat``),
    not user + system time: those are whole clock ticks (10 ms), so the dozens of threads that each
    run a few milliseconds a second (a service's connection per pipeline thread, the heartbeats) would
    read as nothing over a window of seconds. Without schedstat (a kernel built without it), the ticks.
    """
    found = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            for thread in process.threads():
                task = Path(f"/proc/{process.pid}/task/{thread.id}")
                with contextlib.suppress(OSError):  # a thread that ended meanwhile
                    name = (task / "comm").read_text().strip()
                    try:
                        cpu = int((task / "schedstat").read_text().split()[0]) / 1e9
                    except FileNotFoundError:
                        cpu = thread.user_time + thread.system_time
                    found[(process.pid, thread.id)] = (name, cpu)
    return found


def stage_of(name: str, role: str, main_thread: bool, service_runs: bool) -> str:
    """The stage a thread works for; ``role`` is its process's: ``pipeline``, ``service`` or ``worker``."""
    if name.startswith("runner-") or (name.startswith("inference-") and not service_runs):
        return "model runs"
    if name.startswith("inference-") or (role == "service" and name == "connection"):
        return "hand-off to the service"
    if name.startswith("source-") or (role == "pipeline" and name == "python" and not main_thread):
        return "decode"  # a pipeline process's unnamed threads besides its main one are FFmpeg's
    return {"collector": "prepare", "post": "post"}.get(name, "sinks" if name.startswith("sink-") else "the rest")


def stage_cpu(samples: list[ThreadSample], runs: list[list["Result"]],
              service_pid: int | None) -> dict[str, Any] | None:
    """CPU ms per result of each stage, between two samples of a steady run of one or more pipelines (None:
    the run was too short).

    The window starts a second after the last pipeline's first result (start-up done) and ends at the
    last sample taken at least 0.5 s before the first pipeline's last result (every stage's thread still
    alive); a thread is counted if it was there at both ends; results are those of every pipeline.
    """
    begin = next((sample for sample in samples if sample[0] >= max(run[0].written for run in runs) + 1.0), None)
    ends = [sample for sample in samples if sample[0] <= min(run[-1].written for run in runs) - 0.5]
    if begin is None or not ends or ends[-1][0] <= begin[0]:
        return None
    end = ends[-1]
    frames = sum(1 for run in runs for result in run if begin[0] <= result.written < end[0])
    service_runs = any(name.startswith("runner-") for name, _ in end[1].values())
    pipelines = {pid for (pid, _), (name, _) in end[1].items() if name == "post"}
    ms: dict[str, float] = dict.fromkeys((stage for stage, _ in STAGES), 0.0)
    for (pid, tid), (name, cpu) in end[1].items():
        if (pid, tid) in begin[1]:
            role = "service" if pid == service_pid else "pipeline" if pid in pipelines else "worker"
            stage = stage_of(name, role, tid == pid, service_runs)
            ms[stage] += 1000 * (cpu - begin[1][(pid, tid)][1]) / max(1, frames)
    return {"frames": frames, "seconds": end[0] - begin[0], "ms": {stage: ms[stage] for stage, _ in STAGES}}


class CpuMeter:
    """Cores used by each group of processes between ``start`` and ``stop``; ``others`` = the rest of the host.

    A process that ends before ``stop`` (a pipeline's pool process replaced once its task ended) counts
    with the CPU it had at the last ``sample``."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self._groups = groups
        self._begin: dict[str, dict[int, float]] = {}
        self._seen: dict[str, dict[int, float]] = {}
        self._host = self._wall = 0.0

    def start(self) -> None:
        self._begin = {name: _cpu_seconds(processes()) for name, processes in self._groups.items()}
        self._seen = {name: dict(seconds) for name, seconds in self._begin.items()}
        self._host, self._wall = _host_busy(), time.monotonic()

    def sample(self) -> None:
        for name, processes in self._groups.items():
            self._seen[name].update(_cpu_seconds(processes()))

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        self.sample()
        cores = {}
        for name in self._groups:
            begin = self._begin[name]
            cores[name] = sum(seconds - begin.get(pid, 0.0) for pid, seconds in self._seen[name].items()) / wall
        cores["host"] = (_host_busy() - self._host) / wall
        cores["others"] = max(0.0, cores["host"] - sum(cores[name] for name in self._groups))
        return cores


def wait_idle(root: psutil.Process, log: Log, threshold: float = 0.25, timeout: float = 120.0) -> float:
    """Waits until ``root``'s tree uses under ``threshold`` cores (its pool processes have warmed up)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(_cpu_seconds(_tree(root)).values())
        time.sleep(1.0)
        if sum(_cpu_seconds(_tree(root)).values()) - before < threshold:
            return time.monotonic() - started
    log(f"worker still busy after {timeout:.0f} s; measuring anyway")
    return time.monotonic() - started


# ------------------------------------------------------------------ results (parent)


@dataclass(frozen=True, slots=True)
class Result:
    written: float  # unix time of the XADD (the entry id)
    latency: float  # written - frame_timestamp


def read_results(client: redis.Redis, pipeline_id: str) -> list[Result]:
    results = []
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(keys.results_stream(pipeline_id))  # type: ignore[assignment]
    for entry_id, fields in entries:
        written = int(entry_id.split(b"-")[0]) / 1000
        for item in json.loads(fields[FRAMES_METADATA.encode()]):
            if item is not None:
                results.append(Result(written, written - datetime.fromisoformat(item["frame_timestamp"]).timestamp()))
    return results


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def window_stats(runs: list[list[Result]], begin: float, end: float) -> dict[str, Any]:
    """Rates and latencies inside [begin, end] cut to when ALL pipelines were producing (see engine.py's
    ``_steady_aggregate``): from the last pipeline's first result to the first pipeline's last one."""
    begin = max(begin, *(run[0].written for run in runs))
    end = min(end, *(run[-1].written for run in runs))
    span = end - begin
    if span <= 0:
        raise RuntimeError("no window in which every pipeline produced results")
    inside = [[result for result in run if begin <= result.written <= end] for run in runs]
    rates = [len(results) / span for results in inside]
    latencies = [[result.latency for result in results] for results in inside if results]
    pooled = [latency for results in latencies for latency in results]
    return {"window": span, "aggregate_fps": sum(rates), "min_fps": min(rates), "max_fps": max(rates),
            "frames": sum(len(results) for results in inside),
            "p50_ms": 1000 * statistics.median(percentile(values, 0.5) for values in latencies),
            "p99_worst_ms": 1000 * max(percentile(values, 0.99) for values in latencies),
            "p50_all_ms": 1000 * percentile(pooled, 0.5), "p99_all_ms": 1000 * percentile(pooled, 0.99)}


# ------------------------------------------------------------------ the stack (parent)


def worker_env(service: bool, runners: int, max_batch: int) -> dict[str, str]:
    """The worker's inference settings; pipeline sizing left automatic (the tests' stack pins 1 thread)."""
    return {"WORKER_INFERENCE_SERVICE": "true" if service else "false", "WORKER_INFERENCE_RUNNERS": str(runners),
            "WORKER_INFERENCE_MAX_BATCH": str(max_batch), "WORKER_INTRA_OP_THREADS": "0",
            "WORKER_INFERENCE_WORKERS": "0"}


def file_payload(video: Path, buffer: int) -> dict[str, Any]:
    from tools.payloads import newer_init

    payload = newer_init(str(video), results_buffer_size=buffer)
    payload["video_configuration"]["processing_mode"] = "every_frame"
    return payload


def live_payload(url: str, buffer: int, max_staleness: float) -> dict[str, Any]:
    from tools.payloads import newer_init

    payload = newer_init(url, results_buffer_size=buffer)
    payload["video_configuration"].update(processing_mode="freshest", max_staleness=max_staleness)
    return payload


class Bench:
    """The stack of one run: redis-server, the manager, at most one worker at a time."""

    def __init__(self, stack: Any, redis_pid: int, log: Log) -> None:
        self.stack = stack
        self.client: redis.Redis = stack.client
        self.log = log
        self.redis = psutil.Process(redis_pid)
        self.worker: psutil.Process | None = None
        self.generator: list[psutil.Process] = []  # the live servers of part 4

    def start_worker(self, name: str, concurrency: int, env: dict[str, str]) -> psutil.Process:
        started = time.monotonic()
        self.stack.start_worker_with_env(name, "pipelines.cpu", env, concurrency=concurrency)
        self.worker = psutil.Process(self.stack.workers[name].pid)
        waited = wait_idle(self.worker, self.log)
        self.log(f"worker {name} (concurrency {concurrency}) ready in {time.monotonic() - started:.1f} s "
                 f"(idle after {waited:.1f} s)")
        return self.worker

    def stop_worker(self, name: str) -> None:
        from tests.support.stack import stop_process

        stop_process(self.stack.workers.pop(name))
        self.worker = None

    def meter(self) -> CpuMeter:
        assert self.worker is not None and self.stack.manager is not None
        worker, manager = self.worker, psutil.Process(self.stack.manager.pid)
        return CpuMeter({"worker": lambda: _tree(worker), "redis": lambda: [self.redis],
                         "manager": lambda: [manager], "generator": lambda: self.generator})

    def init(self, payload: dict[str, Any]) -> str:
        from tests.manager.fakes import call

        reply = call(self.stack.port, payload)
        if reply["response"]["status"] != "success":
            raise RuntimeError(f"init failed: {reply}")
        return str(reply["pipeline_id"])

    def init_many(self, payloads: list[dict[str, Any]]) -> list[str]:
        """INITs sent at once (the manager admits them concurrently); the pipeline ids in order."""
        with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
            return list(pool.map(self.init, payloads))

    def wait_results(self, pipeline_ids: list[str], timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.client.xlen(keys.results_stream(pid)) for pid in pipeline_ids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every pipeline produced a result within {timeout:.0f} s")
            time.sleep(0.1)

    def state(self, pipeline_id: str) -> str:
        raw = self.client.hget(keys.pipeline_record(pipeline_id), "state")
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def report(self, pipeline_id: str) -> dict[str, Any]:
        from tests.manager.fakes import call

        reply = call(self.stack.port, {"type": "status", "pipeline_id": pipeline_id})
        return dict(reply["response"]["report"])

    def finish(self, pipeline_ids: list[str]) -> None:
        """Terminates the pipelines (at once) and drops their results."""
        from tests.manager.fakes import call

        with ThreadPoolExecutor(max_workers=max(1, len(pipeline_ids))) as pool:
            list(pool.map(lambda pid: call(self.stack.port, {"type": "terminate", "pipeline_id": pid}), pipeline_ids))
        for pipeline_id in pipeline_ids:
            self.client.delete(keys.results_stream(pipeline_id))


def sample_window(bench: Bench, seconds: float, interval: float = 2.0, pipeline_ids: list[str] | None = None,
                  threads: list[ThreadSample] | None = None) -> tuple[float, float, list[Memory]]:
    """Sleeps through the window sampling the worker tree's memory; (begin, end, samples) in unix time.

    With ``pipeline_ids`` the window also ends once all of them have ended (files that run out before
    it), checked every half second, so what is measured over it (CPU) covers the run and not idle time.
    With ``threads``, every thread's CPU in the worker's tree is appended to it every half second.
    """
    assert bench.worker is not None
    worker = bench.worker
    begin = time.time()
    samples = [tree_memory(worker)]
    sampled = time.monotonic()
    fine = pipeline_ids is not None or threads is not None
    while time.time() - begin < seconds:
        if threads is not None:
            threads.append((time.time(), thread_cpu(_tree(worker))))
        time.sleep(max(0.0, min(0.5 if fine else interval, seconds - (time.time() - begin))))
        if pipeline_ids and all(bench.state(pid) in FINAL_STATES for pid in pipeline_ids):
            break
        if time.monotonic() - sampled >= interval:
            samples.append(tree_memory(worker))
            sampled = time.monotonic()
    samples.append(tree_memory(worker))
    if threads is not None:
        threads.append((time.time(), thread_cpu(_tree(worker))))
    return begin, time.time(), samples


# ------------------------------------------------------------------ parts 2-4 (parent)


def run_single(bench: Bench, video: Path, label: str, env: dict[str, str], frames_hint: int) -> dict[str, Any]:
    """One pipeline on a dedicated worker (1 slot, automatic sizing): INIT -> last result."""
    worker = bench.start_worker(f"single-{label}", 1, env)
    service_pid = _service_pid(worker)
    meter = bench.meter()
    meter.start()
    sent = time.time()
    pipeline_id = bench.init(file_payload(video, buffer=frames_hint + 100))
    peak = (0.0, 0.0)
    deadline = time.monotonic() + 600
    samples: list[ThreadSample] = []
    while bench.state(pipeline_id) not in FINAL_STATES:
        if time.monotonic() > deadline:
            raise RuntimeError("the single pipeline did not end within 600 s")
        pss, rss = tree_memory(worker)
        peak = (max(peak[0], pss), max(peak[1], rss))
        samples.append((time.time(), thread_cpu(_tree(worker))))
        meter.sample()
        time.sleep(0.5)
    cores = meter.stop()
    state = bench.state(pipeline_id)
    results = read_results(bench.client, pipeline_id)
    bench.finish([pipeline_id])
    bench.stop_worker(f"single-{label}")
    if state != "ENDED" or not results:
        raise RuntimeError(f"the single pipeline ended {state} with {len(results)} results")
    last, first = results[-1].written, results[0].written
    return {"state": state, "frames": len(results), "first_s": first - sent, "total_s": last - sent,
            "fps": len(results) / (last - sent), "steady_fps": (len(results) - 1) / max(1e-9, last - first),
            "cores": cores, "peak_pss": peak[0], "peak_rss": peak[1],
            "stages": stage_cpu(samples, [results], service_pid)}


def _service_pid(worker: psutil.Process) -> int | None:
    """The worker's inference service process, if it runs one."""
    return next((child.pid for child in worker.children() if "services.worker.inference" in " ".join(child.cmdline())),
                None)


def run_files(bench: Bench, count: int, seconds: float) -> dict[str, Any]:
    """``count`` pipelines on vtest.avi on the running worker; the window once all produce results."""
    assert bench.worker is not None
    idle = tree_memory(bench.worker)
    pipeline_ids = bench.init_many([file_payload(VIDEO, buffer=2000)] * count)
    bench.wait_results(pipeline_ids)
    time.sleep(2.0)  # the last pipeline's first rounds
    service_pid = _service_pid(bench.worker)
    meter = bench.meter()
    meter.start()
    threads: list[ThreadSample] = []
    begin, end, samples = sample_window(bench, seconds, pipeline_ids=pipeline_ids, threads=threads)
    cores = meter.stop()
    runs = [read_results(bench.client, pid) for pid in pipeline_ids]
    bench.finish(pipeline_ids)
    stats = window_stats(runs, begin, end)
    return {**stats, "count": count, "idle_pss": idle[0], "idle_rss": idle[1],
            "pss": max(pss for pss, _ in samples), "rss": max(rss for _, rss in samples), "cores": cores,
            "stages": stage_cpu(threads, runs, service_pid)}


def _drops(reports: list[dict[str, Any]]) -> tuple[int, int, int, Counter[str]]:
    """(frames decoded, frames processed, sink drops, source drops by cause) summed over the reports."""
    decoded = processed = sink = 0
    causes: Counter[str] = Counter()
    for report in reports:
        processed += int(report.get("frames_processed", 0))
        sink += sum(int(item.get("dropped", 0)) for item in report.get("sinks", []))
        for source in report.get("sources_metadata", []):
            decoded += int(source.get("frames_decoded", 0))
            causes.update({cause: int(count) for cause, count in source.get("frames_dropped", {}).items()})
    return decoded, processed, sink, causes


def run_live(bench: Bench, clip: Path, streams: int, seconds: float, max_staleness: float) -> dict[str, Any]:
    """``streams`` live servers of ``clip``, one freshest pipeline each, on the running worker."""
    with contextlib.ExitStack() as servers:
        urls = [servers.enter_context(copy_server(clip)) for _ in range(streams)]
        bench.generator = [child for child in psutil.Process().children() if any(url in part for url in urls
                                                                                  for part in child.cmdline())]
        pipeline_ids = bench.init_many([live_payload(url, 5000, max_staleness) for url in urls])
        bench.wait_results(pipeline_ids)
        time.sleep(2.0)
        meter = bench.meter()
        before = _drops([bench.report(pid) for pid in pipeline_ids])
        stats_before = service_stats(bench.worker, 1.0)
        meter.start()
        begin, end, _ = sample_window(bench, seconds)
        cores = meter.stop()
        batch_ms = service_batch_ms(bench.worker, time.time() - begin)
        stats_after = service_stats(bench.worker, 1.0)
        after = _drops([bench.report(pid) for pid in pipeline_ids])
        runs = [read_results(bench.client, pid) for pid in pipeline_ids]
        bench.finish(pipeline_ids)
        bench.generator = []
    stats = window_stats(runs, begin, end)
    causes = after[3] - before[3]
    return {**stats, "streams": streams, "cores": cores, "counted_s": end - begin, "decoded": after[0] - before[0],
            "processed": after[1] - before[1], "sink_dropped": after[2] - before[2], "dropped": dict(causes),
            "max_staleness": max_staleness, "batch_ms": batch_ms,
            "live_only_share": _live_only_share(stats_before, stats_after)}


def _live_only_share(before: dict[str, Any] | None, after: dict[str, Any] | None) -> float | None:
    """The share of the service's batches between two ``stats`` that ran live-only (None: no service)."""
    if before is None or after is None:
        return None
    batches = int(after["batches"]) - int(before["batches"])
    return (int(after.get("live_only_batches", 0)) - int(before.get("live_only_batches", 0))) / max(1, batches)


def service_batch_ms(worker: psutil.Process | None, window: float) -> dict[str, Any] | None:
    """Run times of the batches the worker's inference service ran in the last ``window`` seconds (None: no
    service)."""
    stats = service_stats(worker, window)
    return None if stats is None else dict(stats["batch_ms"])


def service_stats(worker: psutil.Process | None, window: float) -> dict[str, Any] | None:
    """The ``stats`` of the worker's inference service over the last ``window`` seconds (None: no service)."""
    from services.worker.inference.client import InferenceClient

    for child in worker.children(recursive=True) if worker is not None else ():
        command = child.cmdline()
        if "services.worker.inference" in command and "--socket" in command:
            client = InferenceClient(Path(command[command.index("--socket") + 1]))
            try:
                return dict(client.stats(window))
            finally:
                client.close()
    return None


@contextlib.contextmanager
def copy_server(clip: Path) -> Iterator[str]:
    """A live MPEG-TS server of ``clip`` (ffmpeg ``-re -stream_loop -1 -c copy``, one client): demux + mux only."""
    from tests.support.streams import LiveStream, free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/live.ts"
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
               "-c", "copy", "-f", "mpegts", "-listen", "1", url]
    with LiveStream(command, port, url) as stream:
        yield stream.url


def short_clip(target: Path, frames: int) -> Path:
    """The first ``frames`` frames of vtest.avi, copied (no re-encode), for a quick dry run."""
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(VIDEO), "-frames:v", str(frames),
                    "-c:v", "copy", "-an", str(target)], check=True)
    return target


def encode_live_clip(target: Path, frames: int | None) -> Path:
    """vtest.avi re-timed to 30 fps and scaled down, H.264 without B-frames, a keyframe every second."""
    limit = ["-frames:v", str(frames)] if frames else []
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-r", str(LIVE_FPS), "-i", str(VIDEO),
                    "-vf", f"scale={LIVE_SCALE}", "-c:v", "libx264", "-preset", "veryfast", "-bf", "0",
                    "-g", str(LIVE_FPS), "-pix_fmt", "yuv420p", "-an", *limit, str(target)], check=True)
    return target


# ------------------------------------------------------------------ the report


@dataclass
class Findings:
    """Everything measured so far; rendered after each part, so an interrupted run still leaves its figures."""

    grid: dict[str, Any] = field(default_factory=dict)
    ipc: dict[str, Any] = field(default_factory=dict)
    limit_after: dict[str, Any] | None = None
    single: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode label -> result
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # mode label -> one per count
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def best(self) -> dict[str, Any]:
        return dict(max(self.grid["cells"], key=lambda cell: cell["fps"]))

    def worker_batch(self) -> int:
        """The worker's max batch: the smallest batch size whose best cell comes within BATCH_TOLERANCE of the
        limit. A larger batch that wins the grid by less than that wins by noise (2.5 s cells on a shared
        host) and costs every frame a longer run and the service a larger arena."""
        floor = (1.0 - BATCH_TOLERANCE) * float(self.best()["fps"])
        return min(int(cell["batch"]) for cell in self.grid["cells"] if cell["fps"] >= floor)

    def worker_batch_cell(self) -> dict[str, Any]:
        """The fastest cell at the worker's batch size."""
        batch = self.worker_batch()
        return dict(max((cell for cell in self.grid["cells"] if cell["batch"] == batch), key=lambda cell: cell["fps"]))

    def limit(self) -> float:
        best = float(self.best()["fps"])
        return best if self.limit_after is None else (best + self.limit_after["fps"]) / 2

    def drift(self) -> float:
        """How far the limit moved between its two measurements (0 before the second)."""
        best = float(self.best()["fps"])
        return 0.0 if self.limit_after is None else abs(float(self.limit_after["fps"]) - best) / best

    def run_limit(self, run: dict[str, Any]) -> float:
        """The limit a run's ratio is taken against: the mean of its bracket (measured just before and just
        after it), or the whole run's limit for a run measured without one."""
        bracket = run.get("limit")
        return sum(bracket) / 2 if bracket else self.limit()

    def run_drift(self, run: dict[str, Any]) -> float:
        bracket = run.get("limit")
        return abs(bracket[1] - bracket[0]) / bracket[0] if bracket else self.drift()

    def ratio_verdict(self, ratio: float, run: dict[str, Any]) -> str:
        """met / NOT met against GOAL_RATIO, unless the host's speed changed too much around the run."""
        drift = self.run_drift(run)
        if drift > LIMIT_DRIFT:
            return f"not judged (the limit moved {drift:.0%} around it)"
        return _met(ratio >= GOAL_RATIO)


class LimitProbe:
    """The limit's cell measured again around each stack run (in a fresh process, the stack idle).

    A shared host's speed drifts by more than the goal's margin within this benchmark's run (the limit
    has moved 11-22 % between its first and last measurement), so each ratio compares its run with the
    model alone as fast as the host was then: the mean of a measurement just before and one just after
    it. A measurement younger than ``REUSE_SECONDS`` serves as the next run's "before".
    """

    REUSE_SECONDS = 60.0

    def __init__(self, cell: dict[str, Any], seconds: float, log: Log) -> None:
        self._cell = {key: cell[key] for key in ("sharing", "parallel", "threads", "batch")}
        self._seconds = seconds
        self._log = log
        self._last: tuple[float, float] | None = None  # (time.monotonic(), fps)

    def measure(self) -> float:
        fps = float(run_child("tests.benchmarks.streams", ["grid", "--cells", json.dumps([self._cell]),
                                                           "--cell-seconds", str(self._seconds)],
                              timeout=300)["cells"][0]["fps"])
        self._last = (time.monotonic(), fps)
        self._log(f"the limit now: {fps:.1f} fps")
        return fps

    def recent(self) -> float:
        if self._last is not None and time.monotonic() - self._last[0] <= self.REUSE_SECONDS:
            return self._last[1]
        return self.measure()


def _cell_name(cell: dict[str, Any]) -> str:
    sessions = "1 session" if cell["sharing"] == "shared" else f"{cell['parallel']} sessions"
    return (f"{cell['parallel']} run(s) at once on {sessions}, {cell['threads']} intra-op thread(s), "
            f"batch {cell['batch']}")


def _met(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def _cores(cores: dict[str, float], *names: str) -> str:
    return " | ".join(f"{cores[name]:.2f}" for name in names)


def render_grid(found: Findings, cell_seconds: float) -> list[str]:
    grid, best = found.grid, found.best()
    dimension = "dynamic" if grid["dynamic"] else f"fixed at {grid['batch_dimension']} (other sizes skipped)"
    lines = [
        "### 1. The limit: the model alone", "",
        f"`session.run` of `{MODEL_ID}` on {GRID_FRAMES} pre-processed frames of `{VIDEO}` cycled, CPU sessions "
        "with the worker's options (1 inter-op thread, sequential, no spinning), all cells in one fresh process, "
        f"each {cell_seconds:g} s after one warm-up run per thread. Runs at once = threads each calling `run`, on "
        f"one shared session or on one session each. The model's batch dimension is {dimension}. fps = frames "
        "completed / wall seconds.", "",
        "| sessions | runs at once | intra-op threads | " + " | ".join(f"batch {b} fps" for b in BATCHES)
        + " | CPU cores (batch 1) |",
        "|---|---|---|" + "---|" * len(BATCHES) + "---|",
    ]
    rows: dict[tuple[str, int, int], dict[int, dict[str, Any]]] = {}
    for cell in grid["cells"]:
        rows.setdefault((cell["sharing"], cell["parallel"], cell["threads"]), {})[cell["batch"]] = cell
    for (sharing, parallel, threads), by_batch in rows.items():
        sessions = "one shared" if sharing == "shared" else "one per run"
        values = []
        for batch in BATCHES:
            cell = by_batch.get(batch)
            text = "-" if cell is None else f"{cell['fps']:.1f}"
            values.append(f"**{text}**" if cell == best else text)
        first = by_batch.get(BATCHES[0])
        cores = "-" if first is None else f"{first['cores']:.2f}"
        lines.append(f"| {sessions} | {parallel} | {threads} | " + " | ".join(values) + f" | {cores} |")
    if found.ipc:
        ipc = found.ipc
        lines += ["", f"What the inference service adds to one request (batch 1, one thread, {ipc['calls']} calls "
                  "in alternating blocks of 20 with the same calls on a local session): "
                  f"`run` {ipc['local_ms']:.1f} ms locally, "
                  f"{ipc['remote_ms']:.1f} ms through the service's socket and shared buffer (median), "
                  f"**{ipc['remote_ms'] - ipc['local_ms']:+.2f} ms** per request for a {ipc['tensor_mib']:.1f} MiB "
                  "tensor (this includes the spread between two sessions of the same model in two processes). A "
                  f"request refused before the model (socket, header, service threads): {ipc['round_trip_ms']:.3f} ms."]
    after = found.limit_after
    again = (f" Re-measured after the stack runs: {after['fps']:.1f} fps (moved {found.drift():.0%})."
             if after else "")
    again += (" Each ratio below is taken against the same cell measured again just before and just after its "
              f"own run ({2 * cell_seconds:g} s each, the stack idle), the mean of the two; a ratio "
              f"whose two measurements differ by more than {LIMIT_DRIFT:.0%} (the host's speed changed during "
              "the run) is not judged against the goal.")
    lines += ["", f"**The limit: {best['fps']:.1f} fps** ({_cell_name(best)}); one `run` of its batch takes "
              f"{best['call_ms']:.0f} ms (the batch time).{again}"]
    return lines


def render_single(found: Findings) -> list[str]:
    lines = [
        "### 2. One pipeline on the file", "",
        f"`{VIDEO}` every frame (`processing_mode` every_frame), INIT -> last result through the real stack on a "
        "worker with 1 slot (automatic sizing: one single-threaded inference round per core); fps = results / "
        "(last result's XADD - INIT sent); steady = between the first and last result. CPU in cores over the "
        "whole run.", "",
        "| inference service | frames | INIT -> first result s | INIT -> last result s | fps | limit before / after "
        "fps | ratio to the limit | steady fps | worker CPU | redis-server | manager | other processes | peak PSS MiB "
        "| peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in found.single.items():
        lines.append(f"| {label} | {run['frames']} | {run['first_s']:.2f} | {run['total_s']:.1f} | {run['fps']:.1f} | "
                     f"{_bracket(run)} | {run['fps'] / found.run_limit(run):.3f} | {run['steady_fps']:.1f} | "
                     f"{_cores(run['cores'], 'worker', 'redis', 'manager', 'others')} | "
                     f"{run['peak_pss']:.0f} | {run['peak_rss']:.0f} |")
    lines += ["", f"Goal ratio ≥ {GOAL_RATIO}: " + "; ".join(
        f"{label} {found.ratio_verdict(run['fps'] / found.run_limit(run), run)}"
        for label, run in found.single.items()) + "."]
    return lines + render_stages(found)


def _bracket(run: dict[str, Any]) -> str:
    bracket = run.get("limit")
    return f"{bracket[0]:.1f} / {bracket[1]:.1f}" if bracket else "-"


OWN_WORK = ("decode", "prepare", "post")  # what a pipeline must do for every frame, whatever its design


def stage_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The split of CPU per result by stage, a column per run (``stage_cpu``'s output under its label)."""
    cores = os.cpu_count() or 1
    labels = list(runs)
    lines = ["| stage | threads | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for stage, threads in STAGES:
        lines.append(f"| {stage} | {threads} | " + " | ".join(f"{runs[label]['ms'][stage]:.2f}" for label in labels)
                     + " |")
    totals = {label: sum(run["ms"].values()) for label, run in runs.items()}
    lines.append("| **all** | | " + " | ".join(f"**{totals[label]:.2f}**" for label in labels) + " |")
    lines.append(f"| fps {cores} cores allow at that cost | | "
                 + " | ".join(f"{1000 * cores / totals[label]:.1f}" for label in labels) + " |")
    lines.append("| window: results / s | | " + " | ".join(
        f"{run['frames']} / {run['seconds']:.1f}" for run in runs.values()) + " |")
    return lines


def render_stages(found: Findings) -> list[str]:
    runs = {label: run["stages"] for label, run in found.single.items() if run.get("stages")}
    if not runs:
        return []
    cores = os.cpu_count() or 1
    limit_ms = {label: 1000 * cores / found.run_limit(found.single[label]) for label in runs}
    labels = list(runs)
    lines = [
        "", "Where the CPU goes: each thread's CPU time (`/proc/<pid>/task/<tid>/schedstat`, by its OS name) over "
        "the steady part of the same runs (from a second after the first result to half a second before the "
        "last), per result, in ms. The limit around each run spends " + "; ".join(
            f"{limit_ms[label]:.1f} ms per frame ({label})" for label in labels) + f" ({cores} cores busy / its fps).",
        "", *stage_table(runs),
    ]
    own = {label: sum(run["ms"][stage] for stage in OWN_WORK) for label, run in runs.items()}
    lines += ["", "A pipeline must " + ", ".join(OWN_WORK[:-1]) + f" and {OWN_WORK[-1]} every frame on the same "
              "cores as the model: " + "; ".join(f"{own[label]:.2f} ms {label}" for label in labels) + ". So even "
              "with model runs as cheap as in the limit and the hand-off, sinks and the rest free, one pipeline "
              "reaches at most the limit's CPU per frame / (that + its own work) = " + "; ".join(
                  f"**{limit_ms[label] / (limit_ms[label] + own[label]):.3f}** {label}" for label in labels)
              + " of the limit."]
    return lines


def render_file_stages(found: Findings) -> list[str]:
    chosen = [(f"{label.split()[0]}, {run['count']}", run) for label, group in found.files.items() for run in group
              if run.get("stages")]
    if not chosen:
        return []
    cores = os.cpu_count() or 1
    return ["", "Where the CPU goes with N pipelines (columns: inference service, N): each thread's CPU time in the "
            "worker's tree over the window (from a second after the last pipeline's first result to half a second "
            "before the first one's last, samples every 0.5 s), per result of all pipelines, in ms; idle prefork "
            "slots count in the rest. The last row is the limit's own CPU per frame around the same run: the "
            "host's speed at the time, to compare the model runs with.", "",
            *stage_table({name: run["stages"] for name, run in chosen}),
            "| the limit around the run | | " + " | ".join(
                f"{1000 * cores / found.run_limit(run):.2f}" for _, run in chosen) + " |"]


def _marginal(runs: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    first = runs[0]
    return [(run["count"], (run[key] - first[key]) / (run["count"] - first["count"])) for run in runs[1:]]


def render_files(found: Findings, concurrency: int, seconds: float) -> list[str]:
    lines = [
        f"### 3. Many pipelines on one worker ({concurrency} slots), the file, every frame", "",
        f"N pipelines on `{VIDEO}` started at once on one worker (`--concurrency {concurrency}`, automatic sizing); "
        f"measured over {seconds:g} s once every pipeline produced results (or until all of them ended, when the "
        "file runs out sooner), cut to the span in which all of them did. Aggregate = results of all pipelines in "
        "that span / its length. E2e on a file in every_frame mode "
        "includes the wait in the decoded-frame buffer (the decoder runs ahead of the model), so it grows with N; "
        "the live part below measures responsiveness. Memory = the worker's whole process tree (main process, "
        "every prefork slot, any inference service process), the peak of samples every 2 s; idle = before the "
        "INITs. CPU in cores over the window; no load generator (the pipelines read the file).", "",
        "| inference service | pipelines | window s | aggregate fps | limit before / after fps | ratio to the limit "
        "| fps per pipeline min-max | e2e p50 ms (median pipeline) | e2e p99 ms (worst pipeline) | PSS MiB idle / "
        "running | RSS MiB idle / running | worker CPU | redis-server | manager | other processes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in found.files.items():
        for run in runs:
            lines.append(
                f"| {label} | {run['count']} | {run['window']:.1f} | {run['aggregate_fps']:.1f} | {_bracket(run)} | "
                f"{run['aggregate_fps'] / found.run_limit(run):.3f} | {run['min_fps']:.1f}-{run['max_fps']:.1f} | "
                f"{run['p50_ms']:.0f} | {run['p99_worst_ms']:.0f} | {run['idle_pss']:.0f} / {run['pss']:.0f} | "
                f"{run['idle_rss']:.0f} / {run['rss']:.0f} | "
                f"{_cores(run['cores'], 'worker', 'redis', 'manager', 'others')} |")
    marginal = [f"| {label} | {runs[0]['count']} -> {count} | {pss:.1f} | {rss:.1f} | "
                f"{_met(pss <= GOAL_MIB_PER_PIPELINE)} |" for label, runs in found.files.items()
                for (count, pss), (_, rss) in zip(_marginal(runs, "pss"), _marginal(runs, "rss"), strict=True)]
    if marginal:
        lines += ["", "Memory per added pipeline (running with N minus running with the fewest, over the pipelines "
                  "added):", "", "| inference service | pipelines | PSS MiB per added pipeline | RSS MiB per added "
                  f"pipeline | goal ≤ {GOAL_MIB_PER_PIPELINE:.0f} MiB (PSS) |", "|---|---|---|---|---|", *marginal]
    lines += ["", "PSS divides each shared page among the processes mapping it, so the sum over the tree counts "
              "memory once: it is what the host really spends. RSS counts a shared page in every process, so "
              "summed over prefork children that share the parent's imported code (copy-on-write) and over "
              "pipelines that map the same model file it overstates the cost; the difference is what sharing "
              f"saves. Goal ratio ≥ {GOAL_RATIO} on the aggregate: " + "; ".join(
                  f"{label} with {run['count']}: "
                  f"{found.ratio_verdict(run['aggregate_fps'] / found.run_limit(run), run)}"
                  for label, runs in found.files.items() for run in runs) + "."]
    return lines + render_file_stages(found)


def render_live(found: Findings, batch_ms: float) -> list[str]:
    if not found.live:
        return []
    first = next(iter(found.live.values()))
    interval_ms = 1000 / LIVE_FPS

    def goal_of(run: dict[str, Any]) -> tuple[float, str]:
        """2 frame intervals + one batch time: the median run time of the service's batches in the window, or
        without a service the model-alone run time of one batch of the worker's size."""
        measured = run.get("batch_ms") or {}
        if measured.get("count"):
            return (2 * interval_ms + measured["p50"],
                    f"{2 * interval_ms:.0f} + {measured['p50']:.0f} (p99 {measured['p99']:.0f}, "
                    f"{measured['count']} batches)")
        return 2 * interval_ms + batch_ms, f"{2 * interval_ms:.0f} + {batch_ms:.0f} (model alone)"

    lines = [
        f"### 4. {first['streams']} live streams at {LIVE_FPS} fps, freshest", "",
        f"{first['streams']} ffmpeg servers (`-re -stream_loop -1 -c copy`, MPEG-TS over HTTP, one client each) of "
        f"`{VIDEO}` re-timed to {LIVE_FPS} fps, scaled to {LIVE_SCALE.replace(':', 'x')}, H.264 without B-frames; one "
        f"pipeline per stream in `freshest` mode with `max_staleness` {first['max_staleness']:.3f} s (two frame "
        "intervals), on the same worker as part 3. Decoded / processed / dropped = the STATUS reports' counters over "
        "the window (drops by cause, summed over the streams; sink drops separately); e2e from the results written "
        "in it, cut to the span in which every stream produced results. Goal: e2e p99 (every frame of "
        "every stream) ≤ 2 frame intervals + one batch time, where one batch time is the median run time of the "
        "batches the worker's inference service ran in the window (its `stats`; p99 and count beside it), and "
        f"without the service the run time of one batch of the worker's size in the model-alone grid ({batch_ms:.0f} "
        "ms, its fastest cell). Load generator = "
        f"the ffmpeg servers' CPU (share of the host's {os.cpu_count()} cores). The last row runs the same streams "
        "on a worker sized for latency by hand (`WORKER_INFERENCE_RUNNERS=1`, `WORKER_INTRA_OP_THREADS` = the "
        "cores): one batch at a time on every core whatever the load. The automatic sizing (the shared row) runs "
        "one single-threaded run per core side by side, which processes the most frames, but while only live "
        "pipelines ask (every request of the last 2 s carried a deadline) it too runs one batch at a time on a "
        "session with a thread per core (`WORKER_INFERENCE_LIVE_LATENCY`); `live-only batches` = the share of "
        "its batches that ran so in the window.",
        "",
        "| inference service | window s | decoded | processed | processed fps | dropped by cause | sink drops | "
        "e2e p50 ms | e2e p99 ms | p99 worst stream ms | goal ms: 2 intervals + one batch | goal | live-only batches | "
        "load generator cores (share) | worker CPU | redis-server | manager | other processes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in found.live.items():
        dropped = ", ".join(f"{cause} {count}" for cause, count in sorted(run["dropped"].items())) or "none"
        generator = run["cores"]["generator"]
        goal_ms, goal_text = goal_of(run)
        lines.append(
            f"| {label} | {run['counted_s']:.1f} | {run['decoded']} | {run['processed']} | "
            f"{run['processed'] / run['counted_s']:.1f} | "
            f"{dropped} | {run['sink_dropped']} | {run['p50_all_ms']:.0f} | {run['p99_all_ms']:.0f} | "
            f"{run['p99_worst_ms']:.0f} | {goal_text} = {goal_ms:.0f} | {_met(run['p99_all_ms'] <= goal_ms)} | "
            f"{_share(run.get('live_only_share'))} | {generator:.2f} ({generator / (os.cpu_count() or 1):.0%}) | "
            f"{_cores(run['cores'], 'worker', 'redis', 'manager', 'others')} |")
    return lines


def _share(share: float | None) -> str:
    return "no service" if share is None else f"{share:.0%}"


def render(found: Findings, plan: "Plan") -> str:
    lines = ["## Many streams per host", "", stamp(), ""]
    if plan.quick:
        lines += ["**Dry run (`--quick`): short windows, few pipelines, a short clip; the figures mean nothing.**", ""]
    lines += found.notes + ([""] if found.notes else [])
    if found.grid:
        lines += render_grid(found, plan.cell_seconds)
    if found.single:
        lines += ["", *render_single(found)]
    if found.files:
        lines += ["", *render_files(found, plan.concurrency, plan.seconds)]
    if found.live and found.grid:
        lines += ["", *render_live(found, found.worker_batch_cell()["call_ms"])]
    return "\n".join(lines)


# ------------------------------------------------------------------ orchestration


@dataclass(frozen=True)
class Plan:
    quick: bool
    seconds: float  # window of each stack run
    cell_seconds: float  # each grid cell
    counts: tuple[int, ...]  # pipelines at once in part 3
    concurrency: int
    streams: int  # live streams in part 4
    services: tuple[bool, ...]
    runners: int
    max_batch: int | None  # None: Findings.worker_batch()
    parts: frozenset[str]
    quiet_wait: float  # seconds to wait for a quiet machine at the start

    @classmethod
    def of(cls, args: argparse.Namespace, error: Callable[[str], Any]) -> "Plan":
        services = tuple(value.strip().lower() for value in args.services.split(","))
        if not services or set(services) - {"true", "false"}:
            error(f"--services: comma-separated true/false, got {args.services!r}")
        parts = frozenset(part.strip() for part in args.parts.split(","))
        if not parts or parts - PARTS:
            error(f"--parts: comma-separated names among {', '.join(sorted(PARTS))}, got {args.parts!r}")
        try:
            counts = tuple(sorted({int(count) for count in args.counts.split(",")}))
        except ValueError:
            counts = ()
        if not counts or counts[0] < 1:
            error(f"--counts: comma-separated positive integers, got {args.counts!r}")
        common = {"services": tuple(value == "true" for value in services), "runners": args.runners,
                  "max_batch": args.max_batch, "parts": parts}
        if args.quick:
            return cls(True, 4.0, 0.3, (1, 2), 2, 2, quiet_wait=0.0, **common)
        return cls(False, args.seconds, args.cell_seconds, counts, max(*counts, args.streams), args.streams,
                   quiet_wait=args.quiet_wait, **common)


LATENCY_LABEL = "on (shared), sized for latency: 1 runner x all cores' threads"


def _label(service: bool) -> str:
    return "on (shared)" if service else "off (per pipeline)"


def run(plan: Plan, output: Path, log: Log) -> str:
    from tests.benchmarks.decode import wait_for_quiet
    from tests.support.redis_server import running_redis
    from tests.support.stack import running_stack

    found = Findings()
    found.notes.append(wait_for_quiet(1.5, plan.quiet_wait, log))
    cells = grid_cells(os.cpu_count() or 1)

    def publish() -> None:
        write_section(output, SECTION, render(found, plan))

    log(f"model alone: {len(cells)} cells of {plan.cell_seconds:g} s ...")
    found.grid = run_child("tests.benchmarks.streams", ["grid", "--cells", json.dumps(cells), "--cell-seconds",
                                                        str(plan.cell_seconds)], timeout=600)
    best = found.best()
    log(f"the limit: {best['fps']:.1f} fps ({_cell_name(best)})")
    found.ipc = run_child("tests.benchmarks.streams", ["ipc", *(["--quick"] if plan.quick else [])], timeout=300)
    log(f"the service adds {found.ipc['remote_ms'] - found.ipc['local_ms']:+.2f} ms per request")
    publish()
    max_batch = plan.max_batch or found.worker_batch()
    settings = ", ".join(f"`{name}={value}`" for name, value in worker_env(True, plan.runners, max_batch).items()
                         if name != "WORKER_INFERENCE_SERVICE")
    chosen = "given" if plan.max_batch else \
        f"= the smallest batch size whose best cell is within {BATCH_TOLERANCE:.0%} of the limit"
    found.notes.append(f"Worker environment of parts 2-4 besides `WORKER_INFERENCE_SERVICE`: {settings} "
                       f"(max batch {chosen}).")
    probe = LimitProbe(best, 2 * plan.cell_seconds, log)
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp, running_redis() as server, \
            running_stack(server.url) as stack:
        assert server.process is not None
        stack.start_manager(MANAGER_LOG_LEVEL="WARNING", MANAGER_FILE_ROOTS=f"data,{tmp}")  # tmp: --quick's clip
        bench = Bench(stack, server.process.pid, log)
        single_video, frames = (short_clip(Path(tmp) / "short.avi", 120), 120) if plan.quick else (VIDEO, 795)
        clip = encode_live_clip(Path(tmp) / "live.mp4", 300 if plan.quick else None) if "live" in plan.parts else None
        for service in plan.services:
            label, env = _label(service), worker_env(service, plan.runners, max_batch)
            if "single" in plan.parts:
                before = probe.recent()
                result = run_single(bench, single_video, label.split()[0], env, frames)  # stops its worker
                found.single[label] = {**result, "limit": (before, probe.measure())}
                log(f"single, service {label}: {result['fps']:.1f} fps INIT -> last result")
                publish()
            if not {"many", "live"} & plan.parts:
                continue
            bench.start_worker(f"many-{label.split()[0]}", plan.concurrency, env)
            if "many" in plan.parts:
                for count in plan.counts:
                    before = probe.recent()
                    result = run_files(bench, count, plan.seconds)
                    log(f"{count} pipelines, service {label}: {result['aggregate_fps']:.1f} fps, "
                        f"PSS {result['pss']:.0f} MiB")
                    assert bench.worker is not None
                    wait_idle(bench.worker, log)  # finished slots are replaced by fresh, warming processes
                    found.files.setdefault(label, []).append({**result, "limit": (before, probe.measure())})
                    publish()
            if clip is not None:
                found.live[label] = result = run_live(bench, clip, plan.streams, plan.seconds, 2 / LIVE_FPS)
                log(f"{plan.streams} live streams, service {label}: p99 {result['p99_all_ms']:.0f} ms, "
                    f"{result['processed']} processed, dropped {result['dropped']}")
                publish()
            bench.stop_worker(f"many-{label.split()[0]}")
        if clip is not None and True in plan.services and not plan.runners:
            # The same streams on a worker sized for latency: one run at a time with every core's thread.
            label, cores = LATENCY_LABEL, os.cpu_count() or 1
            env = {**worker_env(True, 1, max_batch), "WORKER_INTRA_OP_THREADS": str(cores)}
            bench.start_worker("latency", plan.concurrency, env)
            found.live[label] = result = run_live(bench, clip, plan.streams, plan.seconds, 2 / LIVE_FPS)
            log(f"{plan.streams} live streams, {label}: p99 {result['p99_all_ms']:.0f} ms, "
                f"{result['processed']} processed, dropped {result['dropped']}")
            publish()
            bench.stop_worker("latency")
    found.limit_after = run_child("tests.benchmarks.streams", ["grid", "--cells", json.dumps([{
        key: best[key] for key in ("sharing", "parallel", "threads", "batch")}]), "--cell-seconds",
        str(2 * plan.cell_seconds)], timeout=300)["cells"][0]
    log(f"the limit again: {found.limit_after['fps']:.1f} fps")
    publish()
    return render(found, plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--quick", action="store_true", help="a dry run: short windows, few pipelines")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window of each stack run")
    parser.add_argument("--cell-seconds", type=float, default=2.5, help="each cell of the model-alone grid")
    parser.add_argument("--services", default="false,true", help="WORKER_INFERENCE_SERVICE values to run")
    parser.add_argument("--runners", type=int, default=0, help="WORKER_INFERENCE_RUNNERS (0: automatic)")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="WORKER_INFERENCE_MAX_BATCH (default: the batch size of the limit)")
    parser.add_argument("--parts", default="single,many,live", help="comma-separated: single, many, live")
    parser.add_argument("--counts", default="1,4,16", help="pipelines at once in part 3 (many)")
    parser.add_argument("--streams", type=int, default=16, help="live streams in part 4 (live)")
    parser.add_argument("--quiet-wait", type=float, default=600.0,
                        help="wait at most this many seconds for the 1-minute load to fall below 1.5")
    parser.add_argument("--child", choices=["grid", "ipc"])
    parser.add_argument("--cells", default="[]")
    args = parser.parse_args()
    if args.child == "ipc":
        print(json.dumps(measure_ipc(40 if args.quick else 200)))
        return
    if args.child:
        print(json.dumps(measure_grid(json.loads(args.cells), args.cell_seconds)))
        return
    print(run(Plan.of(args, parser.error), args.output, lambda text: print(text, file=sys.stderr, flush=True)))


if __name__ == "__main__":
    main()
