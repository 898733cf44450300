"""The GPU path on a CUDA host: onnxruntime's CUDA provider against the CPU, and the engine on the GPU.

Run where onnxruntime-gpu and a CUDA device exist (never in CI, which has no GPU):
``python -m tests.benchmarks.gpu --output gpu.md``. It measures, on the sample video:

- which providers the ``gpu`` device selects (``select_providers``) and that the session uses CUDA;
- agreement: the same frames through the CPU and the GPU sessions give the same detections
  (matched by class, IoU of every matched pair);
- ``session.run`` alone on pre-processed frames, CPU (all cores) vs GPU;
- the engine on the file with ``device=gpu`` (WAIT/LAZY, every frame, no sink), with 1 and 2
  inference workers: decoding and pre-processing stay on the CPU, so this is the end-to-end rate;
- ``--stack``: the whole system on the GPU host: an embedded redis-server, the manager with
  ``gpu`` as its default device, a Celery worker with ``WORKER_DEVICE=gpu`` on ``pipelines.gpu``,
  and a pipeline on the sample video started over TCP and read back with CONSUME_RESULT to its end
  (detection totals compared with the CPU's, in the README's ``make run`` output).

``--streams 1,16,64 [--device gpu] [--max-batch 64] [--seconds 20] [--max-fps F] [--json figures.json]``
(issue 13) runs only this instead, and writes the ``gpu-streams`` section of ``--output`` (a markdown
file, as ``make bench`` does; rewritten after every step, so a run stopped at its time limit keeps
what it measured):

1. the model alone, in a child process: ``session.run`` through the runner the service loads
   (``load_runner``, same device and intra-op threads) on pre-processed vtest.avi frames, at batch
   sizes 1, 8, 16, 32, 64 (each size is run first: a fixed batch dimension refuses the others), with
   1 caller and with as many callers as the service has runners, on one session;
2. the whole stack: an embedded redis-server (``redis-server`` on PATH), the manager, ONE Celery
   worker ``WORKER_DEVICE=<device>`` on ``pipelines.<device>`` with as many prefork slots as the
   largest count, ``WORKER_INFERENCE_SERVICE=true`` and ``WORKER_INFERENCE_MAX_BATCH``; for each
   count N (increasing, the same worker), N pipelines INIT over TCP at once on the same file, every
   frame. Results are counted in Redis: every second, each results stream's XINFO ``entries-added``
   (every XADD, whatever MAXLEN trimmed; one entry per frame with one source) and the pipelines'
   states; the window starts ``--warmup`` s after every pipeline wrote its first result and ends
   after ``--seconds`` s, or at the last sample before any pipeline ended. Each sample also reads
   the service's ``stats`` (``InferenceClient`` on the socket named in its command line: the batch
   sizes) and the CPU time of the pipelines, the service, redis-server, the manager and the host,
   so the window's CPU shares show what bound the run; GPU utilisation and memory come from nvidia-smi (the
   service's pid in its compute apps, else the device's memory used minus before the stack), "n/a"
   on a host without it;
3. the ratio of the aggregate to the model alone at the batch size the service used most (by
   frames; measured alone after the stack if it was not among the sizes above) and at
   ``--max-batch`` (goal >= 0.9).

Files end (vtest.avi has 795 frames, about a second of one unpaced pipeline on a GPU), so every
pipeline reads one longer file: vtest.avi many times over, its packets copied into one AVI by PyAV
(no re-encoding, every copy starts on a keyframe: each frame costs what it costs in vtest.avi),
long enough for the window at the most one pipeline can run (``--max-fps``, else 1.5x the model
alone's best, at most 1200 fps), kept in data/media. Pacing with ``--max-fps`` bounds the
aggregate at N x max_fps, so it is off by default: the point is the most the stack gets through
the service. On a 16-core host 64 unpaced pipelines are bound by
decoding and pre-processing on the CPU; the report shows the host's busy cores beside each rate.
A dry run on a CPU host: ``--device cpu --streams 1,4 --seconds 10`` (its figures say nothing of a GPU).
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from services.core import keys
from services.core.results import detections_in
from tests.benchmarks.report import cpu_seconds as _cpu_seconds
from tests.benchmarks.report import host_busy as _host_busy
from tests.benchmarks.report import process_tree as _tree
from tests.benchmarks.report import run_child, stamp, write_section

VIDEO = Path("data/media/vtest.avi")
MODEL_ID = "yolov3-tiny/coco-416"
REPOSITORY = Path("data/models")
ROOT = Path(__file__).resolve().parents[2]


def _frames(limit: int | None = None) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    frames: list[np.ndarray] = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def _detector(device: str) -> Any:
    from services.worker.detection.detector import Detector
    from services.worker.models.repository import ModelRepository

    return Detector(ModelRepository(REPOSITORY).resolve(MODEL_ID), device=device)


def _model_fps(detector: Any, tensors: list[np.ndarray]) -> float:
    for tensor in tensors[:10]:
        detector.infer(tensor)  # warm-up (CUDA kernels, cuDNN algorithm search)
    started = time.perf_counter()
    for tensor in tensors:
        detector.infer(tensor)
    return len(tensors) / (time.perf_counter() - started)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 1.0


def _agreement(cpu: Any, gpu: Any, frames: list[np.ndarray]) -> dict[str, Any]:
    from services.worker.detection.detector import DetectionParams

    params = DetectionParams()
    counts = [0, 0]
    mismatched_frames = 0
    ious: list[float] = []
    for frame in frames:
        results = []
        for detector in (cpu, gpu):
            tensor, transform = detector.preprocess(frame)
            results.append(detector.postprocess(detector.infer(tensor)[0], transform, params))
        a, b = results
        counts[0] += len(a.class_id)
        counts[1] += len(b.class_id)
        if sorted(a.class_id.tolist()) != sorted(b.class_id.tolist()):
            mismatched_frames += 1
            continue
        for box, cls in zip(a.xyxy, a.class_id, strict=True):
            same = [other for other, other_cls in zip(b.xyxy, b.class_id, strict=True) if other_cls == cls]
            ious.append(max(_iou(box, other) for other in same))
    return {"frames": len(frames), "cpu_detections": counts[0], "gpu_detections": counts[1],
            "frames_with_different_classes": mismatched_frames,
            "min_iou": min(ious) if ious else None, "mean_iou": float(np.mean(ious)) if ious else None}


def _engine_fps(workers: int) -> tuple[int, float]:
    from services.worker.detection.processor import DetectionProcessor
    from services.worker.engine.pipeline import InferencePipeline, PipelineConfig

    detector = _detector("gpu")
    detector.infer(detector.preprocess(_frames(1)[0])[0])
    pipeline = InferencePipeline(PipelineConfig(video_references=(str(VIDEO),), inference_workers=workers),
                                 DetectionProcessor(detector), [])
    started = time.perf_counter()
    pipeline.start()
    pipeline.wait(timeout=600)
    elapsed = time.perf_counter() - started
    return pipeline.watchdog.frames_processed, pipeline.watchdog.frames_processed / elapsed


def _stack_run(device: str = "gpu") -> list[str]:
    """The sample video through manager + GPU Celery worker + Redis; every result read back."""
    import collections

    from services.client import ManagerClient
    from tests.support.stack import running_stack
    from tools.embedded_redis import running_redis
    from tools.payloads import newer_init

    with running_redis() as server, running_stack(server.url, devices=device) as stack:
        stack.start_manager(MANAGER_DEFAULT_DEVICE=device)
        stack.start_worker_with_env(device, f"pipelines.{device}", {"WORKER_DEVICE": device}, concurrency=1)
        client = ManagerClient(port=stack.port, timeout=60, init_timeout=120)
        started = time.perf_counter()
        pipeline_id = client.initialise(newer_init(str(VIDEO), results_buffer_size=1000)).context.pipeline_id
        assert pipeline_id is not None
        counts: collections.Counter[str] = collections.Counter()
        frames = 0
        while True:
            batch = client.consume(pipeline_id, max_entries=500)
            for entry in batch.entries or []:
                for output in entry.outputs:
                    if output is not None:
                        frames += 1
                        counts.update(p["class"] for p in detections_in(output) or [])
            if not batch.entries:
                status = client.status(pipeline_id).report
                if status.pipeline_state in ("ENDED", "FAILED", "TERMINATED"):
                    break
                time.sleep(0.2)
        elapsed = time.perf_counter() - started
        report = client.status(pipeline_id).report
        registration = stack.registration(f"{device}@test") or {}
    totals = ", ".join(f"{count} {name}" for name, count in counts.most_common())
    return [
        f"- Whole stack on the GPU host (redis-server, manager, Celery worker `WORKER_DEVICE=gpu` on "
        f"`pipelines.gpu`, worker registered with device `{registration.get('device')}`): pipeline "
        f"{report.pipeline_state}, {frames} frames read back with CONSUME_RESULT in {elapsed:.1f} s from INIT "
        f"(model load included), {report.inference_throughput:.1f} fps reported; detections: {totals}.",
    ]


# ------------------------------------------------------------------ --streams: many pipelines, one inference service

SECTION = "gpu-streams"
MODEL_BATCHES = (1, 8, 16, 32, 64)
GOAL_RATIO = 0.9
ASSUMED_PIPELINE_FPS = 1200.0  # most frames one unpaced pipeline delivers per second (sizes the looped file)
FINAL_STATES = frozenset({"ENDED", "FAILED", "TERMINATED"})
Log = Callable[[str], None]


def _model_cell(runner: Any, inputs: list[np.ndarray], batch: int, parallel: int, seconds: float) -> dict[str, Any]:
    """``parallel`` threads call ``runner.run`` on one session for ``seconds`` (each at least once)."""
    calls, ends = [0] * parallel, [0.0] * parallel
    clock = {"started": 0.0, "deadline": 0.0}

    def go() -> None:  # run by the barrier once every thread has warmed up
        clock["started"] = time.perf_counter()
        clock["deadline"] = clock["started"] + seconds

    ready = threading.Barrier(parallel, action=go)

    def loop(index: int) -> None:
        runner.run(inputs[index % len(inputs)])  # this thread's warm-up
        ready.wait(timeout=300)  # a thread that failed breaks the barrier instead of hanging the others
        turn = index
        while True:
            runner.run(inputs[turn % len(inputs)])
            calls[index] += 1
            turn += 1
            if time.perf_counter() >= clock["deadline"]:
                break
        ends[index] = time.perf_counter()

    threads = [threading.Thread(target=loop, args=(index,)) for index in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = max(ends) - clock["started"]
    return {"batch": batch, "parallel": parallel, "frames": sum(calls) * batch, "seconds": wall,
            "fps": sum(calls) * batch / wall, "call_ms": 1000 * wall * parallel / sum(calls)}


def measure_model(device: str, batches: list[int], parallel: list[int], threads: int, seconds: float) -> dict[str, Any]:
    """``session.run`` alone (child process): the runner the service loads, on pre-processed vtest.avi frames.

    The batch dimension is checked by running each size (a fixed dimension fails every other size,
    which is then reported, not measured).
    """
    from services.worker.detection.detector import Detector, load_runner
    from services.worker.models.repository import ModelRepository

    spec = ModelRepository(REPOSITORY).resolve(MODEL_ID)
    before = gpu_sample() if device != "cpu" else None
    runner = load_runner(spec, device, threads, False)  # what the service's loader does (no TensorRT cache)
    detector = Detector(spec, runner=runner)
    tensors = [detector.preprocess(frame)[0] for frame in _frames(64)]
    cells: list[dict[str, Any]] = []
    refused: dict[int, str] = {}
    for batch in batches:
        inputs = [np.concatenate([tensors[(start + index) % len(tensors)] for index in range(batch)])
                  for start in (0, batch)]
        try:
            for tensor in inputs:  # the shape's first runs (CUDA: kernel and cuDNN algorithm choice)
                output = runner.run(tensor)
                if output.shape[0] != batch:
                    raise RuntimeError(f"{output.shape[0]} outputs for a batch of {batch}")
        except Exception as exc:  # onnxruntime's untyped errors: a fixed batch dimension
            refused[batch] = f"{type(exc).__name__}: {str(exc)[:200]}"
            continue
        cells += [_model_cell(runner, inputs, batch, count, seconds) for count in parallel]
    after = gpu_sample() if device != "cpu" else None
    memory = None
    if before and after and before["used_mib"] is not None and after["used_mib"] is not None:
        memory = after["used_mib"] - before["used_mib"]
    return {"providers": runner.providers, "cells": cells, "refused": {str(k): v for k, v in refused.items()},
            "gpu_memory_mib": memory, "largest_batch": max((cell["batch"] for cell in cells), default=None)}


def _best(model: dict[str, Any], batch: int) -> dict[str, Any] | None:
    """The fastest model-alone cell at ``batch`` (over the numbers of callers)."""
    cells = [cell for cell in model["cells"] if cell["batch"] == batch]
    return max(cells, key=lambda cell: cell["fps"]) if cells else None


# ------------------------------------------------------------------ GPU figures (nvidia-smi; n/a without it)


_SMI = {"usable": True}  # cleared when nvidia-smi hangs: a window's sampling must not wait on it again


def _nvidia_smi(query: str) -> list[list[str]] | None:
    binary = shutil.which("nvidia-smi")
    if binary is None or not _SMI["usable"]:
        return None
    try:
        done = subprocess.run([binary, query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                              timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        _SMI["usable"] = False
        return None
    if done.returncode != 0:
        return None
    return [[cell.strip() for cell in line.split(",")] for line in done.stdout.splitlines() if line.strip()]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def gpu_sample() -> dict[str, float | None] | None:
    """The first GPU's utilisation (%) and memory used/total (MiB), or None without nvidia-smi."""
    rows = _nvidia_smi("--query-gpu=utilization.gpu,memory.used,memory.total")
    if not rows or len(rows[0]) < 3:
        return None
    util, used, total = (_number(cell) for cell in rows[0][:3])
    return {"util": util, "used_mib": used, "total_mib": total}


