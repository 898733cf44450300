"""Decode cost vs max_fps: the pipeline's CPU on a live 1080p stream at max_fps 30 and at max_fps 1.

A 1080p H.264 clip (vtest.avi re-timed to 30 fps and scaled) is encoded once into a temp dir, then
served live for each run by ffmpeg (``-re -stream_loop -1 -c copy``, MPEG-TS over HTTP, one client),
so the load generator only demuxes and copies. Each run is a fresh child process with the real
pipeline (``InferencePipeline`` + ``DetectionProcessor``, the default model, the default sizing,
a Redis Stream sink); after its first processed frame and a warm-up it measures a fixed window:

- the pipeline process's CPU time per wall second, split by thread: decode (the ``source-0``
  thread, which grabs and retrieves, plus FFmpeg's ``av:*`` decoder threads), inference, the rest;
- frames grabbed, retrieved (grabbed minus those skipped for max_fps), decoded (by the video
  decoder: every grabbed frame with OpenCV, fewer on the PyAV path) and processed, and the decode
  path the source ended on (``SourceStats.decode_path``);
- the ffmpeg server's CPU, and every other process's (host busy time minus both), so a run that
  shared the machine shows it.

Each max_fps runs twice: as the engine reads the stream (PyAV, ``services/worker/engine/pyav_capture.py``:
at max_fps 1 the 1 s GOP lets it decode keyframes only; at 30 it decodes everything) and with OpenCV
as before (forced by setting ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` to OpenCV's default in the child, which
leaves every stream to OpenCV). Configurations run interleaved, ``--rounds`` times. Then the decode
paths on the same clip as a file (each in its own child): what OpenCV's ``grab`` alone costs compared
with ``read``, what PyAV decoding keyframes only costs, and the engine's PyAV reader paced at max_fps 1.

Usage: ``python -m tests.benchmarks.decode [--output docs/benchmarks.md] [--rounds 3] [--seconds 20]``
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

from tests.benchmarks.report import run_child, stamp, write_section

VIDEO = Path("data/media/vtest.avi")
MODEL_ID = "yolov3-tiny/coco-416"
REPOSITORY = Path("data/models")
# label -> (max_fps, OpenCV forced); the first is the reference of the goal.
CONFIGS: dict[str, tuple[float, bool]] = {
    "max_fps 30": (30.0, False),
    "max_fps 30, OpenCV": (30.0, True),
    "max_fps 1": (1.0, False),
    "max_fps 1, OpenCV": (1.0, True),
}
REFERENCE, NEW, OLD = "max_fps 30", "max_fps 1", "max_fps 1, OpenCV"
OPENCV_DEFAULT_OPTIONS = "rtsp_flags;prefer_tcp"  # what OpenCV sets when the variable is unset
GOAL = 0.25
GOP = 30
ENCODE = [  # a camera-like 1080p30 stream: H.264 Main, no B-frames, a keyframe every second
    "-r", "30", "-i", str(VIDEO), "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "veryfast",
    "-profile:v", "main", "-bf", "0", "-g", str(GOP), "-pix_fmt", "yuv420p", "-an",
]  # fmt: skip
TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ measurements (run in children)


def _thread_ticks(groups: dict[int, str]) -> dict[str, int]:
    """CPU ticks of this process's threads so far, summed by group (decode / inference / other)."""
    ticks = {"decode": 0, "inference": 0, "other": 0}
    for tid in os.listdir("/proc/self/task"):
        try:
            comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended in between
            continue
        group = "decode" if comm.startswith("av:") else groups.get(int(tid), "other")
        ticks[group] += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


def _host_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _snapshot(pipeline: Any, generator: psutil.Process) -> dict[str, Any]:
    import threading

    groups = {t.native_id: "decode" if t.name.startswith("source-") else "inference"
              for t in threading.enumerate() if t.name.startswith(("source-", "inference")) and t.native_id}
    process, server = os.times(), generator.cpu_times()
    stats = pipeline.sources[0].stats()
    return {"wall": time.perf_counter(), "cpu": process.user + process.system,
            "threads": _thread_ticks(groups), "generator": server.user + server.system, "host": _host_busy(),
            "processed": pipeline.watchdog.frames_processed, "grabbed": stats.frames_decoded,
            "skipped": stats.frames_dropped.get("max_fps", 0), "decoded": stats.decoder_frames,
            "path": stats.decode_path.value}


