"""`make run`: the whole stack on the sample video, in the foreground.

Starts Redis (an embedded redis-server unless ``REDIS_URL`` is set), the manager, one CPU worker,
then starts a pipeline through the manager's TCP endpoint exactly as a reference client would
(the newer init generation with an inline object-detection workflow), and prints its detections
as CONSUME_RESULT returns them, plus a status line every second. Ends when the video has been
processed; Ctrl-C terminates the pipeline and stops everything cleanly.
"""

import argparse
import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.core.framing import FrameDecoder, encode_message
from tools.embedded_redis import free_port, running_redis
from tools.payloads import newer_init

PY = sys.executable


class ManagerClient:
    """Just enough of a TCP client: one request per connection, as the reference client does."""

    def __init__(self, host: str, port: int, timeout: float = 40.0):
        self.address = (host, port)
        self.timeout = timeout

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        with socket.create_connection(self.address, timeout=self.timeout) as conn:
            conn.sendall(encode_message(payload))
            decoder = FrameDecoder(64 * 1024 * 1024)
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError("manager closed the connection without replying")
                frames = decoder.feed(chunk)
                if frames:
                    return dict(json.loads(frames[0]))


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


def _wait_for_init(client: ManagerClient, payload: dict[str, Any], deadline: float) -> dict[str, Any]:
    """INIT, retried while the worker is still starting (no live worker on the queue yet)."""
    while True:
        try:
            reply = client.request(payload)
        except OSError:
            reply = None
        if reply and reply["response"]["status"] == "success":
            return reply
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stack did not accept the pipeline: {reply}")
        time.sleep(0.5)


def _print_entries(response: dict[str, Any], totals: collections.Counter[str]) -> int:
    entries = response.get("entries") or (
        [{"outputs": response["outputs"], "frames_metadata": response["frames_metadata"]}]
        if response.get("outputs") else []
    )
    for entry in entries:
        for output, metadata in zip(entry["outputs"], entry["frames_metadata"], strict=True):
            if output is None:
                continue
            counts = collections.Counter(p["class"] for p in output["predictions"])
            totals.update(counts)
            summary = ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "nothing"
            print(f"[src {metadata['source_id']} #{metadata['frame_id']:>5}] {summary}", flush=True)
    return len(entries)


def _status_line(client: ManagerClient, pipeline_id: str, frames: int, started: float) -> str:
    report = client.request({"type": "status", "pipeline_id": pipeline_id})["response"].get("report", {})
    latency = (report.get("latency_reports") or [{}])[0].get("e2e_latency")
    states = ",".join(m.get("state", "?") for m in report.get("sources_metadata", []))
    return (f"status: {report.get('pipeline_state', '?')} | sources {states} | {frames} frames consumed | "
            f"{report.get('inference_throughput', 0):5.1f} fps | e2e "
            f"{1000 * latency if latency else 0:5.0f} ms | {time.monotonic() - started:5.1f} s")


def _follow(client: ManagerClient, pipeline_id: str) -> collections.Counter[str]:
    totals: collections.Counter[str] = collections.Counter()
    frames, started, last_status = 0, time.monotonic(), 0.0
    while True:
        reply = client.request({"type": "consume_result", "pipeline_id": pipeline_id, "excluded_fields": [],
                                "max_entries": 200})
        got = _print_entries(reply["response"], totals)
        frames += got
        if time.monotonic() - last_status >= 1.0:
            print(_status_line(client, pipeline_id, frames, started), file=sys.stderr, flush=True)
            last_status = time.monotonic()
        if got == 0:
            listed = client.request({"type": "list_pipelines"})["response"]["pipelines"]
            if pipeline_id not in listed:
                print(_status_line(client, pipeline_id, frames, started), file=sys.stderr, flush=True)
                return totals
            time.sleep(0.2)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the stack like Ctrl-C does


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="data/media/vtest.avi")
    parser.add_argument("--model", default="yolov3-tiny/coco-416")
    parser.add_argument("--max-fps", type=float, default=None)
    args = parser.parse_args()
    log_dir = Path("data/logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get("REDIS_URL") or stack.enter_context(running_redis()).url
        port = free_port()
        env = dict(os.environ, MANAGER_REDIS_URL=redis_url, WORKER_REDIS_URL=redis_url,
                   STREAM_MANAGER_HOST="127.0.0.1", STREAM_MANAGER_PORT=str(port))
        print(f"redis {redis_url} | manager 127.0.0.1:{port} | logs in {log_dir}/", file=sys.stderr)
        stack.enter_context(_process("manager", [PY, "-m", "services.manager"], env, log_dir))
        stack.enter_context(_process("worker", [PY, "-m", "services.worker", "--queues", "pipelines.cpu",
                                                "--concurrency", "1", "--hostname", "run@%h"], env, log_dir))
        client = ManagerClient("127.0.0.1", port)
        reply = _wait_for_init(client, newer_init(args.video, max_fps=args.max_fps, results_buffer_size=1000,
                                                    confidence=0.4, model_id=args.model), time.monotonic() + 120)
        pipeline_id = reply["pipeline_id"]
        print(f"pipeline {pipeline_id} started on {args.video}", file=sys.stderr, flush=True)
        try:
            totals = _follow(client, pipeline_id)
        except KeyboardInterrupt:
            print("stopping: terminating the pipeline", file=sys.stderr, flush=True)
            with contextlib.suppress(OSError):
                client.request({"type": "terminate", "pipeline_id": pipeline_id})
            return
        summary = ", ".join(f"{n} {name}" for name, n in totals.most_common(6))
        print(f"done: pipeline {pipeline_id} ended; detections seen: {summary}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
