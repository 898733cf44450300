"""The pipelines' scheduling policy: ``SCHED_BATCH`` (the default) against the kernel's default policy.

A worker's pipelines run their threads under ``SCHED_BATCH`` (``services/worker/scheduling.py``): the
same CPU share, but a pipeline thread that wakes (a decoded frame, a result to write) no longer
preempts the inference service's running ``session.run``. This benchmark runs the same load on two
workers in turn, ``WORKER_BATCH_SCHEDULING=true`` and ``=false``, everything else automatic (the
inference service on, its default sizing and batch size), rounds interleaved:

- **16 live streams at 30 fps** in ``freshest`` mode (the streams benchmark's part 4: ffmpeg servers of
  a 384x288 H.264 clip, ``max_staleness`` two frame intervals): frames processed, e2e p50 / p99 (decode
  -> readable in Redis), the service's batch run times (its ``stats``), and how often the service's
  threads were preempted (``nonvoluntary_ctxt_switches`` of every thread of its process, per second
  and per CPU second it used);
- **4 pipelines on the file** (``data/media/vtest.avi``, every frame): aggregate fps.

Usage: ``python -m tests.benchmarks.scheduling [--output docs/benchmarks.md] [--seconds 15] [--rounds 3]``
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from services.worker.settings import WorkerSettings
from tests.benchmarks.report import stamp, write_section
from tests.benchmarks.streams import (
    LIVE_FPS,
    Bench,
    encode_live_clip,
    run_files,
    run_live,
    wait_idle,
    worker_env,
)

SECTION = "scheduling"
STREAMS = 16
FILES = 4
POLICIES = {"SCHED_BATCH (default)": "true", "default policy (WORKER_BATCH_SCHEDULING=false)": "false"}


def _service(bench: Bench) -> psutil.Process:
    assert bench.worker is not None
    for child in bench.worker.children(recursive=True):
        if "services.worker.inference" in " ".join(child.cmdline()):
            return child
    raise RuntimeError("the worker runs no inference service")


def preemptions(process: psutil.Process) -> tuple[int, float]:
    """(involuntary context switches summed over the process's threads, its CPU seconds)."""
    switches = 0
    for thread in process.threads():
        try:
            status = Path(f"/proc/{process.pid}/task/{thread.id}/status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        switches += int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
    times = process.cpu_times()
    return switches, times.user + times.system


def measure(bench: Bench, clip: Path, seconds: float) -> dict[str, Any]:
    """One round on the running worker: the file pipelines, then the live streams."""
    files = run_files(bench, FILES, seconds)
    assert bench.worker is not None
    wait_idle(bench.worker, bench.log)
    service = _service(bench)
    marks: dict[str, tuple[float, int, float]] = {}

    def window(edge: str) -> None:
        marks[edge] = (time.monotonic(), *preemptions(service))

    live = run_live(bench, clip, STREAMS, seconds, 2 / LIVE_FPS, window)
    (began, switches_before, cpu_before), (ended, switches_after, cpu_after) = marks["begin"], marks["end"]
    switches, cpu = switches_after - switches_before, cpu_after - cpu_before
    batch = live["batch_ms"] or {}
    return {"files_fps": files["aggregate_fps"], "live_fps": live["processed"] / live["counted_s"],
            "p50": live["p50_all_ms"], "p99": live["p99_all_ms"], "batch_p50": batch.get("p50", 0.0),
            "batch_p99": batch.get("p99", 0.0), "switches_per_s": switches / (ended - began),
            "switches_per_cpu_s": switches / max(1e-9, cpu), "service_cores": cpu / (ended - began),
            "worker_cores": live["cores"]["worker"]}


def run(seconds: float, rounds: int, log: Any) -> str:
    from tests.support.redis_server import running_redis
    from tests.support.stack import running_stack

    measured: dict[str, list[dict[str, Any]]] = {label: [] for label in POLICIES}
    with tempfile.TemporaryDirectory(prefix="bench-scheduling-") as tmp, running_redis() as server, \
            running_stack(server.url) as stack:
        assert server.process is not None
        stack.start_manager(MANAGER_LOG_LEVEL="WARNING", MANAGER_FILE_ROOTS="data")
        bench = Bench(stack, server.process.pid, log)
        clip = encode_live_clip(Path(tmp) / "live.mp4", None)
        for round_index in range(rounds):
            for label, enabled in POLICIES.items():
                name = f"scheduling-{enabled}-{round_index}"
                env = {key: value for key, value in worker_env(True, 0, 1).items()
                       if key != "WORKER_INFERENCE_MAX_BATCH"}  # the worker's default batch size
                bench.start_worker(name, max(STREAMS, FILES), {**env, "WORKER_BATCH_SCHEDULING": enabled})
                result = measure(bench, clip, seconds)
                measured[label].append(result)
                log(f"round {round_index + 1}, {label}: files {result['files_fps']:.1f} fps; live "
                    f"{result['live_fps']:.1f} fps, p99 {result['p99']:.0f} ms, batch p50 {result['batch_p50']:.0f} "
                    f"ms, service preempted {result['switches_per_s']:.0f}/s")
                bench.stop_worker(name)

    def median(label: str, key: str) -> float:
        return statistics.median(result[key] for result in measured[label])

    rows = [f"| {label} | {median(label, 'live_fps'):.1f} | {median(label, 'p50'):.0f} | {median(label, 'p99'):.0f} | "
            f"{median(label, 'batch_p50'):.0f} | {median(label, 'batch_p99'):.0f} | "
            f"{median(label, 'switches_per_s'):.0f} | {median(label, 'switches_per_cpu_s'):.0f} | "
            f"{median(label, 'service_cores'):.2f} | {median(label, 'worker_cores'):.2f} | "
            f"{median(label, 'files_fps'):.1f} |" for label in POLICIES]
    rounds_rows = [f"| {label} | " + " / ".join(f"{result['live_fps']:.1f}" for result in measured[label]) + " | "
                   + " / ".join(f"{result['p99']:.0f}" for result in measured[label]) + " | "
                   + " / ".join(f"{result['files_fps']:.1f}" for result in measured[label]) + " |"
                   for label in POLICIES]
    batch_label, default_label = POLICIES

    def ratio(key: str) -> str:
        return f"{median(batch_label, key) / max(1e-9, median(default_label, key)):.2f}x"

    size = f"batches of at most {WorkerSettings.model_fields['inference_max_batch'].default} frames (the default)"
    return "\n".join([
        "## Pipelines under SCHED_BATCH",
        "",
        stamp(),
        "",
        f"Two workers in turn (16 slots, inference service on, automatic sizing, {size}), "
        "`WORKER_BATCH_SCHEDULING=true` (the default: pipelines' threads under `SCHED_BATCH`) and `=false`; "
        f"{rounds} rounds interleaved, medians over the rounds. Each round: {FILES} pipelines on "
        f"`data/media/vtest.avi` (every frame, aggregate fps over {seconds:g} s once all produce results), then "
        f"{STREAMS} live streams at {LIVE_FPS} fps in `freshest` mode with `max_staleness` 2 frame intervals "
        f"(ffmpeg servers of a 384x288 H.264 clip, as in \"Many streams per host\", part 4), measured over "
        f"{seconds:g} s. E2e = decode -> readable in Redis. Batch run = the service's `stats` over the window. "
        "Service preemptions = involuntary context switches summed over the service process's threads, per "
        "second and per second of CPU it used. CPU in cores.",
        "",
        "| pipelines' policy | live processed fps | live e2e p50 ms | live e2e p99 ms | batch run p50 ms "
        "| batch run p99 ms | service preemptions / s | per CPU s | service CPU | worker CPU "
        f"| {FILES} file pipelines fps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Every round (live processed fps; live e2e p99 ms; file fps):",
        "",
        "| pipelines' policy | live fps | live p99 ms | file fps |",
        "|---|---|---|---|",
        *rounds_rows,
        "",
        f"SCHED_BATCH against the default policy, same run: live processed fps {ratio('live_fps')}, live e2e p99 "
        f"{ratio('p99')}, batch run p50 {ratio('batch_p50')}, service preemptions per CPU second "
        f"{ratio('switches_per_cpu_s')}, file pipelines' fps {ratio('files_fps')}.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[scheduling {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    markdown = run(args.seconds, args.rounds, log)
    write_section(args.output, SECTION, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