def measure_pipeline(url: str, max_fps: float, opencv: bool, generator_pid: int, warmup: float, seconds: float,
                     redis_url: str) -> dict[str, Any]:
    if opencv:  # read by capture.open_capture at each open: this child's stream goes to OpenCV
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = OPENCV_DEFAULT_OPTIONS
    import numpy as np
    import redis

    from services.core import keys
    from services.worker.detection.detector import Detector
    from services.worker.detection.processor import DetectionProcessor
    from services.worker.engine.pipeline import InferencePipeline, PipelineConfig
    from services.worker.engine.sinks.redis_stream import RedisStreamSink
    from services.worker.engine.source import SourceConfig
    from services.worker.models.repository import ModelRepository
    from services.worker.settings import WorkerSettings

    workers, threads = WorkerSettings().inference_sizing(os.cpu_count() or 1)
    detector = Detector(ModelRepository(REPOSITORY).resolve(MODEL_ID), intra_op_threads=threads)
    detector.infer(detector.preprocess(np.zeros((1080, 1920, 3), np.uint8))[0])  # warm-up, as a worker does
    client = redis.Redis.from_url(redis_url)
    pipeline_id = f"bench-decode-{os.getpid()}"
    config = PipelineConfig(video_references=(url,), source=SourceConfig(max_fps=max_fps), inference_workers=workers)
    sink = RedisStreamSink(client, pipeline_id, maxlen=1000)
    pipeline = InferencePipeline(config, DetectionProcessor(detector), [sink])
    pipeline.start()
    try:
        deadline = time.monotonic() + 30
        while pipeline.watchdog.frames_processed == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no frame processed within 30 s (state {pipeline.state.value})")
            time.sleep(0.1)
        time.sleep(warmup)
        generator = psutil.Process(generator_pid)
        before = _snapshot(pipeline, generator)
        time.sleep(seconds)
        after = _snapshot(pipeline, generator)
    finally:
        pipeline.terminate()
        client.delete(keys.results_stream(pipeline_id))
        client.close()
    return _window(before, after)