def gpu_memory(pids: set[int], baseline_mib: float | None) -> tuple[float | None, str]:
    """GPU memory of ``pids`` (MiB) and how it was read.

    nvidia-smi's compute apps by pid where it lists them; in a container it may list host pids (all
    of them are counted then: nothing else of this benchmark holds the GPU at that moment) or none
    (then the device's memory used minus ``baseline_mib``, read before the stack started).
    """
    rows = _nvidia_smi("--query-compute-apps=pid,used_memory") or []
    apps = {int(row[0]): memory for row in rows
            if len(row) >= 2 and row[0].isdigit() and (memory := _number(row[1])) is not None}
    mine = [memory for pid, memory in apps.items() if pid in pids]
    if mine:
        return sum(mine), "nvidia-smi compute-apps, the service's pid"
    if apps:
        return sum(apps.values()), f"nvidia-smi compute-apps, all {len(apps)} listed (pids not matched here)"
    sample = gpu_sample()
    if sample and sample["used_mib"] is not None and baseline_mib is not None:
        return sample["used_mib"] - baseline_mib, "device memory used minus before the stack"
    return None, "n/a"


# ------------------------------------------------------------------ the input file and process accounting


def looped_video(loops: int) -> tuple[Path, int]:
    """vtest.avi ``loops`` times over in one file, and its frame count.

    Its packets are copied (PyAV, no re-encoding), so every frame costs what it costs in vtest.avi to
    decode; every copy starts on a keyframe. Kept in data/media for the next run.
    """
    import cv2

    capture = cv2.VideoCapture(str(ROOT / VIDEO))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    if frames < 1:
        raise RuntimeError(f"cannot read {VIDEO} (make setup fetches it)")
    target = (ROOT / VIDEO).with_name(f"{VIDEO.stem}-x{loops}{VIDEO.suffix}")
    if loops == 1:
        return ROOT / VIDEO, frames
    if not target.exists():
        import av

        partial = target.with_suffix(".partial")
        with av.open(str(partial), "w", format="avi") as out:
            stream: Any = None
            for loop in range(loops):
                with av.open(str(ROOT / VIDEO)) as source:
                    video = source.streams.video[0]
                    stream = stream or out.add_stream_from_template(video)
                    index = 0
                    for packet in source.demux(video):
                        if not packet.size:
                            continue  # the demuxer's final flush packet
                        packet.stream = stream
                        packet.pts = packet.dts = loop * frames + index
                        out.mux(packet)
                        index += 1
        partial.rename(target)
    return target, frames * loops





