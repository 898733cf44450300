"""What a pipeline costs while it waits: paused, or running a low-rate camera.

A host runs many pipelines that are mostly waiting: paused ones, and cameras read at a few frames a
second (``max_fps``), whose threads sleep between frames. What they spend then is spent for every
pipeline on the host, whatever the model does, so it must be little, and each part of it must have
a reason. This benchmark measures it through the real stack: redis-server, ``python -m
services.manager``, one ``python -m services.worker`` (``--concurrency`` = the pipelines, the
shared inference service), ``--pipelines`` pipelines INITed on the sample video at ``--max-fps``.

Theory of operation: once every pipeline produced results, the worker's process tree (its main
process, the pool processes, the inference service) is sampled twice, ``--seconds`` apart, reading
each thread's CPU time (``/proc/<pid>/task/<tid>/schedstat``, ns) and its voluntary context switches
(each a wake-up after sleeping) by its OS name; then every pipeline is paused (``MUTE``: its source
keeps reading the file at ``max_fps`` and drops the frames, as the reference does) and the tree is
sampled again over the same window. Threads are grouped by stage (the name without its number or
pipeline id). Per pipeline = the group's total over the pipelines; per second = over the window.

Usage: ``python -m tests.benchmarks.idle [--output docs/benchmarks.md] [--pipelines 8] [--max-fps 5]
[--seconds 10]``
"""

import argparse
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from services.client.tcp import ManagerClient
from tests.benchmarks.report import process_tree, stamp, write_section
from tests.support.redis_server import running_redis
from tests.support.stack import running_stack
from tools.payloads import newer_init

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT / "data" / "media" / "vtest.avi"
# What each group of threads is, for the table (OS thread names: services.infra.os_threads).
GROUPS = {
    "source": "decoding (`source-N`, with FFmpeg's threads, which inherit its name)",
    "collector": "the round's frames, letterbox (`collector`)",
    "inference": "the pipeline's side of the inference service (`inference-N`)",
    "post": "NMS, the workflow's steps (`post`)",
    "sink": "results' JSON and fenced XADD (`sink-*`)",
    "control": "control channel listener (`control-<id>`)",
    "preview": "dashboard preview (`preview-<id>`)",
    "runner": "the inference service's model runs (`runner-N`)",
    "connection": "the inference service's connections (`connection`)",
    "registration": "the worker's registration heartbeat (`registration`)",
    "main": "main threads: each pool process's supervisor tick (report, fenced heartbeat), the worker's Celery loop",
    "other": "every other thread",
}
_NUMBERED = re.compile(r"^(source|inference|runner|sink|control|preview|beat)[-_]")


def _group(name: str) -> str:
    match = _NUMBERED.match(name)
    if match:
        return match.group(1)
    if name in GROUPS:
        return name
    if name.startswith(("python", "celery")) or name == "MainThread":
        return "main"
    return "other"


def _threads(root: psutil.Process) -> dict[tuple[int, int], tuple[str, int, int]]:
    """(pid, tid) -> (group, CPU ns, voluntary context switches) for every thread of the tree."""
    found = {}
    for process in process_tree(root):
        try:
            tids = os.listdir(f"/proc/{process.pid}/task")
        except OSError:
            continue
        for tid in tids:
            base = f"/proc/{process.pid}/task/{tid}"
            try:
                with open(f"{base}/comm") as comm, open(f"{base}/schedstat") as schedstat:
                    name, ns = comm.read().strip(), int(schedstat.read().split()[0])
                with open(f"{base}/status") as status:
                    switches = next(int(line.split()[1]) for line in status
                                    if line.startswith("voluntary_ctxt_switches"))
            except (OSError, StopIteration, ValueError):
                continue
            found[(process.pid, int(tid))] = (_group(name), ns, switches)
    return found


def _window(root: psutil.Process, seconds: float) -> dict[str, tuple[float, float]]:
    """group -> (CPU ms per second, wake-ups per second) over ``seconds``; threads present at both ends."""
    before = _threads(root)
    started = time.monotonic()
    time.sleep(seconds)
    after = _threads(root)
    elapsed = time.monotonic() - started
    cpu: Counter[str] = Counter()
    wakes: Counter[str] = Counter()
    for key, (group, ns, switches) in after.items():
        if key in before:
            cpu[group] += ns - before[key][1]
            wakes[group] += switches - before[key][2]
    return {group: (cpu[group] / 1e6 / elapsed, wakes[group] / elapsed) for group in cpu}