def _window(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    wall = after["wall"] - before["wall"]
    counters = ("cpu", "generator", "host", "processed", "grabbed", "skipped", "decoded")
    delta = {key: after[key] - before[key] for key in counters}
    threads = {group: (after["threads"][group] - before["threads"][group]) / TICK for group in before["threads"]}
    return {"seconds": wall, "cores": delta["cpu"] / wall, "processed_fps": delta["processed"] / wall,
            "grabbed_fps": delta["grabbed"] / wall, "retrieved_fps": (delta["grabbed"] - delta["skipped"]) / wall,
            "decoded_fps": delta["decoded"] / wall, "path": after["path"],
            "decode_cores": threads["decode"] / wall, "inference_cores": threads["inference"] / wall,
            "decode_ms_per_grab": 1000 * threads["decode"] / max(1, delta["grabbed"]),
            "generator_cores": delta["generator"] / wall,
            "others_cores": max(0.0, (delta["host"] - delta["cpu"] - delta["generator"]) / wall)}


def measure_path(path: str, clip: str) -> dict[str, Any]:
    """CPU per frame of the clip for one way of getting through it (every frame demuxed); the libraries
    are imported first, so their import is not counted."""
    import av  # noqa: F401
    import cv2  # noqa: F401

    import services.worker.engine.capture
    import services.worker.engine.pyav_capture  # noqa: F401

    started = os.times()
    demuxed, converted, decoded = _PATHS[path](clip)
    finished = os.times()
    cpu = (finished.user - started.user) + (finished.system - started.system)
    return {"demuxed": demuxed, "converted": converted, "decoded": decoded,
            "ms_per_frame": 1000 * cpu / max(1, demuxed)}


def _opencv(clip: str, retrieve_every: int) -> tuple[int, int, int]:
    """(frames demuxed, converted to BGR, decoded): OpenCV's grab decodes every frame it demuxes."""
    import cv2

    capture = cv2.VideoCapture(clip, cv2.CAP_FFMPEG)
    grabbed = retrieved = 0
    while capture.grab():
        grabbed += 1
        if retrieve_every and grabbed % retrieve_every == 0:
            retrieved += capture.retrieve()[0]
    capture.release()
    return grabbed, retrieved, grabbed


def _pyav_keyframes(clip: str) -> tuple[int, int, int]:
    """Every packet demuxed, only keyframes decoded (the decoder drops the others unread)."""
    import av

    with av.open(clip) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.skip_frame = "NONKEY"
        demuxed = decoded = 0
        for packet in container.demux(stream):
            demuxed += packet.size > 0
            for frame in packet.decode():
                frame.to_ndarray(format="bgr24")
                decoded += 1
    return demuxed, decoded, decoded


def _pyav_reader(clip: str, max_fps: float = 1.0) -> tuple[int, int, int]:
    """The engine's reader, taking frames as the source paces them if they arrived at the clip's rate:
    every packet demuxed, decoded only what its decode path needs (observing the GOP first)."""
    import av

    from services.worker.engine.pyav_capture import PyAVCapture

    container = av.open(clip)  # an MP4 file: open_pyav leaves those to OpenCV, the reader itself reads it
    stream = container.streams.video[0]
    capture, rate = PyAVCapture(container, stream, 1.0 / max_fps), float(stream.average_rate or 30)
    demuxed = taken = 0
    next_due: float | None = None
    while capture.grab():
        now = demuxed / rate
        demuxed += 1
        if (next_due is None or now >= next_due - capture.slack()) and capture.retrievable():
            next_due = max((now if next_due is None else next_due) + 1.0 / max_fps, now)
            taken += capture.retrieve()[0]
    capture.release()
    return demuxed, taken, capture.frames_decoded


def _engine_read(clip: str, threads: int) -> tuple[int, int, int]:
    """Every frame through the engine's own opener (``open_capture``) with ``threads`` decoding threads."""
    from services.worker.engine.capture import CaptureOptions, open_capture

    capture = open_capture(clip, CaptureOptions(decode_threads=threads))
    read = 0
    while capture.read()[0]:
        read += 1
    capture.release()
    return read, read, read


READ = "OpenCV read (grab + retrieve) of every frame"
GRAB_ONLY = "OpenCV grab only, no retrieve"
THREADS_AUTO = ("The engine's OpenCV reader, every frame, FFmpeg's automatic decoding threads "
                "(`WORKER_DECODE_THREADS=0`)")
THREADS_ONE = "The engine's OpenCV reader, every frame, 1 decoding thread (`WORKER_DECODE_THREADS=1`)"
_PATHS: dict[str, Callable[[str], tuple[int, int, int]]] = {
    READ: lambda clip: _opencv(clip, 1),
    "OpenCV grab of every frame, retrieve 1 in 30 (what max_fps 1 did)": lambda clip: _opencv(clip, GOP),
    GRAB_ONLY: lambda clip: _opencv(clip, 0),
    "PyAV, keyframes only decoded (skip_frame NONKEY), to BGR": _pyav_keyframes,
    "The engine's PyAV reader at max_fps 1 (GOP observed, then keyframes only), to BGR": _pyav_reader,
    THREADS_AUTO: lambda clip: _engine_read(clip, 0),
    THREADS_ONE: lambda clip: _engine_read(clip, 1),
}
THREAD_PATHS = (THREADS_AUTO, THREADS_ONE)
PATH_ROUNDS = 3  # each path measured this many times, interleaved; the median is shown


# ------------------------------------------------------------------ orchestration (parent)


def _spawn(args: list[str]) -> dict[str, Any]:
    return run_child("tests.benchmarks.decode", args, timeout=300)


def _server(clip: Path) -> Any:
    from tests.support.streams import LiveStream, free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/live.ts"
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
               "-c", "copy", "-f", "mpegts", "-listen", "1", url]
    return LiveStream(command, port, url)


def _server_pid(url: str) -> int:
    """The pid of the ffmpeg child serving ``url`` (its CPU is the load generator's)."""
    for child in psutil.Process().children():
        if url in child.cmdline():
            return int(child.pid)
    raise RuntimeError(f"no server process for {url}")


def wait_for_quiet(threshold: float, patience: float, log: Callable[[str], None]) -> str:
    """Waits (at most ``patience`` s) for the 1-minute load average to fall below ``threshold``."""
    started = time.monotonic()
    while (load := os.getloadavg()[0]) >= threshold and time.monotonic() - started < patience:
        log(f"1-minute load {load:.2f} >= {threshold}; waiting for a quiet machine ...")
        time.sleep(15)
    waited = time.monotonic() - started
    if load >= threshold:
        return (f"The machine was NOT quiet: 1-minute load average {load:.2f} at start after waiting "
                f"{waited:.0f} s (threshold {threshold}); ran anyway, see the `other processes` column.")
    return f"1-minute load average at start {load:.2f} (waited {waited:.0f} s for it to fall below {threshold})."


