"""The inference service sized under a CPU limit: for the cores the worker may use, or for the host's.

A worker in a container limited to fewer CPUs than the host has (``--cpus``, ``--cpuset-cpus``, a
Kubernetes CPU limit) used to size its inference service for the host's cores (``os.cpu_count()``);
it now sizes for its usable cores (``services/worker/cores.py``: the CPU affinity capped by the cgroup's
quota). This benchmark pins itself, and so the whole stack it starts, to ONE core of the host (CPU
affinity, which every child inherits) and runs the same file pipelines (``data/media/vtest.avi``,
every frame) on two workers in turn: one sized for the host's cores, as before (``WORKER_INFERENCE_RUNNERS``
= ``os.cpu_count()``), and one with the automatic sizing, which finds one usable core. Each is measured
with 1 and 4 pipelines, rounds interleaved, the median round shown: aggregate fps over the window once
every pipeline produced results, and the run time of the service's batches (its ``stats``).

Usage: ``python -m tests.benchmarks.cpu_limit [--output docs/benchmarks.md] [--seconds 12] [--rounds 3]``
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.report import stamp, write_section
from tests.benchmarks.streams import Bench, run_files, service_batch_ms, service_stats, worker_env

SECTION = "cpu-limit"
COUNTS = (1, 4)


def _runners(bench: Bench) -> int:
    stats = service_stats(bench.worker, 1.0)
    if stats is None:
        raise RuntimeError("the worker runs no inference service")
    return int(stats["runners"])


def run(seconds: float, rounds: int, log: Any) -> str:
    from tests.support.redis_server import running_redis
    from tests.support.stack import running_stack

    host_cores = os.cpu_count() or 1
    pinned = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {pinned})  # inherited by redis-server, the manager, the worker and its children
    sizings = {"sized for the host's cores (before)": str(host_cores), "automatic: the usable cores": "0"}
    measured: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with running_redis() as server, running_stack(server.url) as stack:
        assert server.process is not None
        stack.start_manager(MANAGER_LOG_LEVEL="WARNING", MANAGER_FILE_ROOTS="data")
        bench = Bench(stack, server.process.pid, log)
        for round_index in range(rounds):
            for label, runners in sizings.items():
                name = f"limit-{runners}-{round_index}"
                bench.start_worker(name, max(COUNTS), worker_env(True, int(runners), 1))
                service_runners = _runners(bench)
                for count in COUNTS:
                    result = run_files(bench, count, seconds)
                    batch = service_batch_ms(bench.worker, result["window"]) or {}
                    result.update(runners=service_runners, batch_p50=batch.get("p50", 0.0),
                                  batch_p99=batch.get("p99", 0.0))
                    measured.setdefault((label, count), []).append(result)
                    log(f"round {round_index + 1}, {label}, {count} pipeline(s): {result['aggregate_fps']:.1f} fps, "
                        f"{service_runners} runner(s), batch p50 {result['batch_p50']:.0f} ms")
                bench.stop_worker(name)
    rows, medians = [], {}
    for (label, count), results in measured.items():
        median = sorted(results, key=lambda result: result["aggregate_fps"])[len(results) // 2]
        batch_p50 = statistics.median(result["batch_p50"] for result in results)
        medians[(label, count)] = (median["aggregate_fps"], batch_p50)
        rows.append(f"| {label} | {median['runners']} | {count} | {median['aggregate_fps']:.1f} | {batch_p50:.0f} | "
                    f"{statistics.median(result['batch_p99'] for result in results):.0f} | "
                    f"{median['p50_all_ms']:.0f} | {median['cores']['worker']:.2f} |")
    before, after = sizings
    compared = "; ".join(
        f"{count} pipeline(s): {medians[(after, count)][0] / medians[(before, count)][0]:.2f}x the fps, "
        f"{medians[(after, count)][1] / max(1e-9, medians[(before, count)][1]):.2f}x the batch run time"
        for count in COUNTS)
    return "\n".join([
        "## Sizing under a CPU limit",
        "",
        stamp(),
        "",
        f"The run pins itself and the stack it starts to one of the host's {host_cores} cores (CPU affinity, "
        f"core {pinned}), as a container limited to one CPU would be. Two workers in turn, each with 4 slots, "
        "one file pipeline or four on `data/media/vtest.avi`, every frame, shared inference service, batches "
        f"of 1; {rounds} rounds interleaved, the median round (fps) and the median of the rounds' batch "
        f"times; windows of {seconds:g} s once every pipeline produced results. Runners = what the service's "
        "`stats` report. E2e on a file includes the wait in the decoded-frame buffer. Worker CPU in cores "
        "(at most 1 here).",
        "",
        "| sizing | runners | pipelines | aggregate fps | batch run p50 ms | batch run p99 ms | e2e p50 ms "
        "| worker CPU |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"The automatic sizing against the host's, same run: {compared}. Both get the same core, so the "
        "throughput stays near the model's on one core; sized for the host, its runs share that core and each "
        "takes about as many times longer as there are runners. A host with more cores than this one makes "
        "that many more runs, each that much slower.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[cpu-limit {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    markdown = run(args.seconds, args.rounds, log)
    write_section(args.output, SECTION, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