def _report(client: ManagerClient, pipeline_id: str) -> dict[str, Any]:
    return client.status(pipeline_id).report.model_dump()


def run(pipelines: int, max_fps: float, seconds: float) -> dict[str, Any]:
    with running_redis() as redis_server, running_stack(redis_server.url) as stack:
        stack.start_manager(MANAGER_LOG_LEVEL="WARNING")
        stack.start_worker("idle", "pipelines.cpu", concurrency=pipelines)
        client = ManagerClient("127.0.0.1", stack.port, timeout=30, init_timeout=120)
        ids = [client.initialise(newer_init(str(VIDEO), max_fps=max_fps)).context.pipeline_id
               for _ in range(pipelines)]
        deadline = time.monotonic() + 120
        while not all(_report(client, pid).get("frames_processed", 0) > 0 for pid in ids):
            if time.monotonic() > deadline:
                raise RuntimeError("not every pipeline produced results within 120 s")
            time.sleep(0.5)
        time.sleep(2)
        worker = psutil.Process(stack.workers["idle"].pid)
        processed = [_report(client, pid)["frames_processed"] for pid in ids]
        running = _window(worker, seconds)
        processed = [_report(client, pid)["frames_processed"] - done for pid, done in zip(ids, processed, strict=True)]
        for pid in ids:
            client.pause(pid)
        time.sleep(2)  # the rounds in flight pass
        paused = _window(worker, seconds)
        states = Counter(_report(client, pid).get("state") for pid in ids)
        for pid in ids:
            client.terminate(pid)
    return {"running": running, "paused": paused, "processed": processed, "states": dict(states)}


def render(result: dict[str, Any], pipelines: int, max_fps: float, seconds: float) -> str:
    running, paused = result["running"], result["paused"]
    fps = sum(result["processed"]) / seconds / pipelines
    groups = [group for group in GROUPS if group in running or group in paused]
    lines = [
        "## Waiting pipelines: what they cost while paused or reading a low-rate camera",
        "",
        stamp(),
        "",
        f"{pipelines} pipelines on `data/media/vtest.avi` at `max_fps` {max_fps:g} on one worker "
        f"(`--concurrency {pipelines}`, the shared inference service), measured through the real stack over "
        f"{seconds:g} s running ({fps:.1f} results per second per pipeline), then {seconds:g} s after all of "
        f"them were paused (states then: {', '.join(f'{n} {s}' for s, n in sorted(result['states'].items()))}; "
        "a paused source keeps reading the file at `max_fps` and drops the frames, as the reference's does). "
        "The worker's whole process tree, each thread's CPU (`schedstat`, ns) and voluntary context switches "
        "(wake-ups), grouped by OS thread name; per pipeline = the group's total / the pipelines.",
        "",
        "| threads | what they do | running: CPU ms/s per pipeline | running: wake-ups/s per pipeline "
        "| paused: CPU ms/s per pipeline | paused: wake-ups/s per pipeline |",
        "|---|---|---|---|---|---|",
    ]
    for group in groups:
        r_cpu, r_wakes = running.get(group, (0.0, 0.0))
        p_cpu, p_wakes = paused.get(group, (0.0, 0.0))
        lines.append(f"| {group} | {GROUPS[group]} | {r_cpu / pipelines:.3f} | {r_wakes / pipelines:.1f} "
                     f"| {p_cpu / pipelines:.3f} | {p_wakes / pipelines:.1f} |")
    r_total = sum(cpu for cpu, _ in running.values()) / pipelines
    p_total = sum(cpu for cpu, _ in paused.values()) / pipelines
    lines.append(f"| **all** | | **{r_total:.2f}** | | **{p_total:.2f}** | |")
    lines += [
        "",
        f"A paused pipeline costs {p_total:.2f} ms of CPU a second ({p_total / 10:.2f} % of a core), "
        f"{paused.get('source', (0.0, 0.0))[0] / pipelines:.2f} of it the decoding a paused source keeps doing; "
        "its stage threads sleep on their queues and its control listener in its subscription "
        "(`services.worker.engine.pipeline`, `services.worker.control_listener`).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--pipelines", type=int, default=8)
    parser.add_argument("--max-fps", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = run(args.pipelines, args.max_fps, args.seconds)
    markdown = render(result, args.pipelines, args.max_fps, args.seconds)
    print(markdown)
    if args.output is not None:
        write_section(args.output, "idle", markdown)


if __name__ == "__main__":
    main()