def run(rounds: int, warmup: float, seconds: float, quiet: tuple[float, float], output: Path,
        log: Callable[[str], None]) -> None:
    from tests.support.redis_server import running_redis

    load = wait_for_quiet(*quiet, log)  # before encoding: the encoder's own load would count
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp, running_redis() as redis_server:
        clip = Path(tmp) / "vtest-1080p30.mp4"
        log("encoding the 1080p30 H.264 clip ...")
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *ENCODE, str(clip)], check=True)
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in CONFIGS}
        for index in range(rounds):  # interleaved: every configuration once per round
            for label, (fps, opencv) in CONFIGS.items():
                with _server(clip) as stream:
                    pid = _server_pid(stream.url)
                    runs[label].append(_spawn(["pipeline", stream.url, str(fps), str(int(opencv)), str(pid),
                                               str(warmup), str(seconds), redis_server.url]))
                result = runs[label][-1]
                log(f"round {index + 1}/{rounds} {label}: {result['cores']:.2f} cores, {result['processed_fps']:.1f} "
                    f"fps processed, {result['decoded_fps']:.1f} fps decoded ({result['path']}), "
                    f"decode {result['decode_ms_per_grab']:.2f} ms/grab")
        paths = _median_paths(_PATHS, clip)
        sample = _median_paths(THREAD_PATHS, VIDEO)
    write_section(output, "decode", _markdown(runs, paths, sample, rounds, warmup, seconds, load))


