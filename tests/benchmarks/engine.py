"""Inference-engine throughput: the model alone vs a sequential loop vs the engine, on the same frames.

Each measurement runs in its own subprocess (clean peak RSS, no shared warm state):

- ``model``: ``session.run`` alone on pre-decoded, pre-processed frames (the ceiling);
- ``sequential``: a plain loop decode -> pre-process -> infer -> post-process;
- ``engine``: this project's pipeline on the file (WAIT/LAZY, every frame) with the Redis Stream sink;
- ``4 x engine``: four engine processes at once (threads sized to cores / 4);
- ``soak``: the engine on a looped live HTTP stream, RSS sampled over time.

Usage: ``python -m tests.benchmarks.engine [--output docs/benchmarks.md] [--soak-seconds 600]``
"""

import argparse
import json
import os
import resource
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


def measure_engine(threads: int, redis_url: str, reference: str | None = None,
                   seconds: float | None = None) -> dict[str, Any]:
    import redis

    from services.core import keys
    from services.worker.engine.pipeline import InferencePipeline, PipelineConfig
    from services.worker.engine.sinks.redis_stream import RedisStreamSink

    detector = _detector(threads)
    detector.infer(detector.preprocess(_decode_all(1)[0])[0])  # warm-up, as a worker would at start
    client = redis.Redis.from_url(redis_url)
    pipeline_id = f"bench-{os.getpid()}"
    sink = RedisStreamSink(client, pipeline_id, maxlen=1000)
    config = PipelineConfig(video_references=(reference or str(VIDEO),))
    pipeline = InferencePipeline(config, detector, [sink])
    rss: list[tuple[float, float]] = []
    started = time.perf_counter()
    pipeline.start()
    while not pipeline.wait(timeout=10.0 if seconds else 1.0):
        elapsed = time.perf_counter() - started
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
            "state": pipeline.state.value}


def _child(args: argparse.Namespace) -> None:
    cpu_before = psutil.Process().cpu_times()
    if args.mode == "model":
        result = measure_model(args.threads)
    elif args.mode == "sequential":
        result = measure_sequential(args.threads)
    else:
        result = measure_engine(args.threads, args.redis_url, args.reference, args.seconds)
    cpu_after = psutil.Process().cpu_times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    result["cpu_percent"] = 100 * cpu / result["seconds"]
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["fps"] = result["frames"] / result["seconds"]
    print(json.dumps(result))


# ------------------------------------------------------------------ orchestration (parent)


def _spawn(mode: str, threads: int, redis_url: str = "", reference: str | None = None,
           seconds: float | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.benchmarks.engine", "--child", mode, "--threads", str(threads),
               "--redis-url", redis_url]
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


def _row(name: str, result: dict[str, Any], ceiling: float) -> str:
    return (f"| {name} | {result['frames']} | {result['fps']:.1f} | {result['fps'] / ceiling:.3f} | "
            f"{result['cpu_percent']:.0f} | {result['peak_rss_mib']:.0f} |")


def run_all(soak_seconds: float, log: Callable[[str], None]) -> str:
    from tests.support.redis_server import running_redis
    from tests.support.streams import http_live_stream

    cores = os.cpu_count() or 1
    lines = [
        "## Inference engine (issue 2)", "", stamp(), "",
        f"Model `{MODEL_ID}` (YOLOv3-tiny, 416x416, onnxruntime CPU), video `{VIDEO}` (768x576, 795 frames).",
        "Every frame processed (WAIT/LAZY, no max_fps). Ratio = fps / model-alone fps at the same threads.", "",
        "| run | frames | fps | ratio | CPU % | peak RSS MiB |", "|---|---|---|---|---|---|",
    ]
    with running_redis() as server:
        log("model alone ...")
        model = _result(_spawn("model", cores))
        log(f"  {model['fps']:.1f} fps")
        log("sequential loop ...")
        sequential = _result(_spawn("sequential", cores))
        log(f"  {sequential['fps']:.1f} fps")
        log("engine ...")
        engine = _result(_spawn("engine", cores, server.url))
        log(f"  {engine['fps']:.1f} fps")
        for name, result in (("(a) model alone (session.run)", model), ("(b) sequential loop", sequential),
                             ("(c) engine + Redis Stream sink", engine)):
            lines.append(_row(name, result, model["fps"]))
        per = max(1, cores // 4)
        log(f"4 engines at once, {per} thread(s) each ...")
        started = time.perf_counter()
        children = [_spawn("engine", per, server.url) for _ in range(4)]
        four = [_result(child) for child in children]
        wall = time.perf_counter() - started
        aggregate = sum(r["frames"] for r in four) / max(r["seconds"] for r in four)
        log(f"  aggregate {aggregate:.1f} fps")
        lines += [
            "", f"Four engine processes at once, {per} onnxruntime thread(s) each "
            f"(the sizing rule: cores / pipelines):", "",
            "| pipelines | frames each | aggregate fps | ratio to (a) | wall s | peak RSS MiB each |",
            "|---|---|---|---|---|---|",
            f"| 4 | {four[0]['frames']} | {aggregate:.1f} | {aggregate / model['fps']:.3f} | {wall:.1f} | "
            f"{max(r['peak_rss_mib'] for r in four):.0f} |",
        ]
        if soak_seconds > 0:
            log(f"soak on a looped live stream for {soak_seconds:.0f} s ...")
            with http_live_stream(VIDEO) as url:
                soak = _result(_spawn("engine", cores, server.url, reference=url, seconds=soak_seconds))
            lines += _soak_lines(soak)
    return "\n".join(lines)


def _soak_lines(soak: dict[str, Any]) -> list[str]:
    samples = soak["rss_samples"]
    warm = [rss for t, rss in samples if t >= 30] or [rss for _, rss in samples]
    lines = [
        "", f"Soak: live HTTP stream (ffmpeg, vtest.avi looped at 10 fps) for {soak['seconds']:.0f} s, "
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
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--reference", default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    if args.mode:
        _child(args)
        return
    markdown = run_all(args.soak_seconds, lambda text: print(text, file=sys.stderr, flush=True))
    write_section(args.output, "engine", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
