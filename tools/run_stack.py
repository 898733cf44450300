"""`make run`: the whole stack on the sample video, in the foreground.

Starts Redis (an embedded redis-server unless ``REDIS_URL`` is set), Flower, the manager, one CPU
worker, then starts a pipeline through the manager's TCP endpoint exactly as a reference client would
(the newer init generation with an inline object-detection workflow, or ``--workflow FILE``), and
prints its detections (and a workflow's plain outputs, e.g. counts) as CONSUME_RESULT returns them,
plus a status line every second. Ends when the video has been
processed; Ctrl-C terminates the pipeline and stops everything cleanly.

Flower gets the basic auth of ``FLOWER_BASIC_AUTH`` when set, else user ``vsim`` with a password
made up for this run and printed with the addresses: it is the local operator's own stack, bound to
loopback (``FLOWER_ADDRESS``), on ``FLOWER_PORT`` or a free port.
"""

import argparse
import collections
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.client import ConsumeResponse, ManagerClient, ProcessesManagerClientError
from services.client.models import ConsumedEntry
from services.core.results import detections_in
from tools.embedded_redis import free_port, running_redis
from tools.payloads import newer_init

PY = sys.executable


@contextlib.contextmanager
def _process(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _wait_for_init(client: ManagerClient, payload: dict[str, Any], deadline: float) -> str:
    """INIT, retried while the stack is still starting (manager not listening, no live worker yet)."""
    while True:
        try:
            return str(client.initialise(payload).context.pipeline_id)
        except ProcessesManagerClientError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stack did not accept the pipeline: {exc}") from exc
        time.sleep(0.5)


def _print_entries(response: ConsumeResponse, totals: collections.Counter[str]) -> int:
    entries = response.entries or (
        [ConsumedEntry(outputs=response.outputs, frames_metadata=response.frames_metadata)]
        if response.outputs else []
    )
    for entry in entries:
        for output, metadata in zip(entry.outputs, entry.frames_metadata, strict=True):
            if output is None or metadata is None:
                continue
            counts = collections.Counter(str(p.get("class")) for p in detections_in(output) or [])
            totals.update(counts)
            summary = ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "nothing"
            print(f"[src {metadata.source_id} #{metadata.frame_id:>5}] {summary}{_scalars(output)}", flush=True)
    return len(entries)


def _scalars(output: dict[str, Any]) -> str:
    """A workflow's plain outputs (counts, flags, texts), e.g. `` | count_in=3 count_out=1``."""
    plain = [f"{name}={value}" for name, value in output.items()
             if isinstance(value, int | float | str | bool) and name != "predictions"]
    return " | " + " ".join(plain) if plain else ""


def _status_line(client: ManagerClient, pipeline_id: str, frames: int, started: float) -> str:
    report = client.status(pipeline_id).report
    latency = report.latency_reports[0].e2e_latency if report.latency_reports else None
    states = ",".join(m.state or "?" for m in report.sources_metadata)
    return (f"status: {report.pipeline_state or '?'} | sources {states} | {frames} frames consumed | "
            f"{report.inference_throughput:5.1f} fps | e2e "
            f"{1000 * latency if latency else 0:5.0f} ms | {time.monotonic() - started:5.1f} s")


def _follow(client: ManagerClient, pipeline_id: str) -> collections.Counter[str]:
    totals: collections.Counter[str] = collections.Counter()
    frames, started, last_status = 0, time.monotonic(), 0.0
    while True:
        got = _print_entries(client.consume(pipeline_id, max_entries=200), totals)
        frames += got
        if time.monotonic() - last_status >= 1.0:
            print(_status_line(client, pipeline_id, frames, started), file=sys.stderr, flush=True)
            last_status = time.monotonic()
        if got == 0:
            if pipeline_id not in client.list_pipelines().pipelines:
                print(_status_line(client, pipeline_id, frames, started), file=sys.stderr, flush=True)
                return totals
            time.sleep(0.2)


def _flower_env(env: dict[str, str]) -> tuple[dict[str, str], str]:
    """Flower's environment and the line that tells the operator where it is and how to log in."""
    address = env.get("FLOWER_ADDRESS") or "127.0.0.1"
    port = env.get("FLOWER_PORT") or str(free_port())
    flower = dict(env, FLOWER_REDIS_URL=env["WORKER_REDIS_URL"], FLOWER_ADDRESS=address, FLOWER_PORT=port)
    if env.get("FLOWER_BASIC_AUTH"):
        login = "basic auth from FLOWER_BASIC_AUTH"
    else:
        password = secrets.token_urlsafe(12)
        flower["FLOWER_BASIC_AUTH"] = f"vsim:{password}"
        login = f"user vsim, password {password}"
    return flower, f"flower http://{address}:{port} ({login})"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the stack like Ctrl-C does


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="data/media/vtest.avi")
    parser.add_argument("--model", default="yolov3-tiny/coco-416")
    parser.add_argument("--max-fps", type=float, default=None)
    parser.add_argument("--workflow", type=Path, default=None,
                        help="a Workflows definition (published JSON format) to run instead of plain detection")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu", "jetson"),
                        help="the worker's device (gpu/jetson need onnxruntime-gpu and CUDA on this host)")
    args = parser.parse_args()
    log_dir = Path("data/logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get("REDIS_URL") or stack.enter_context(running_redis()).url
        port = free_port()
        env = dict(os.environ, MANAGER_REDIS_URL=redis_url, WORKER_REDIS_URL=redis_url,
                   STREAM_MANAGER_HOST="127.0.0.1", STREAM_MANAGER_PORT=str(port),
                   MANAGER_DEFAULT_DEVICE=args.device, WORKER_DEVICE=args.device)
        api_port = free_port()
        api_env = dict(env, STREAM_MANAGEMENT_API_HOST="127.0.0.1", STREAM_MANAGEMENT_API_PORT=str(api_port),
                       API_MANAGER_HOST="127.0.0.1", API_MANAGER_PORT=str(port), API_REDIS_URL=redis_url)
        flower_env, flower_line = _flower_env(env)
        print(f"redis {redis_url} | manager 127.0.0.1:{port} | logs in {log_dir}/", file=sys.stderr)
        print(f"api http://127.0.0.1:{api_port} (OpenAPI docs at /docs)", file=sys.stderr)
        print(flower_line, file=sys.stderr)
        # Started first and stopped last, so it sees the worker come online and the pipeline's events.
        flower = stack.enter_context(_process("flower", [PY, "-m", "services.worker.flower"], flower_env, log_dir))
        stack.enter_context(_process("manager", [PY, "-m", "services.manager"], env, log_dir))
        stack.enter_context(_process("api", [PY, "-m", "services.api"], api_env, log_dir))
        stack.enter_context(_process("worker", [PY, "-m", "services.worker", "--queues", f"pipelines.{args.device}",
                                                "--concurrency", "1", "--hostname", "run@%h"], env, log_dir))
        client = ManagerClient("127.0.0.1", port)
        payload = newer_init(args.video, max_fps=args.max_fps, results_buffer_size=1000, confidence=0.4,
                             model_id=args.model)
        if args.workflow is not None:
            payload["processing_configuration"]["workflow_specification"] = json.loads(args.workflow.read_text())
        pipeline_id = _wait_for_init(client, payload, time.monotonic() + 120)
        print(f"pipeline {pipeline_id} started on {args.video}", file=sys.stderr, flush=True)
        if flower.poll() is not None:
            print(f"flower exited with status {flower.returncode}; see {log_dir}/flower.log", file=sys.stderr)
        try:
            totals = _follow(client, pipeline_id)
        except KeyboardInterrupt:
            print("stopping: terminating the pipeline", file=sys.stderr, flush=True)
            with contextlib.suppress(ProcessesManagerClientError):
                client.terminate(pipeline_id)
            return
        summary = ", ".join(f"{n} {name}" for name, n in totals.most_common(6))
        print(f"done: pipeline {pipeline_id} ended; detections seen: {summary}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