def _median_paths(names: Iterable[str], clip: Path) -> dict[str, dict[str, Any]]:
    """Each path's run with the median CPU per frame, of PATH_ROUNDS interleaved runs (a process each)."""
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(PATH_ROUNDS):
        for name, results in measured.items():
            results.append(_spawn(["path", name, str(clip)]))
    return {name: sorted(results, key=lambda result: result["ms_per_frame"])[len(results) // 2]
            for name, results in measured.items()}


def _median(results: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(result[key] for result in results))


def _decode_verdict(runs: dict[str, list[dict[str, Any]]], paths: dict[str, dict[str, Any]]) -> str:
    """Whether decoding itself follows max_fps: its cost per grabbed frame at max_fps 1 vs 30, on
    the engine's path and on OpenCV's."""
    per_grab = {label: _median(runs[label], "decode_ms_per_grab") for label in (REFERENCE, NEW, OLD)}
    shares = {label: _median(runs[label], "decode_cores") / _median(runs[label], "cores") for label in per_grab}
    read, grab = paths[READ]["ms_per_frame"], paths[GRAB_ONLY]["ms_per_frame"]
    follows = per_grab[NEW] <= 0.5 * per_grab[REFERENCE]
    return (f"Decode per grabbed frame: {per_grab[REFERENCE]:.2f} ms at max_fps 30, {per_grab[NEW]:.2f} ms at "
            f"max_fps 1 ({shares[REFERENCE]:.0%} and {shares[NEW]:.0%} of the process's CPU): decoding itself "
            f"{'follows' if follows else 'does NOT follow'} max_fps; with OpenCV at max_fps 1 it was "
            f"{per_grab[OLD]:.2f} ms ({shares[OLD]:.0%}). On the clip, `grab()` alone costs {grab / read:.0%} of "
            "`read()`: OpenCV's FFmpeg backend decodes in `grab()`, `retrieve()` only converts to BGR.")


def _markdown(runs: dict[str, list[dict[str, Any]]], paths: dict[str, dict[str, Any]],
              sample: dict[str, dict[str, Any]], rounds: int, warmup: float, seconds: float, load: str) -> str:
    reference = _median(runs[REFERENCE], "cores")
    lines = [
        "## Decode cost and max_fps", "", stamp(), "",
        f"The pipeline (`{MODEL_ID}`, default sizing, Redis Stream sink, live default DROP_OLDEST/EAGER) on a live "
        f"1080p stream: `{VIDEO}` re-timed to 30 fps and scaled to 1920x1080, H.264 Main without B-frames, a "
        f"keyframe every {GOP} frames, encoded once, then served by ffmpeg (`-re -stream_loop -1 -c copy`, "
        f"MPEG-TS over HTTP). Each run a fresh process and a fresh server; measured over {seconds:.0f} s after the "
        f"first processed frame and {warmup:.0f} s of warm-up; medians of {rounds} interleaved rounds. "
        "Configurations without `OpenCV` are read as the engine reads them (PyAV for a live stream with "
        "max_fps, `services/worker/engine/pyav_capture.py`); `OpenCV` ones are forced onto OpenCV, as before. "
        "CPU = the pipeline process's CPU seconds per wall second (cores); decoded fps = frames out of the "
        "video decoder (`SourceStats.decoder_frames`); decode = the source thread (grab, retrieve) plus FFmpeg's "
        "decoder threads; other processes = host busy time minus the pipeline and ffmpeg. " + load, "",
        "| configuration | decode path | processed fps | grabbed fps | retrieved fps | decoded fps | CPU (cores) | "
        "CPU per round | x max_fps 30 | decode (cores) | decode ms / grabbed frame | inference (cores) | "
        "ffmpeg server (cores) | other processes (cores, per round) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, results in runs.items():
        cores = _median(results, "cores")
        per_round = ", ".join(f"{result['cores']:.2f}" for result in results)
        others = ", ".join(f"{result['others_cores']:.2f}" for result in results)
        decode_paths = ", ".join(sorted({result["path"] for result in results}))
        lines.append(
            f"| {label} | {decode_paths} | {_median(results, 'processed_fps'):.1f} | "
            f"{_median(results, 'grabbed_fps'):.1f} | {_median(results, 'retrieved_fps'):.1f} | "
            f"{_median(results, 'decoded_fps'):.1f} | {cores:.2f} | {per_round} | {cores / reference:.2f} | "
            f"{_median(results, 'decode_cores'):.2f} | {_median(results, 'decode_ms_per_grab'):.2f} | "
            f"{_median(results, 'inference_cores'):.2f} | {_median(results, 'generator_cores'):.3f} | "
            f"{others} |")
    ratio, before = (_median(runs[label], "cores") / reference for label in (NEW, OLD))
    lines += ["", f"CPU at max_fps 1 ≤ {GOAL:.0%} of max_fps 30: **{ratio:.0%}**, "
              f"{'met' if ratio <= GOAL else 'NOT met'} ({before:.0%} with OpenCV).", _decode_verdict(runs, paths), "",
        f"Decode paths on the same clip as a file, one process each, the median of {PATH_ROUNDS} interleaved runs, "
        "CPU per frame of the stream (x 30 = cores for a 30 fps camera):", "",
        "| decode path | frames demuxed | frames decoded | frames converted to BGR | CPU ms / stream frame | "
        "cores at 30 fps |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in paths.items():
        lines.append(f"| {name} | {result['demuxed']} | {result['decoded']} | {result['converted']} | "
                     f"{result['ms_per_frame']:.2f} | {result['ms_per_frame'] * 30 / 1000:.3f} |")
    auto, one = (paths[name]["ms_per_frame"] for name in THREAD_PATHS)
    sample_auto, sample_one = (sample[name]["ms_per_frame"] for name in THREAD_PATHS)
    lines += ["", f"Decoding threads (`WORKER_DECODE_THREADS`): one thread against FFmpeg's automatic count, CPU "
              f"per frame: {one:.2f} against {auto:.2f} ms on the 1080p H.264 clip ({one / auto - 1:+.0%}); "
              f"{sample_one:.2f} against {sample_auto:.2f} ms on `{VIDEO}` itself (768x576 MPEG-4 Part 2, "
              f"{sample[THREADS_ONE]['demuxed']} frames; {sample_one / sample_auto - 1:+.0%}). Frame threads "
              "also hold frames back (one per extra thread) before the first comes out."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quiet-load", type=float, default=1.5, help="wait for the 1-minute load to fall below")
    parser.add_argument("--quiet-wait", type=float, default=900.0, help="... for at most this many seconds")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "pipeline":
            url, fps, opencv, pid, warmup, seconds, redis_url = args.child[1:]
            result = measure_pipeline(url, float(fps), opencv == "1", int(pid), float(warmup), float(seconds),
                                      redis_url)
        else:
            result = measure_path(args.child[1], args.child[2])
        print(json.dumps(result))
        return
    run(args.rounds, args.warmup, args.seconds, (args.quiet_load, args.quiet_wait), args.output,
        lambda line: print(line, file=sys.stderr, flush=True))


if __name__ == "__main__":
    main()
