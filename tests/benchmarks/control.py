"""Control-plane latency: STATUS round trips with 1, 8 and 16 running pipelines, INIT -> success reply
and INIT -> first result on a warm worker, and the manager's RSS.

The real stack in processes (redis-server, `python -m services.manager`, one `python -m services.worker`
with 16 prefork slots); every request on a new TCP connection, as the reference client does.
Pipelines run vtest.avi paced at max_fps 1 so the CPU stays mostly free for the control plane.

Usage: ``python -m tests.benchmarks.control [--output docs/benchmarks.md] [--requests 500]``
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from tests.benchmarks.report import stamp, write_section
from tests.manager.fakes import call
from tests.support.redis_server import running_redis
from tests.support.stack import running_stack
from tools.payloads import newer_init

COUNTS = (1, 8, 16)


def _start_pipeline(port: int) -> tuple[str, float, float]:
    """(pipeline_id, seconds to the success reply, seconds to the first result)."""
    started = time.perf_counter()
    reply = call(port, newer_init("data/media/vtest.avi", max_fps=1))
    replied = time.perf_counter() - started
    if reply["response"]["status"] != "success":
        raise RuntimeError(f"init failed: {reply}")
    pipeline_id = reply["pipeline_id"]
    while True:
        consumed = call(port, {"type": "consume_result", "pipeline_id": pipeline_id, "excluded_fields": []})
        if consumed["response"]["outputs"]:
            return pipeline_id, replied, time.perf_counter() - started
        if time.perf_counter() - started > 60:
            raise RuntimeError("no first result within 60 s")
        time.sleep(0.01)


def _status_latencies(port: int, pipeline_ids: list[str], requests: int) -> list[float]:
    latencies = []
    for index in range(requests):
        started = time.perf_counter()
        reply = call(port, {"type": "status", "pipeline_id": pipeline_ids[index % len(pipeline_ids)]})
        latencies.append(time.perf_counter() - started)
        if reply["response"]["status"] != "success":
            raise RuntimeError(f"status failed: {reply}")
    return latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(requests: int, nice: int, log: Any) -> str:
    lines = [
        "## Control plane", "", stamp(), "",
        "Real processes: redis-server, the manager, one worker with 16 prefork slots (1 inference thread",
        f"each, started with `nice -n {nice}` since it shares these 2 cores with the manager); pipelines on",
        "vtest.avi at max_fps 1. Every request on its own TCP connection. STATUS of a running pipeline is",
        "answered from the report its task stores every second (`MANAGER_STATUS_MAX_AGE`).", "",
        "| running pipelines | STATUS p50 ms | STATUS p99 ms | STATUS max ms | manager RSS MiB |",
        "|---|---|---|---|---|",
    ]
    inits: list[tuple[float, float]] = []
    with running_redis() as server, running_stack(server.url) as stack:
        stack.start_manager()
        stack.start_worker("bench", "pipelines.cpu", concurrency=max(COUNTS), nice=nice)
        assert stack.manager is not None
        manager = psutil.Process(stack.manager.pid)
        pipeline_ids: list[str] = []
        for count in COUNTS:
            while len(pipeline_ids) < count:
                pipeline_id, replied, first = _start_pipeline(stack.port)
                pipeline_ids.append(pipeline_id)
                inits.append((replied, first))
            time.sleep(2)
            latencies = _status_latencies(stack.port, pipeline_ids, requests)
            rss = manager.memory_info().rss / 2**20
            log(f"{count} pipelines: p50 {1000 * statistics.median(latencies):.2f} ms, "
                f"p99 {1000 * _percentile(latencies, 0.99):.2f} ms")
            lines.append(f"| {count} | {1000 * statistics.median(latencies):.2f} | "
                         f"{1000 * _percentile(latencies, 0.99):.2f} | {1000 * max(latencies):.2f} | {rss:.0f} |")
        for pipeline_id in pipeline_ids:
            call(stack.port, {"type": "terminate", "pipeline_id": pipeline_id})
    replies = [replied for replied, _ in inits]
    firsts = [first for _, first in inits]
    lines += [
        "", f"INIT on a warm worker ({len(inits)} pipelines started one after another):", "",
        "| | median s | max s |", "|---|---|---|",
        f"| INIT -> success reply | {statistics.median(replies):.3f} | {max(replies):.3f} |",
        f"| INIT -> first result (CONSUME_RESULT) | {statistics.median(firsts):.3f} | {max(firsts):.3f} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--nice", type=int, default=10, help="nice value of the worker (it shares the host)")
    args = parser.parse_args()
    markdown = run(args.requests, args.nice, lambda text: print(text, file=sys.stderr, flush=True))
    write_section(args.output, "control", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
