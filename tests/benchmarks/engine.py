"""Inference-engine throughput: the model alone vs a sequential loop vs the engine, on the same frames.

Each measurement runs in its own subprocess (clean peak RSS, no shared warm state):

- ``model``: ``session.run`` alone on pre-decoded, pre-processed frames (the ceiling);
- ``sequential``: a plain loop decode -> pre-process -> infer -> post-process;
- ``engine``: this project's pipeline on the file (WAIT/LAZY, every frame) with the Redis Stream sink,
  with the default sizing (one single-threaded inference worker per core) and with one
  multi-threaded run for comparison;
- ``4 x engine``: four engine processes at once;
- ``soak``: the engine on a looped live HTTP stream, RSS sampled over time.

Usage: ``python -m tests.benchmarks.engine [--output docs/benchmarks.md] [--rounds 3] [--soak-seconds 600]``
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.benchmarks.report import stamp, write_section

VIDEO = Path("data/media/vtest.avi")
MODEL_ID = "yolov3-tiny/coco-416"
REPOSITORY = Path("data/models")


# ------------------------------------------------------------------ measurements (run in children)


def _detector(threads: int) -> Any:
    from services.worker.detection.detector import Detector
    from services.worker.models.repository import ModelRepository

    return Detector(ModelRepository(REPOSITORY).resolve(MODEL_ID), intra_op_threads=threads)


def _decode_all(limit: int | None = None) -> list[Any]:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def measure_model(threads: int) -> dict[str, Any]:
    detector = _detector(threads)
    tensors = [detector.preprocess(frame)[0] for frame in _decode_all()]
    detector.infer(tensors[0])  # warm-up
    started = time.perf_counter()
    for tensor in tensors:
        detector.infer(tensor)
    return {"frames": len(tensors), "seconds": time.perf_counter() - started}


def measure_sequential(threads: int) -> dict[str, Any]:
    import cv2

    from services.worker.detection.detector import DetectionParams
    from services.worker.detection.predictions import to_prediction

    detector = _detector(threads)
    params = DetectionParams()
    detector.infer(detector.preprocess(_decode_all(1)[0])[0])  # warm-up
    capture = cv2.VideoCapture(str(VIDEO))
    frames = 0
    started = time.perf_counter()
    while True:
        ok, image = capture.read()
        if not ok:
            break
        tensor, transform = detector.preprocess(image)
        detections = detector.postprocess(detector.infer(tensor)[0], transform, params)
        to_prediction(detections, detector.class_names, image.shape[1], image.shape[0])
        frames += 1
    capture.release()
    return {"frames": frames, "seconds": time.perf_counter() - started}


def measure_engine(workers: int, threads: int, redis_url: str, reference: str | None = None,
                   seconds: float | None = None) -> dict[str, Any]:
    import redis

    from services.core import keys
    from services.worker.detection.processor import DetectionProcessor
    from services.worker.engine.pipeline import InferencePipeline, PipelineConfig
    from services.worker.engine.sinks.redis_stream import RedisStreamSink

    detector = _detector(threads)
    detector.infer(detector.preprocess(_decode_all(1)[0])[0])  # warm-up, as a worker would at start
    client = redis.Redis.from_url(redis_url)
    pipeline_id = f"bench-{os.getpid()}"
    sink = RedisStreamSink(client, pipeline_id, maxlen=1000)
    config = PipelineConfig(video_references=(reference or str(VIDEO),), inference_workers=workers)
    pipeline = InferencePipeline(config, DetectionProcessor(detector), [sink])
    rss: list[tuple[float, float]] = []
    progress: list[tuple[float, int]] = []  # (wall clock, frames processed), to find a steady window
    started = time.perf_counter()
    pipeline.start()
    while not pipeline.wait(timeout=0.5):
        elapsed = time.perf_counter() - started
        progress.append((time.time(), pipeline.watchdog.frames_processed))
        if not rss or elapsed - rss[-1][0] >= (10.0 if seconds else 1.0):
            rss.append((elapsed, psutil.Process().memory_info().rss / 2**20))
        if seconds is not None and elapsed >= seconds:
            pipeline.terminate()
            break
    elapsed = time.perf_counter() - started
    frames = pipeline.watchdog.frames_processed
    stream_length = client.xlen(keys.results_stream(pipeline_id))
    client.delete(keys.results_stream(pipeline_id))
    client.close()
    return {"frames": frames, "seconds": elapsed, "rss_samples": rss, "stream_entries": stream_length,
            "state": pipeline.state.value, "progress": progress}


def _child(args: argparse.Namespace) -> None:
    cpu_before = psutil.Process().cpu_times()
    if args.mode == "model":
        result = measure_model(args.threads)
    elif args.mode == "sequential":
        result = measure_sequential(args.threads)
    else:
        result = measure_engine(args.workers, args.threads, args.redis_url, args.reference, args.seconds)
    cpu_after = psutil.Process().cpu_times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    result["cpu_percent"] = 100 * cpu / result["seconds"]
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["fps"] = result["frames"] / result["seconds"]
    print(json.dumps(result))


# ------------------------------------------------------------------ orchestration (parent)


def _spawn(mode: str, threads: int, workers: int = 1, redis_url: str = "", reference: str | None = None,
           seconds: float | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.benchmarks.engine", "--child", mode, "--threads", str(threads),
               "--workers", str(workers), "--redis-url", redis_url]
    if reference:
        command += ["--reference", reference]
    if seconds:
        command += ["--seconds", str(seconds)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child failed with exit code {process.returncode}")
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda run: run["fps"])[len(runs) // 2]


def run_single(rounds: int, redis_url: str, log: Callable[[str], None]) -> list[str]:
    """Interleaved rounds of every variant (this machine's speed drifts by several % over minutes)."""
    cores = os.cpu_count() or 1
    variants = {
        "(a) model alone (session.run)": ("model", cores, 1),
        "(b) sequential loop": ("sequential", cores, 1),
        f"(c) engine, {cores} workers x 1 thread (default)": ("engine", 1, cores),
        f"(c') engine, 1 worker x {cores} threads": ("engine", cores, 1),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for index in range(rounds):
        for name, (mode, threads, workers) in variants.items():
            runs[name].append(_result(_spawn(mode, threads, workers, redis_url)))
            log(f"round {index + 1}: {name}: {runs[name][-1]['fps']:.1f} fps")
    ceiling = statistics.median(run["fps"] for run in runs["(a) model alone (session.run)"])
    lines = ["| run | frames | fps (median) | fps per round | ratio to (a) | CPU % | peak RSS MiB |",
             "|---|---|---|---|---|---|---|"]
    for name, results in runs.items():
        median = statistics.median(run["fps"] for run in results)
        typical = _median_run(results)
        per_round = ", ".join(f"{run['fps']:.1f}" for run in results)
        lines.append(f"| {name} | {typical['frames']} | {median:.1f} | {per_round} | {median / ceiling:.3f} | "
                     f"{typical['cpu_percent']:.0f} | {typical['peak_rss_mib']:.0f} |")
    return lines


def _steady_aggregate(runs: list[dict[str, Any]]) -> tuple[float, float]:
    """(fps summed over the pipelines, window seconds) while ALL of them were running.

    Counting from the first start to the last end would include the ramp-up and the tail where
    fewer pipelines (so fewer busy cores) remain; live pipelines never have that tail.
    """
    begin = max(run["progress"][0][0] for run in runs)
    end = min(run["progress"][-1][0] for run in runs)
    total = 0.0
    for run in runs:
        inside = [(t, frames) for t, frames in run["progress"] if begin <= t <= end]
        total += (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
    return total, end - begin


def run_four(redis_url: str, log: Callable[[str], None]) -> str:
    cores = os.cpu_count() or 1
    ceiling_runs = [_result(_spawn("model", cores))]
    rows = []
    for workers, threads in ((1, 1), (1, cores)):
        four = [_result(child) for child in [_spawn("engine", threads, workers, redis_url) for _ in range(4)]]
        aggregate, window = _steady_aggregate(four)
        log(f"4 engines ({workers} worker x {threads} threads): steady aggregate {aggregate:.1f} fps")
        rows.append((workers, threads, four, aggregate, window))
    ceiling_runs.append(_result(_spawn("model", cores)))
    ceiling = statistics.mean(run["fps"] for run in ceiling_runs)
    measured = ", ".join(f"{run['fps']:.1f}" for run in ceiling_runs)
    lines = [
        "## Four pipelines at once", "", stamp(), "",
        "Four engine processes on vtest.avi at once (as four Celery tasks on one host would be). Aggregate",
        "= the sum of their frame rates over the window in which all four were running; ratio to the",
        f"model alone at {cores} threads, measured before and after ({measured} fps, mean {ceiling:.1f}).", "",
        "| each pipeline | steady window s | aggregate fps | ratio to model alone | peak RSS MiB each |",
        "|---|---|---|---|---|",
    ]
    for workers, threads, four, aggregate, window in rows:
        default = " (default sizing)" if threads == 1 else ""
        lines.append(f"| {workers} worker x {threads} thread(s){default} | {window:.0f} | {aggregate:.1f} | "
                     f"{aggregate / ceiling:.3f} | {max(r['peak_rss_mib'] for r in four):.0f} |")
    return "\n".join(lines)


def run_all(parts: set[str], rounds: int, soak_seconds: float, output: Path, log: Callable[[str], None]) -> None:
    from tests.support.redis_server import running_redis
    from tests.support.streams import http_live_stream

    cores = os.cpu_count() or 1
    with running_redis() as server:
        if "single" in parts:
            lines = [
                "## Inference engine", "", stamp(), "",
                f"Model `{MODEL_ID}` (YOLOv3-tiny, 416x416, onnxruntime CPU), video `{VIDEO}` (768x576, 795 frames).",
                "Every frame processed (WAIT/LAZY, no max_fps); (c) also writes every result to a Redis Stream.",
                f"Each variant ran {rounds} times, interleaved, each in a fresh process; ratio = median fps / "
                f"median of (a) with onnxruntime at {cores} intra-op threads. Workers = rounds in `session.run` "
                "at once. (a) keeps all 795 pre-processed tensors in memory, hence its RSS.", "",
            ]
            lines += run_single(rounds, server.url, log)
            write_section(output, "engine", "\n".join(lines))
        if "four" in parts:
            write_section(output, "engine-four", run_four(server.url, log))
        if "soak" in parts and soak_seconds > 0:
            log(f"soak on a looped live stream for {soak_seconds:.0f} s ...")
            with http_live_stream(VIDEO) as url:
                soak = _result(_spawn("engine", 1, cores, server.url, reference=url, seconds=soak_seconds))
            write_section(output, "engine-soak", "\n".join(["## Memory over a long live run", "", stamp(),
                                                              *_soak_lines(soak)]))


def _soak_lines(soak: dict[str, Any]) -> list[str]:
    samples = soak["rss_samples"]
    warm = [rss for t, rss in samples if t >= 30] or [rss for _, rss in samples]
    lines = [
        "", f"The engine on a live HTTP stream (ffmpeg, vtest.avi looped at 10 fps) for {soak['seconds']:.0f} s, "
        f"{soak['frames']} frames, DROP_OLDEST/EAGER. RSS after warm-up (30 s): "
        f"first {warm[0]:.0f} MiB, last {warm[-1]:.0f} MiB, max {max(warm):.0f} MiB.", "",
        "| t (s) | RSS MiB |", "|---|---|",
    ]
    step = max(1, len(samples) // 10)
    lines += [f"| {t:.0f} | {rss:.1f} |" for t, rss in samples[::step]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--child", dest="mode", choices=["model", "sequential", "engine"])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="single,four,soak", help="comma-separated: single, four, soak")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--reference", default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    if args.mode:
        _child(args)
        return
    run_all(set(args.parts.split(",")), args.rounds, args.soak_seconds, args.output,
            lambda text: print(text, file=sys.stderr, flush=True))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
