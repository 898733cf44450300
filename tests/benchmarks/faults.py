"""Recovery from faults, measured on real processes: how fast a lost pipeline is noticed and runs
again, and whether any result was duplicated or written by two producers at once.

Each scenario starts a pipeline on a live RTSP camera (max_fps 5) served by two Celery workers,
injects the fault, and reads the outcome off the results stream (tests/support/faults.py):

- detection: fault -> the manager gave the pipeline a new epoch (restart scheduled);
- recovery: fault -> first result of the new epoch in the stream (Redis's clock);
- gap: last result of the old producer -> first result of the new one (frames not processed);
- interleaved: results of an older epoch after a newer one had written (must be 0);
- duplicated: frames written twice by the same producer (must be 0).

Usage: ``python -m tests.benchmarks.faults [--output docs/benchmarks.md] [--rounds 3]``
"""

import argparse
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from services.client import ManagerClient
from tests.benchmarks.report import stamp, write_section
from tests.support import faults
from tests.support.stack import Stack, running_stack
from tests.support.streams import rtsp_live_stream
from tools.embedded_redis import running_redis
from tools.payloads import newer_init

WORKER_ENV = {"WORKER_VISIBILITY_TIMEOUT": "3"}


def _ensure_workers(stack: Stack) -> None:
    for name in ("a", "b"):
        if name not in stack.workers or stack.workers[name].poll() is not None:
            stack.start_worker_with_env(name, "pipelines.cpu", WORKER_ENV, concurrency=1)


def _start(client: ManagerClient, stack: Stack, camera: str) -> str:
    pipeline_id = client.initialise(newer_init(camera, max_fps=5)).context.pipeline_id
    assert pipeline_id is not None
    faults.wait_for(lambda: faults.audit(stack.client, pipeline_id).count(1) >= 5, timeout=30)
    return pipeline_id


def _worker_of(stack: Stack, pipeline_id: str) -> str:
    return faults.record(stack.client, pipeline_id).owner.split("@", 1)[0]


def _scenarios(stack: Stack) -> dict[str, Callable[[str], Callable[[], None]]]:
    def kill_task(pid: str) -> Callable[[], None]:
        task = faults.task_pid(stack.client, pid)
        return lambda: faults.kill_tree(task)

    def kill_worker(pid: str) -> Callable[[], None]:
        worker = stack.workers[_worker_of(stack, pid)].pid
        return lambda: faults.kill_tree(worker)

    def freeze(pid: str) -> Callable[[], None]:
        task = psutil.Process(faults.task_pid(stack.client, pid))
        return lambda: task.send_signal(signal.SIGSTOP)

    def sigterm(pid: str) -> Callable[[], None]:
        process = stack.workers[_worker_of(stack, pid)]

        def inject() -> None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

        return inject

    return {"task process killed (SIGKILL)": kill_task, "whole worker killed (SIGKILL)": kill_worker,
            "task frozen (SIGSTOP) past the heartbeat": freeze, "worker shut down (SIGTERM), hand-over": sigterm}


def _fmt(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    return f"{statistics.median(known):.1f} ({max(known):.1f})"


def run(rounds: int, log: Callable[[str], None]) -> str:
    rows = []
    with running_redis() as server, rtsp_live_stream() as camera, running_stack(server.url) as stack:
        stack.start_manager()
        _ensure_workers(stack)
        client = ManagerClient(port=stack.port, timeout=15)
        for name, prepare in _scenarios(stack).items():
            outcomes = []
            for index in range(rounds):
                _ensure_workers(stack)
                pipeline_id = _start(client, stack, camera)
                frozen = faults.record(stack.client, pipeline_id).owner
                outcome = faults.measure_restart(stack.client, pipeline_id, name, prepare(pipeline_id))
                if "SIGSTOP" in name:  # wake the zombie and give it time to try to write
                    psutil.Process(int(frozen.rsplit(":", 1)[1])).send_signal(signal.SIGCONT)
                    time.sleep(3)
                    after = faults.audit(stack.client, pipeline_id)
                    outcome.interleaved, outcome.duplicated = after.interleaved, after.duplicated
                client.terminate(pipeline_id)
                outcomes.append(outcome)
                log(f"{name} #{index + 1}: detected {outcome.detected_s}, recovered {outcome.recovered_s}, "
                    f"interleaved {outcome.interleaved}, duplicated {outcome.duplicated}")
            rows.append(
                f"| {name} | {len(outcomes)} | {_fmt([o.detected_s for o in outcomes])} | "
                f"{_fmt([o.recovered_s for o in outcomes])} | {_fmt([o.gap_s for o in outcomes])} | "
                f"{sum(o.interleaved for o in outcomes)} | {sum(o.duplicated for o in outcomes)} |")
    return "\n".join([
        f"{stamp()} Two workers (1 slot each) on `pipelines.cpu`, a live RTSP camera at max_fps 5, "
        "manager defaults (heartbeat TTL 3 s, grace 1 s, first restart at once), broker visibility "
        "timeout 3 s. Times in seconds, median (max); recovery includes loading the model and opening the "
        "camera in the new task. For the SIGTERM hand-over, detection includes the old worker's own orderly "
        "stop (it exits when its pipeline is released).",
        "",
        "| fault | runs | detection | recovery | gap in results | interleaved results | duplicated results |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    table = run(args.rounds, lambda line: print(line, file=sys.stderr, flush=True))
    write_section(args.output, "faults", "## Faults: lost tasks and workers\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
