"""`make run`: the whole stack on the sample video, in the foreground.

Starts Redis (an embedded redis-server unless ``REDIS_URL`` is set), Flower, the manager, one CPU
worker, then starts a pipeline through the manager's TCP endpoint exactly as a reference client would
(the newer init generation with an inline object-detection workflow, or ``--workflow FILE``), and
prints its detections (and a workflow's plain outputs, e.g. counts) as CONSUME_RESULT returns them,
plus a status line every second. Ends when the video has been
processed; Ctrl-C terminates the pipeline and stops everything cleanly.

The source named with ``--video`` is allowed for this run's manager only, on top of its usual
policy (``MANAGER_FILE_ROOTS``, default ``data``; ``MANAGER_ALLOWED_CAMERAS``, default none): a file
adds exactly that file (resolved) to the file roots, a camera index (``--video 0``) exactly that
camera; a URL is left to ``MANAGER_ALLOWED_SCHEMES``. A file that does not exist stops the run before
anything starts.

Theory of operation of the start: INIT is sent as soon as the processes are spawned and retried
every 0.5 s, for at most 120 s, while the failure is transient (the manager is not listening yet, or
it answers ``operation_error`` because no worker has registered yet). Any other failure is permanent
(``invalid_payload``, ``not_found``, ``authorisation_error``, ``internal_error``, a broken reply, the
manager or the worker process exiting): the run stops at once, prints the manager's reason and exits
with status 1. So does a pipeline that ends ``FAILED``. The manager inherits the operator's environment;
when it sets ``MANAGER_AUTH_TOKEN`` this script's client sends that token.

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
from services.client.errors import ConnectivityError, ProcessesManagerOperationError
from services.client.models import ConsumedEntry, StatusReport
from services.core.references import scheme_of
from services.core.results import detections_in
from services.infra.redis_connect import RedisUrlError, parse_redis_url
from services.manager.settings import ManagerSettings
from tools.embedded_redis import free_port, running_redis
from tools.payloads import newer_init

PY = sys.executable
INIT_RETRY_SECONDS = 120.0
INIT_RETRY_INTERVAL = 0.5


class StackError(Exception):
    """A permanent failure of the run: its message is printed and the run exits with status 1."""


def video_reference(text: str) -> str | int:
    """``--video``: a camera index stays an integer on the wire (``cv2.VideoCapture(0)``), else the string."""
    return int(text) if text.isdigit() else text


def source_allowance(reference: str | int, environ: dict[str, str]) -> dict[str, str]:
    """The manager settings that allow exactly ``reference`` on top of the policy ``environ`` configures.

    A camera index is added to ``MANAGER_ALLOWED_CAMERAS``, an existing file (its real path, symlinks
    resolved) to ``MANAGER_FILE_ROOTS`` (whose default, ``data``, stays); a URL adds nothing (its scheme
    must be in ``MANAGER_ALLOWED_SCHEMES``). Raises :class:`StackError` for a file that does not exist,
    a directory, or a path the comma-separated setting cannot carry.
    """
    if isinstance(reference, int):
        cameras = [part.strip() for part in environ.get("MANAGER_ALLOWED_CAMERAS", "").split(",") if part.strip()]
        return {"MANAGER_ALLOWED_CAMERAS": ",".join(dict.fromkeys([*cameras, str(reference)]))}
    if scheme_of(reference) is not None:
        return {}
    path = Path(reference)
    if not path.exists():
        raise StackError(f"video {reference!r}: no such file (give an existing file, a camera index or a URL)")
    if path.is_dir():
        raise StackError(f"video {reference!r} is a directory; give a video file")
    resolved = os.path.realpath(path)
    if "," in resolved:
        raise StackError(f"video {reference!r}: its path {resolved!r} contains ',', which MANAGER_FILE_ROOTS "
                         "(comma-separated) cannot carry; rename or link it")
    configured = environ.get("MANAGER_FILE_ROOTS")
    if configured is None:
        roots = [str(root) for root in ManagerSettings.model_fields["file_roots"].default]
    else:
        roots = [part.strip() for part in configured.split(",") if part.strip()]
    return {"MANAGER_FILE_ROOTS": ",".join(dict.fromkeys([*roots, resolved]))}


def is_transient(exc: ProcessesManagerClientError) -> bool:
    """Whether INIT may succeed if sent again: the manager not listening yet, or no worker (with room) yet."""
    return isinstance(exc, ConnectivityError | ProcessesManagerOperationError)


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


def wait_for_init(client: ManagerClient, payload: dict[str, Any], deadline: float,
                  processes: dict[str, subprocess.Popen[bytes]], log_dir: Path) -> str:
    """The new pipeline's id. INIT is retried while the stack is still starting (see the module's
    docstring); a permanent refusal, a needed process that exited, or ``deadline`` raises StackError."""
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                raise StackError(f"the {name} exited with status {process.returncode} before the pipeline "
                                 f"started; see {log_dir}/{name}.log")
        try:
            return str(client.initialise(payload).context.pipeline_id)
        except ProcessesManagerClientError as exc:
            kind = exc.error_type or type(exc).__name__
            if not is_transient(exc):
                raise StackError(f"the manager refused the pipeline ({kind}): {exc}") from None
            if time.monotonic() > deadline:
                raise StackError(f"the stack did not accept the pipeline in time; last answer ({kind}): {exc}; "
                                 f"see {log_dir}/") from None
        time.sleep(INIT_RETRY_INTERVAL)


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


def _status_line(report: StatusReport, frames: int, started: float) -> str:
    latency = report.latency_reports[0].e2e_latency if report.latency_reports else None
    states = ",".join(m.state or "?" for m in report.sources_metadata)
    return (f"status: {report.pipeline_state or '?'} | sources {states} | {frames} frames consumed | "
            f"{report.inference_throughput:5.1f} fps | e2e "
            f"{1000 * latency if latency else 0:5.0f} ms | {time.monotonic() - started:5.1f} s")


def _follow(client: ManagerClient, pipeline_id: str) -> tuple[collections.Counter[str], StatusReport]:
    """Prints results and status lines until the pipeline has ended; the detections seen and its last report."""
    totals: collections.Counter[str] = collections.Counter()
    frames, started, last_status = 0, time.monotonic(), 0.0
    while True:
        got = _print_entries(client.consume(pipeline_id, max_entries=200), totals)
        frames += got
        if time.monotonic() - last_status >= 1.0:
            print(_status_line(client.status(pipeline_id).report, frames, started), file=sys.stderr, flush=True)
            last_status = time.monotonic()
        if got == 0:
            if pipeline_id not in client.list_pipelines().pipelines:
                report = client.status(pipeline_id).report
                print(_status_line(report, frames, started), file=sys.stderr, flush=True)
                return totals, report
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="data/media/vtest.avi",
                        help="a file, a camera index (0) or a URL; allowed for this run (see the module docstring)")
    parser.add_argument("--model", default="yolov3-tiny/coco-416")
    parser.add_argument("--max-fps", type=float, default=None)
    parser.add_argument("--workflow", type=Path, default=None,
                        help="a Workflows definition (published JSON format) to run instead of plain detection")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu", "jetson"),
                        help="the worker's device (gpu/jetson need onnxruntime-gpu and CUDA on this host)")
    parser.add_argument("--log-dir", type=Path, default=Path("data/logs"), help="where the processes' logs go")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # before the pipeline started: every process has been stopped
        print("stopped before the pipeline started", file=sys.stderr, flush=True)
        return 130


def _workflow(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise StackError(f"workflow {str(path)!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise StackError(f"workflow {str(path)!r} is not JSON: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    reference = video_reference(args.video)
    allowance = source_allowance(reference, dict(os.environ))
    workflow = _workflow(args.workflow)
    log_dir: Path = args.log_dir
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
        try:  # a Sentinel URL (redis+sentinel://...) works too; the banner never shows a password
            shown = parse_redis_url(redis_url, "REDIS_URL").redacted()
        except RedisUrlError as exc:
            raise StackError(str(exc)) from None
        print(f"redis {shown} | manager 127.0.0.1:{port} | logs in {log_dir}/", file=sys.stderr)
        print(f"api http://127.0.0.1:{api_port} (OpenAPI docs at /docs)", file=sys.stderr)
        print(flower_line, file=sys.stderr)
        # Started first and stopped last, so it sees the worker come online and the pipeline's events.
        flower = stack.enter_context(_process("flower", [PY, "-m", "services.worker.flower"], flower_env, log_dir))
        # Only the manager's environment carries this run's allowance for the named source.
        manager = stack.enter_context(_process("manager", [PY, "-m", "services.manager"], dict(env, **allowance),
                                               log_dir))
        stack.enter_context(_process("api", [PY, "-m", "services.api"], api_env, log_dir))
        worker = stack.enter_context(_process("worker", [PY, "-m", "services.worker", "--queues",
                                                         f"pipelines.{args.device}", "--concurrency", "1",
                                                         "--hostname", "run@%h"], env, log_dir))
        client = ManagerClient("127.0.0.1", port, token=os.environ.get("MANAGER_AUTH_TOKEN") or None)
        payload = newer_init(reference, max_fps=args.max_fps, results_buffer_size=1000, confidence=0.4,
                             model_id=args.model)
        if workflow is not None:
            payload["processing_configuration"]["workflow_specification"] = workflow
        pipeline_id = wait_for_init(client, payload, time.monotonic() + INIT_RETRY_SECONDS,
                                    {"manager": manager, "worker": worker}, log_dir)
        print(f"pipeline {pipeline_id} started on {args.video}", file=sys.stderr, flush=True)
        if flower.poll() is not None:
            print(f"flower exited with status {flower.returncode}; see {log_dir}/flower.log", file=sys.stderr)
        try:
            totals, report = _follow(client, pipeline_id)
        except KeyboardInterrupt:
            print("stopping: terminating the pipeline", file=sys.stderr, flush=True)
            with contextlib.suppress(ProcessesManagerClientError):
                client.terminate(pipeline_id)
            return 0
        except ProcessesManagerClientError as exc:
            raise StackError(f"following pipeline {pipeline_id} failed ({exc.error_type or type(exc).__name__}): "
                             f"{exc}; see {log_dir}/manager.log") from None
        summary = ", ".join(f"{n} {name}" for name, n in totals.most_common(6))
        if report.pipeline_state == "FAILED":
            raise StackError(f"pipeline {pipeline_id} failed: {report.last_error or 'no reason recorded'}; "
                             f"detections seen: {summary or 'none'}; see {log_dir}/worker.log")
        print(f"done: pipeline {pipeline_id} ended; detections seen: {summary}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