@dataclass(frozen=True)
class CpuReading:
    at: float  # monotonic
    seconds: dict[str, dict[int, float]]  # group -> pid -> CPU seconds so far
    host: float  # the host's busy seconds so far


class CpuMeter:
    """CPU seconds of groups of processes and of the whole host, read at any moment; cores used between two
    readings. A process gone by the second reading loses its time: a pipeline's process exits with its
    task (``worker_max_tasks_per_child=1``), so readings are taken while the pipelines run."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self._groups = groups

    def read(self) -> CpuReading:
        seconds = {name: _cpu_seconds(processes()) for name, processes in self._groups.items()}
        return CpuReading(time.monotonic(), seconds, _host_busy())

    @staticmethod
    def cores(begin: CpuReading, end: CpuReading) -> dict[str, float]:
        wall = end.at - begin.at
        cores = {name: sum(seconds - begin.seconds[name].get(pid, 0.0) for pid, seconds in pids.items()) / wall
                 for name, pids in end.seconds.items()}
        cores["host"] = (end.host - begin.host) / wall
        return cores


# ------------------------------------------------------------------ the stack


@dataclass(frozen=True)
class StreamsPlan:
    device: str
    counts: list[int]
    seconds: float
    warmup: float
    max_batch: int
    runners: int
    in_flight: int
    threads: int
    max_fps: float | None
    loops: int
    batches: list[int]
    model_seconds: float

    def worker_env(self) -> dict[str, str]:
        return {"WORKER_DEVICE": self.device, "WORKER_INFERENCE_SERVICE": "true",
                "WORKER_INFERENCE_MAX_BATCH": str(self.max_batch), "WORKER_INFERENCE_RUNNERS": str(self.runners),
                "WORKER_INFERENCE_IN_FLIGHT": str(self.in_flight), "WORKER_INTRA_OP_THREADS": str(self.threads),
                "WORKER_PRELOAD_MODELS": MODEL_ID}

    def service_sizing(self) -> tuple[int, int]:
        """(runners, intra-op threads) of the service, as the worker will size it on this host."""
        from services.worker.settings import WorkerSettings

        settings = WorkerSettings(device=self.device, inference_runners=self.runners,  # type: ignore[arg-type]
                                  intra_op_threads=self.threads, inference_max_batch=self.max_batch)
        return settings.service_sizing(os.cpu_count() or 1)

    def auto_loops(self, model_fps: float, frames_per_file: int = 795) -> int:
        """``--loops``, or enough copies of the file for one pipeline to outlast INIT, warm-up and window at
        the most it can run: ``--max-fps``, 1.5x the model alone's best, at most ``ASSUMED_PIPELINE_FPS``."""
        rate = min(self.max_fps or ASSUMED_PIPELINE_FPS, 1.5 * model_fps, ASSUMED_PIPELINE_FPS)
        return self.loops or max(1, -(-int(rate * (self.seconds + self.warmup + 20)) // frames_per_file))


@dataclass(frozen=True)
class Sample:
    at: float  # unix time (midpoint of the Redis read)
    counts: list[int]  # results written so far, per pipeline
    states: list[str]
    stats: dict[str, Any]  # the inference service's counters
    cpu: CpuReading


class StreamsBench:
    """One worker (``concurrency`` = the most streams) with its inference service, on the stack."""

    NAME = "streams"

    def __init__(self, stack: Any, redis_pid: int, plan: StreamsPlan, log: Log) -> None:
        self.stack, self.plan, self.log = stack, plan, log
        self.client: Any = stack.client
        self.redis = psutil.Process(redis_pid)
        self.concurrency = max(plan.counts)
        self.worker: psutil.Process | None = None
        self.service: psutil.Process | None = None
        self.socket: Path | None = None
        version = str(self.client.info("server")["redis_version"])
        # XINFO STREAM's entries-added (Redis >= 7.0) counts every XADD whatever the trimming; an
        # older Redis gets a buffer as long as the file, so XLEN (no trimming) counts instead.
        self.counter = "entries-added" if int(version.split(".")[0]) >= 7 else "length"

    def start(self) -> None:
        started = time.monotonic()
        self.stack.start_worker_with_env(self.NAME, f"pipelines.{self.plan.device}", self.plan.worker_env(),
                                         concurrency=self.concurrency)
        worker = self.worker = psutil.Process(self.stack.workers[self.NAME].pid)
        deadline = time.monotonic() + 120
        while self.service is None:
            for process in _tree(worker)[1:]:
                with contextlib.suppress(psutil.Error):
                    command = process.cmdline()
                    if "services.worker.inference" in command and "--socket" in command:
                        self.service, self.socket = process, Path(command[command.index("--socket") + 1])
            if time.monotonic() > deadline:
                raise RuntimeError("the worker started no inference service (WORKER_INFERENCE_SERVICE?)")
            time.sleep(0.2)
        assert self.socket is not None
        while True:  # the preloaded model, so the first INIT does not wait for it
            with contextlib.suppress(Exception):
                if MODEL_ID in self.stats().get("models", []):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the inference service did not load {MODEL_ID} within 120 s")
            time.sleep(0.5)
        self._wait_idle()
        self.log(f"worker ({self.concurrency} slots) and its service (pid {self.service.pid}, {self.socket}) "
                 f"ready in {time.monotonic() - started:.1f} s")

    def _wait_idle(self, threshold: float = 0.5, timeout: float = 120.0) -> None:
        """Until the worker's tree uses under ``threshold`` cores (its pool processes have imported everything)."""
        assert self.worker is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = sum(_cpu_seconds(_tree(self.worker)).values())
            time.sleep(1.0)
            if sum(_cpu_seconds(_tree(self.worker)).values()) - before < threshold:
                return
        self.log(f"worker still busy after {timeout:.0f} s; measuring anyway")

    def stats(self) -> dict[str, Any]:
        from services.worker.inference.client import InferenceClient

        assert self.socket is not None
        client = InferenceClient(self.socket, connect_timeout=2)
        try:
            return client.stats()
        finally:
            client.close()

    def meter(self) -> CpuMeter:
        assert self.worker is not None and self.service is not None and self.stack.manager is not None
        worker, service, manager = self.worker, self.service, psutil.Process(self.stack.manager.pid)
        return CpuMeter({"pipelines": lambda: [p for p in _tree(worker) if p.pid != service.pid],
                         "service": lambda: [service], "redis": lambda: [self.redis], "manager": lambda: [manager]})

    def payload(self, video: Path, frames: int) -> dict[str, Any]:
        from tools.payloads import newer_init

        buffer = 64 if self.counter == "entries-added" else frames + 100
        payload = newer_init(str(video), max_fps=self.plan.max_fps, results_buffer_size=buffer)
        payload["video_configuration"]["processing_mode"] = "every_frame"
        return payload

    def init_many(self, payload: dict[str, Any], count: int) -> tuple[list[str], list[str]]:
        """``count`` INITs over TCP, 16 at a time (each on its own connection, as control.py sends them):
        the ids of the pipelines started, and the errors of those that did not."""
        from services.client import ManagerClient

        def init(_: int) -> tuple[str | None, str | None]:
            try:
                reply = ManagerClient("127.0.0.1", self.stack.port).request(payload, timeout=150)
            except Exception as exc:
                return None, f"{type(exc).__name__}: {exc}"
            if reply["response"]["status"] != "success":
                return None, str(reply["response"])[:300]
            return str(reply["pipeline_id"]), None

        with ThreadPoolExecutor(max_workers=min(count, 16)) as pool:
            replies = list(pool.map(init, range(count)))
        return [pid for pid, _ in replies if pid], [error for _, error in replies if error]

    def sample(self, pipeline_ids: list[str], meter: CpuMeter) -> Sample:
        stats, cpu = self.stats(), meter.read()
        pipe = self.client.pipeline(transaction=False)
        for pipeline_id in pipeline_ids:
            pipe.xinfo_stream(keys.results_stream(pipeline_id))
            pipe.hget(keys.pipeline_record(pipeline_id), "state")
        before = time.time()
        replies = pipe.execute(raise_on_error=False)
        at = (before + time.time()) / 2
        counts = [int(info[self.counter]) if isinstance(info, dict) else 0 for info in replies[0::2]]
        states = [state.decode() if isinstance(state, bytes) else str(state) for state in replies[1::2]]
        return Sample(at, counts, states, stats, cpu)

    def finish(self, pipeline_ids: list[str]) -> int:
        """Terminates the pipelines, drops their results, waits for every slot to be free; sink drops in all."""
        from services.client import ManagerClient

        def terminate(pipeline_id: str) -> None:
            with contextlib.suppress(Exception):  # one that is gone already: the slots wait below tells
                ManagerClient("127.0.0.1", self.stack.port).request({"type": "terminate", "pipeline_id": pipeline_id},
                                                                   timeout=60)

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(terminate, pipeline_ids))
        dropped = sum(int(self.client.get(keys.results_dropped(pid)) or 0) for pid in pipeline_ids)
        for pipeline_id in pipeline_ids:
            self.client.delete(keys.results_stream(pipeline_id))
        deadline = time.monotonic() + 60
        while (self.stack.registration(f"{self.NAME}@test") or {}).get("free_slots") != self.concurrency:
            if time.monotonic() > deadline:
                self.log("not every slot was free 60 s after TERMINATE; going on")
                break
            time.sleep(0.2)
        return dropped

    def run(self, count: int, video: Path, frames: int, baseline_mib: float | None) -> dict[str, Any]:
        """``count`` pipelines on ``video``; the window in which all of them run."""
        assert self.service is not None
        started = time.monotonic()
        pipeline_ids, errors = self.init_many(self.payload(video, frames), count)
        try:
            if errors:
                raise RuntimeError(f"{len(errors)} of {count} INITs failed; the first: {errors[0]}")
            deadline, meter = time.monotonic() + 120, self.meter()
            while min(self.sample(pipeline_ids, meter).counts) == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not every pipeline wrote a result within 120 s of INIT ({count} streams)")
                time.sleep(0.1)
            ramp = time.monotonic() - started
            time.sleep(self.plan.warmup)
            return self._window(pipeline_ids, ramp, baseline_mib)
        finally:
            dropped = self.finish(pipeline_ids)
            if dropped:
                self.log(f"{count} streams: {dropped} result rounds dropped by the sinks")

    def _window(self, pipeline_ids: list[str], ramp: float, baseline_mib: float | None) -> dict[str, Any]:
        assert self.service is not None
        gpu = self.plan.device != "cpu"
        meter = self.meter()
        samples, ended, utilisation, used = [self.sample(pipeline_ids, meter)], False, [], []
        while samples[-1].at - samples[0].at < self.plan.seconds:
            time.sleep(1.0)
            sample = self.sample(pipeline_ids, meter)
            if any(state in FINAL_STATES for state in sample.states):
                ended = True  # a file ended (or a pipeline failed): the window ends at the previous sample
                break
            samples.append(sample)
            if gpu and len(samples) % 2 == 0 and (reading := gpu_sample()) is not None:
                utilisation.append(reading["util"])
                used.append(reading["used_mib"])
        memory, method = gpu_memory({self.service.pid}, baseline_mib) if gpu else (None, "n/a")
        first, last = samples[0], samples[-1]
        span = last.at - first.at
        if span <= 0:
            raise RuntimeError("a pipeline ended before the window began: raise --loops")
        rates = [(end - begin) / span for begin, end in zip(first.counts, last.counts, strict=True)]
        cores = CpuMeter.cores(first.cpu, last.cpu)
        sizes = Counter({int(size): count for size, count in last.stats["batch_sizes"].items()})
        sizes.subtract({int(size): count for size, count in first.stats["batch_sizes"].items()})
        sizes = +sizes
        batches = sum(sizes.values())
        served = sum(size * count for size, count in sizes.items())
        modal = max(sizes, key=lambda size: size * sizes[size]) if sizes else None
        readings = [value for value in utilisation if value is not None]
        return {
            "streams": len(pipeline_ids), "window_s": span, "cut_short": ended, "ramp_s": ramp,
            "aggregate_fps": sum(rates), "min_fps": min(rates), "max_fps": max(rates),
            "service_fps": served / span, "batches": batches, "mean_batch": served / batches if batches else None,
            "modal_batch": modal, "modal_share": modal * sizes[modal] / served if modal else None,
            "batch_sizes": {str(size): sizes[size] for size in sorted(sizes)},
            "cores": cores, "gpu_util": sum(readings) / len(readings) if readings else None,
            "gpu_memory_mib": memory, "gpu_memory_method": method,
            "device_used_max_mib": max((value for value in used if value is not None), default=None),
        }


# ------------------------------------------------------------------ the report


def _fps(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def _decimal(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def _ratio(aggregate: float, reference: dict[str, Any] | None) -> str:
    return "n/a" if reference is None else f"{aggregate / reference['fps']:.2f}x"


def render_streams(plan: StreamsPlan, found: dict[str, Any]) -> str:
    model, runs, runners = found.get("model"), found.get("runs", []), found.get("runners")
    cores = os.cpu_count() or 1
    pacing = f"max_fps {plan.max_fps:g} (files are paced, every frame)" if plan.max_fps else "every frame, unpaced"
    lines = [
        "## GPU: many streams through the inference service", "", stamp(), "",
        f"Device `{plan.device}`; host {platform.node()}, {cores} cores. `python -m tests.benchmarks.gpu "
        f"{' '.join(sys.argv[1:])}` (window {plan.seconds:g} s after {plan.warmup:g} s of warm-up).", "",
        f"The model alone: `session.run` on pre-processed vtest.avi frames through the runner the service loads "
        f"(`load_runner`, {found.get('threads')} intra-op thread(s), 0 = onnxruntime's default), with 1 caller "
        f"and with as many callers as the service has runners ({runners}) on the one session; the best of the "
        f"two is the reference.",
    ]
    if model is not None:
        lines += [f"Providers: {model['providers']}. GPU memory of the model-alone process after its largest batch: "
                  f"{_mib(model['gpu_memory_mib'])}.", ""]
        if model["refused"]:
            lines += [f"Batch sizes the model refused (fixed batch dimension?): {model['refused']}.", ""]
        callers = sorted({cell["parallel"] for cell in model["cells"]})
        header = " | ".join(f"{count} caller(s) fps" for count in callers)
        lines += [f"| batch | {header} | ms per call (1 caller) |", "|---|" + "---|" * (len(callers) + 1)]
        for batch in sorted({cell["batch"] for cell in model["cells"]}):
            row = {cell["parallel"]: cell for cell in model["cells"] if cell["batch"] == batch}
            single = _decimal(row[callers[0]]["call_ms"], 2) if callers[0] in row else "n/a"
            lines.append(f"| {batch} | " + " | ".join(_fps(row[c]["fps"]) if c in row else "n/a" for c in callers)
                         + f" | {single} |")
    lines += [
        "", f"The whole stack: redis-server, the manager, one Celery worker `WORKER_DEVICE={plan.device}` on "
        f"`pipelines.{plan.device}` with {max(plan.counts)} prefork slots, `WORKER_INFERENCE_SERVICE=true`, "
        f"`WORKER_INFERENCE_MAX_BATCH={plan.max_batch}`, runners {runners}, "
        f"`WORKER_INFERENCE_IN_FLIGHT={plan.in_flight}` (0 = runners + 1). N pipelines INIT over TCP at once, "
        f"each on {found.get('video_note', 'vtest.avi')}, {pacing}, detection workflow, memory sink. Results "
        f"are counted in Redis (each stream's XINFO `entries-added`, one entry per frame here) every second over "
        f"the window in which all N run, with the service's batch sizes (its `stats`) and the CPU time. "
        f"Counts run in increasing order on one worker, so the GPU memory at N includes the service's onnxruntime "
        f"arena grown by the smaller counts before it (it never shrinks).", "",
        f"| streams | aggregate fps | per pipeline min-max | service fps | batch used most (share of frames) "
        f"| mean batch | model alone at that batch | ratio | model alone at {plan.max_batch} | ratio "
        f"| cores: pipelines / service / redis+manager / host of {cores} | GPU util | GPU memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if "error" in run:
            lines.append(f"| {run['streams']} | failed: {run['error']} |" + " |" * 11)
            continue
        modal = run["modal_batch"]
        at_modal = _best(model, modal) if model and modal else None
        at_max = _best(model, plan.max_batch) if model else None
        c = run["cores"]
        lines.append(
            f"| {run['streams']} | {_fps(run['aggregate_fps'])}{' (cut short)' if run['cut_short'] else ''} | "
            f"{_fps(run['min_fps'])}-{_fps(run['max_fps'])} | {_fps(run['service_fps'])} | "
            f"{modal} ({(run['modal_share'] or 0) * 100:.0f}%) | "
            f"{_decimal(run['mean_batch'])} | "
            f"{_fps(at_modal['fps'] if at_modal else None)} | {_ratio(run['aggregate_fps'], at_modal)} | "
            f"{_fps(at_max['fps'] if at_max else None)} | {_ratio(run['aggregate_fps'], at_max)} | "
            f"{c['pipelines']:.1f} / {c['service']:.1f} / {c['redis'] + c['manager']:.1f} / {c['host']:.1f} | "
            f"{_percent(run['gpu_util'])} | "
            f"{_mib(run['gpu_memory_mib'])} |")
    done = [run for run in runs if "error" not in run]
    if done and model:
        lines += [""]
        for run in done:
            at_modal = _best(model, run["modal_batch"]) if run["modal_batch"] else None
            if at_modal is None:
                continue
            ratio = run["aggregate_fps"] / at_modal["fps"]
            busy = run["cores"]["host"] / cores
            bound = ("the host's CPU was busy" if busy >= 0.9 else "the GPU was busy" if (run["gpu_util"] or 0) >= 90
                     else "neither the CPU nor the GPU was saturated")
            lines.append(f"- {run['streams']} stream(s): {ratio:.2f}x the model alone at batch {run['modal_batch']} "
                         f"(goal >= {GOAL_RATIO}: {'met' if ratio >= GOAL_RATIO else 'not met'}); host CPU "
                         f"{busy * 100:.0f}% busy, so {bound}; batches: {_histogram(run['batch_sizes'])}.")
        if plan.device == "cpu":
            lines.append("- GPU memory: n/a (device cpu).")
        else:
            lines.append(f"- GPU memory ({done[0]['gpu_memory_method']}): {_mib(done[0]['gpu_memory_mib'])} with "
                         f"{done[0]['streams']} stream(s), {_mib(done[-1]['gpu_memory_mib'])} with "
                         f"{done[-1]['streams']}; device memory used at most {_mib(done[-1]['device_used_max_mib'])} "
                         f"during the last window (before the stack: {_mib(found.get('baseline_mib'))}; the service "
                         f"with its model loaded, before any stream: {_mib(found.get('idle_gpu_memory', [None])[0])}).")
        cut = [str(run["streams"]) for run in done if run["cut_short"]]
        if cut:
            lines.append(f"- A file ended inside the window with {', '.join(cut)} stream(s): the window was cut to the "
                         "last sample at which every pipeline ran (rates stay right, the window is shorter; raise "
                         "--loops).")
    return "\n".join(lines)


def _histogram(sizes: dict[str, int], top: int = 6) -> str:
    ordered = sorted(sizes.items(), key=lambda item: int(item[0]) * item[1], reverse=True)[:top]
    return ", ".join(f"{count}x{size}" for size, count in ordered) + (" ..." if len(sizes) > top else "")


# ------------------------------------------------------------------ --streams: the run


def _model_child(device: str, batches: list[int], callers: list[int], threads: int, seconds: float) -> dict[str, Any]:
    request = {"device": device, "batches": batches, "parallel": callers, "threads": threads, "seconds": seconds}
    return run_child("tests.benchmarks.gpu", [json.dumps(request)], timeout=900)


def _summary(run: dict[str, Any]) -> str:
    if "error" in run:
        return f"{run['streams']} streams: failed: {run['error']}"
    cores = run["cores"]
    return (f"{run['streams']} streams: {run['aggregate_fps']:.1f} fps over {run['window_s']:.1f} s "
            f"(service {run['service_fps']:.1f} fps, batch used most {run['modal_batch']}, mean "
            f"{_decimal(run['mean_batch'])}); cores: pipelines {cores['pipelines']:.1f}, service "
            f"{cores['service']:.1f}, host {cores['host']:.1f}; GPU memory {_mib(run['gpu_memory_mib'])}")


def run_streams(plan: StreamsPlan, output: Path, json_path: Path | None, log: Log) -> str:
    """The model alone (a child process), then the stack with 1..N pipelines; the section after each step."""
    if shutil.which("redis-server") is None:  # checked first: the device time the model alone takes is not wasted
        raise SystemExit("--streams runs the whole stack: redis-server must be on PATH (tools/embedded_redis.py)")
    if plan.loops != 1 and importlib.util.find_spec("av") is None:
        raise SystemExit("--streams builds its looped input with PyAV (av, a worker dependency); or pass --loops 1")
    from tests.support.redis_server import running_redis
    from tests.support.stack import running_stack

    runners, threads = plan.service_sizing()
    found: dict[str, Any] = {"runners": runners, "threads": threads, "runs": []}

    def publish() -> str:  # after every step: a run stopped at its time limit still leaves its figures
        markdown = render_streams(plan, found)
        write_section(output, SECTION, markdown)
        if json_path is not None:
            json_path.write_text(json.dumps({"plan": dataclasses.asdict(plan), **found}, indent=1, default=str))
        return markdown

    began = time.monotonic()
    callers = sorted({1, runners})
    found["model"] = _model_child(plan.device, plan.batches, callers, threads, plan.model_seconds)
    log(f"model alone measured in {time.monotonic() - began:.0f} s: " + ", ".join(
        f"batch {cell['batch']} x{cell['parallel']} {cell['fps']:.1f} fps" for cell in found["model"]["cells"]))
    publish()
    loops = plan.auto_loops(max((cell["fps"] for cell in found["model"]["cells"]), default=ASSUMED_PIPELINE_FPS))
    video, frames = looped_video(loops)
    found["video_note"] = f"vtest.avi {loops} times over ({frames} frames, its packets copied)"
    baseline = gpu_sample() if plan.device != "cpu" else None
    found["baseline_mib"] = baseline["used_mib"] if baseline else None
    with running_redis() as server, running_stack(server.url, devices=plan.device) as stack:
        stack.start_manager(MANAGER_DEFAULT_DEVICE=plan.device, MANAGER_INIT_TIMEOUT="120")
        assert server.process is not None
        bench = StreamsBench(stack, server.process.pid, plan, log)
        bench.start()
        if plan.device != "cpu" and bench.service is not None:
            found["idle_gpu_memory"] = gpu_memory({bench.service.pid}, found["baseline_mib"])
        for count in sorted(plan.counts):
            try:
                run = bench.run(count, video, frames, found["baseline_mib"])
            except Exception as exc:  # the other counts still run; the worker's log says why
                worker_log = stack.log_dir / f"worker-{StreamsBench.NAME}.log"
                tail = worker_log.read_text(errors="replace")[-3000:] if worker_log.exists() else ""
                log(f"{count} streams failed: {type(exc).__name__}: {exc}\n{tail}")
                run = {"streams": count, "error": f"{type(exc).__name__}: {exc}"[:300]}
            found["runs"].append(run)
            log(f"[{time.monotonic() - began:.0f} s] {_summary(run)}")
            publish()
    measured = {cell["batch"] for cell in found["model"]["cells"]} | {int(b) for b in found["model"]["refused"]}
    missing = sorted({run["modal_batch"] for run in found["runs"] if run.get("modal_batch")} - measured)
    if missing:  # the batch sizes the service used most, measured alone too (the GPU is free again)
        extra = _model_child(plan.device, missing, callers, threads, plan.model_seconds)
        found["model"]["cells"] += extra["cells"]
        found["model"]["refused"].update(extra["refused"])
    log(f"done in {time.monotonic() - began:.0f} s")
    return publish()


def _counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return sorted(set(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, help="the report (plain text; --streams: the gpu-streams section)")
    parser.add_argument("--stack", action="store_true", help="also run the whole stack with a GPU worker")
    streams = parser.add_argument_group("--streams: N pipelines through one worker's inference service")
    streams.add_argument("--streams", type=_counts, help="pipeline counts, e.g. 1,16,64 (runs this mode only)")
    streams.add_argument("--device", choices=("cpu", "gpu", "jetson"), default="gpu")
    streams.add_argument("--seconds", type=float, default=20.0, help="measurement window per count")
    streams.add_argument("--warmup", type=float, default=3.0, help="seconds after every pipeline's first result")
    streams.add_argument("--max-batch", type=int, default=64, help="WORKER_INFERENCE_MAX_BATCH (1-64)")
    streams.add_argument("--runners", type=int, default=0, help="WORKER_INFERENCE_RUNNERS (0: 2 on accelerators)")
    streams.add_argument("--in-flight", type=int, default=0, help="WORKER_INFERENCE_IN_FLIGHT (0: runners + 1)")
    streams.add_argument("--threads", type=int, default=0, help="WORKER_INTRA_OP_THREADS of the service and the "
                                                                "model alone (0: onnxruntime's default)")
    streams.add_argument("--max-fps", type=float, default=None, help="pace every pipeline's file (default: unpaced)")
    streams.add_argument("--loops", type=int, default=0, help="vtest.avi copies in the input file (0: enough for "
                                                              "the window, see StreamsPlan.auto_loops)")
    streams.add_argument("--batches", type=_counts, default=list(MODEL_BATCHES), help="model-alone batch sizes")
    streams.add_argument("--model-seconds", type=float, default=3.0, help="per model-alone batch size and caller count")
    streams.add_argument("--json", type=Path, default=None, help="also write every figure as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_model(**json.loads(args.child))))
        return
    if args.output is None:
        parser.error("--output is required")
    if args.streams:
        if not 1 <= args.max_batch <= 64:
            parser.error("--max-batch must be within 1-64 (WORKER_INFERENCE_MAX_BATCH)")
        if args.seconds <= 0 or args.warmup < 0 or args.model_seconds <= 0 or min(args.runners, args.in_flight,
                                                                                   args.threads, args.loops) < 0:
            parser.error("--seconds and --model-seconds must be > 0; --warmup, --runners, --in-flight, --threads "
                         "and --loops >= 0")
        if args.max_fps is not None and args.max_fps <= 0:
            parser.error("--max-fps must be > 0")
        plan = StreamsPlan(args.device, args.streams, args.seconds, args.warmup, args.max_batch, args.runners,
                           args.in_flight, args.threads, args.max_fps, args.loops, args.batches, args.model_seconds)
        print(run_streams(plan, args.output, args.json, lambda text: print(text, file=sys.stderr, flush=True)))
        return
    run_devices(args.output, args.stack)


def run_devices(output: Path, stack: bool) -> None:
    """The default mode: providers, agreement, session.run CPU vs GPU, the engine (and the stack) on the GPU."""
    import onnxruntime as ort

    from services.worker.detection.detector import select_providers

    available = ort.get_available_providers()
    cpu, gpu = _detector("cpu"), _detector("gpu")
    frames = _frames()
    tensors = [cpu.preprocess(frame)[0] for frame in frames]
    agreement = _agreement(cpu, gpu, frames[:200])
    cpu_fps, gpu_fps = _model_fps(cpu, tensors), _model_fps(gpu, tensors)
    engine = {workers: _engine_fps(workers) for workers in (1, 2)}
    lines = [
        f"{stamp()}; host: {platform.node()}, {os.cpu_count()} cores; onnxruntime {ort.__version__}; "
        f"available providers: {', '.join(available)}.",
        "",
        f"- `device=gpu` selects {select_providers('gpu', available)}; the session runs with "
        f"{gpu.providers[:2]}.",
        f"- Agreement on the first {agreement['frames']} frames: {agreement['cpu_detections']} detections on the "
        f"CPU, {agreement['gpu_detections']} on the GPU, {agreement['frames_with_different_classes']} frames "
        f"whose classes differ; IoU of matched boxes: min {agreement['min_iou']:.4f}, "
        f"mean {agreement['mean_iou']:.5f}.",
        "",
        "| run | frames | fps |",
        "|---|---|---|",
        f"| session.run alone, CPU ({os.cpu_count()} cores) | {len(tensors)} | {cpu_fps:.1f} |",
        f"| session.run alone, GPU (CUDA provider) | {len(tensors)} | {gpu_fps:.1f} |",
    ]
    for workers, (count, fps) in engine.items():
        lines.append(f"| engine on the file, device=gpu, {workers} inference worker(s), no sink | {count} "
                     f"| {fps:.1f} |")
    if stack:
        lines += ["", *_stack_run()]
    text = "\n".join(lines) + "\n"
    output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
