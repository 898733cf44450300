"""``vsim``: the operator's command line for the stream manager.

Every command but ``watch`` is one request to the manager's TCP endpoint through
:class:`~services.client.tcp.ManagerClient`, so the command line speaks exactly what any reference
client speaks and needs nothing but the manager's address. ``watch`` reads the pipeline's results
stream in Redis directly: it follows results live, as they are written, without taking them from
CONSUME_RESULT's cursor.

Human output goes to stdout, diagnostics to stderr, and every failure is one ``error: ...`` line
on stderr with an exit code that says what kind of failure it was (:data:`EXIT_CODES`). Importing
this module loads neither OpenCV, onnxruntime nor Celery: it runs on any operator's laptop.
"""

import argparse
import collections
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import redis
from pydantic import BaseModel

from services.client.addresses import parse_addresses
from services.client.errors import (
    CommunicationProtocolError,
    ConnectivityError,
    ProcessesManagerClientError,
)
from services.client.models import StatusReport, StatusUpdate, WorkerInfo
from services.client.payloads import detection_workflow, workflow_init
from services.client.tcp import DEFAULT_INIT_TIMEOUT, DEFAULT_TIMEOUT, ManagerClient, default_address
from services.core import keys
from services.core.records import PipelineState
from services.core.redaction import redact_reference, redact_text
from services.core.results import decode_entry, detections_in, entry_epoch
from services.infra.redis_connect import RedisUrlError, sync_client

EXIT_OK = 0
EXIT_REFUSED = 1  # the manager answered with a failure (not_found, invalid_payload, ...), or watch: no such pipeline
EXIT_USAGE = 2  # bad arguments or an unreadable payload file (argparse's own code for usage errors)
EXIT_UNREACHABLE = 3  # the manager or Redis could not be reached, timed out or answered garbage
EXIT_BROKEN_PIPE = 141  # stdout closed by the reader (`vsim watch ID | head`), as a shell reports SIGPIPE
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES = f"""exit codes:
  {EXIT_OK}    success (watch: also when it stopped by itself: pipeline over, --count or --timeout reached)
  {EXIT_REFUSED}    the manager refused the command (not_found, invalid_payload, operation_error, ...);
       watch: the pipeline does not exist
  {EXIT_USAGE}    usage error: bad arguments, unreadable or non-JSON payload file
  {EXIT_UNREACHABLE}    the manager or Redis is unreachable, timed out, or broke the protocol
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_BROKEN_PIPE}  stdout was closed by its reader (e.g. `| head`)"""

DEFAULT_MODEL_ID = "yolov3-tiny/coco-416"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_EVENTS = 5
WATCH_BLOCK_SECONDS = 1.0  # longest XREAD BLOCK: how often watch looks whether the pipeline is over
WATCH_BATCH = 100

FILLING_STRATEGIES = ("WAIT", "DROP_OLDEST", "DROP_LATEST", "ADAPTIVE_DROP_OLDEST", "ADAPTIVE_DROP_LATEST")
CONSUMPTION_STRATEGIES = ("LAZY", "EAGER")


class CliError(Exception):
    """A failure the command line reports as one ``error:`` line and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# argument parsing


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _udp_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:9999
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _manager_addresses(text: str) -> tuple[tuple[str, int], ...]:
    try:
        return parse_addresses(text, default_address()[1])  # a host alone: $STREAM_MANAGER_PORT or 7070
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _video_reference(text: str) -> str | int:
    """A camera index stays an integer on the wire (the reference opens ``cv2.VideoCapture(0)``)."""
    return int(text) if text.isdigit() else text


def _subparser(commands: Any, name: str, summary: str, examples: str,
               description: str | None = None) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description or summary, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"examples:\n{examples}\n\n{EXIT_CODES}")
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the manager's reply as JSON instead")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsim", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start, inspect, control and follow the stream manager's pipelines.",
        epilog="examples:\n"
               "  vsim start --video rtsp://user:pass@cam/stream --max-fps 5\n"
               "  vsim list\n"
               "  vsim status 3f0c...\n"
               "  vsim --host 10.0.0.5 terminate $(vsim --host 10.0.0.5 list)\n"
               "  vsim --managers 10.0.0.5:7070,10.0.0.6:7070 list\n"
               "  vsim watch 3f0c... --format table\n"
               "  vsim workflow put acme people people.json\n"
               "  vsim drain cpu1@host --wait                 # before stopping a worker (rolling upgrades)\n\n"
               "Global options go before the command. `vsim COMMAND --help` shows each command's options.\n\n"
               + EXIT_CODES)
    parser.add_argument("--host", default=None,
                        help="manager host (default: $STREAM_MANAGER_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="manager TCP port (default: $STREAM_MANAGER_PORT or 7070)")
    parser.add_argument("--managers", type=_manager_addresses, default=None, metavar="HOST:PORT,...",
                        help="several managers sharing one Redis, comma-separated: each command goes to the first "
                             "that accepts a connection (default: $STREAM_MANAGER_ADDRESSES; replaces --host/--port)")
    parser.add_argument("--token", default=None,
                        help="shared token when the manager requires one (default: $STREAM_MANAGER_TOKEN)")
    parser.add_argument("--timeout", type=_positive_float, default=None, metavar="SECONDS",
                        help=f"longest wait for the manager's reply (default: {DEFAULT_TIMEOUT:g} s, "
                             f"start {DEFAULT_INIT_TIMEOUT:g} s); for watch, Redis' connect timeout")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    start = _subparser(
        commands, "start", "start a pipeline; prints its id",
        "  vsim start --video data/media/vtest.avi --max-fps 5\n"
        "  vsim start --video rtsp://user:pass@cam/stream --video 0 --confidence 0.4 --device gpu\n"
        "  vsim start --video cam.mp4 --udp 127.0.0.1:9999        # older generation, results as UDP\n"
        "  ID=$(vsim start --file payload.json)                     # a raw INIT payload, either generation\n"
        "  cat payload.json | vsim start --file -",
        description="Start a pipeline and print its id (only the id, so scripts can capture it).\n"
                    "Built from the flags (the newer INIT generation, results kept in Redis for consume/watch;\n"
                    "with --udp the older generation, results sent as UDP datagrams), or sent as written\n"
                    "from a JSON file with --file.")
    start.add_argument("--video", action="append", type=_video_reference, metavar="REFERENCE",
                       help="video file, stream URL or camera index; repeat for several sources")
    start.add_argument("--file", metavar="PATH",
                       help="send this JSON INIT payload (either generation) instead; '-' reads stdin")
    start.add_argument("--model", help=f"model_id 'project/version' (default: {DEFAULT_MODEL_ID})")
    start.add_argument("--max-fps", type=_positive_float, metavar="FPS",
                       help="frames per second per source (default: all)")
    start.add_argument("--confidence", type=_fraction, metavar="0..1",
                       help="minimum detection confidence (manager default 0.5)")
    start.add_argument("--iou-threshold", type=_fraction, metavar="0..1",
                       help="NMS IoU threshold (manager default 0.5)")
    start.add_argument("--device", help="worker queue pipelines.<device>: cpu, gpu, jetson... (default: manager's)")
    start.add_argument("--buffer-filling", type=str.upper, choices=FILLING_STRATEGIES,
                       help="source buffer filling strategy (default: WAIT for files, DROP_OLDEST for live)")
    start.add_argument("--buffer-consumption", type=str.upper, choices=CONSUMPTION_STRATEGIES,
                       help="source buffer consumption strategy (default: LAZY for files, EAGER for live)")
    start.add_argument("--processing-mode", choices=("every_frame", "freshest"),
                       help="every_frame: nothing dropped (files); freshest: always the newest frame (live)")
    start.add_argument("--max-staleness", type=_positive_float, metavar="SECONDS",
                       help="with freshest: never run inference on a frame older than this (dropped, counted)")
    start.add_argument("--udp", type=_udp_address, metavar="HOST:PORT",
                       help="older generation: send each result as a UDP datagram to HOST:PORT")
    start.add_argument("--results-buffer-size", type=_positive_int, metavar="N",
                       help="results kept in Redis for consume/watch (manager default 64; not with --udp)")
    start.add_argument("--consumption-timeout", type=_positive_float, metavar="SECONDS",
                       help="terminate the pipeline when nobody consumed for this long (not with --udp)")
    start.add_argument("--api-key", default=os.environ.get("ROBOFLOW_API_KEY") or None,
                       help="api_key of the payload (default: $ROBOFLOW_API_KEY); with --file, only "
                            "filled in when the payload has none")
    _json_flag(start)

    listing = _subparser(commands, "list", "list the ids of live pipelines, one per line",
                         "  vsim list\n  vsim list --json")
    _json_flag(listing)

    status = _subparser(commands, "status", "show a pipeline's state, sources, latencies and recent events",
                        "  vsim status 3f0c...\n  vsim status 3f0c... --events 20\n"
                        "  vsim status 3f0c... --json | jq .report.inference_throughput")
    status.add_argument("pipeline_id", metavar="ID", help="pipeline id (from start or list)")
    status.add_argument("--events", type=int, default=DEFAULT_EVENTS, metavar="N",
                        help="how many of the latest status events to show (default: %(default)s)")
    _json_flag(status)

    for name, summary in (("pause", "mute pipelines: results stop, sources keep being read (the reference's "
                                    "pause)"),
                          ("resume", "resume muted pipelines"),
                          ("terminate", "terminate pipelines (works from every state)")):
        command = _subparser(commands, name, summary, f"  vsim {name} 3f0c...\n  vsim {name} $(vsim list)")
        command.add_argument("pipeline_ids", nargs="+", metavar="ID",
                             help="pipeline ids; each is handled even when another is refused")
        _json_flag(command)

    consume = _subparser(
        commands, "consume", "take the oldest unread results (CONSUME_RESULT)",
        "  vsim consume 3f0c...                       # the oldest unread result, as JSON\n"
        "  vsim consume 3f0c... --max 100 --exclude image\n"
        "  vsim consume 3f0c... --max 100 --format table",
        description="Take the oldest unread results through the manager (CONSUME_RESULT): each result\n"
                    "is returned once, to whichever client consumes first. `vsim watch` follows results\n"
                    "without taking them.")
    consume.add_argument("pipeline_id", metavar="ID", help="pipeline id")
    consume.add_argument("--max", type=_positive_int, default=1, metavar="N", dest="max_entries",
                         help="take up to N results at once (max_entries; the manager caps it at 1000)")
    consume.add_argument("--exclude", action="append", default=[], metavar="FIELD",
                         help="drop this top-level field from every output (e.g. image); repeatable")
    consume.add_argument("--format", choices=("json", "table"), default="json",
                         help="json: the manager's reply; table: one line per source per frame "
                              "(default: %(default)s)")

    watch = _subparser(
        commands, "watch", "follow a pipeline's results live from its Redis Stream (does not consume them)",
        "  vsim watch 3f0c...                                  # new results, one JSON object per line\n"
        "  vsim watch 3f0c... --format table                   # 12:00:01.123 src 0 #  101  5 person, 1 car\n"
        "  vsim watch 3f0c... --from-start --count 10\n"
        "  vsim watch 3f0c... --redis-url redis://redis:6379/0 --timeout 30 | jq .frames_metadata",
        description="Follow a pipeline's results as they are written, straight from its Redis Stream\n"
                    f"({keys.results_stream('<ID>')}), with XREAD. It reads without consuming: the manager's\n"
                    "CONSUME_RESULT cursor does not move and every other consumer still sees every result.\n"
                    "It stops by itself (exit 0) once the pipeline has ended, failed or been terminated and\n"
                    "every result it wrote has been shown, after --count results, or after --timeout seconds\n"
                    "without a new result; a pipeline id Redis does not know is an error (exit 1).\n"
                    "A reader slower than the pipeline misses results the stream's bound has trimmed.")
    watch.add_argument("pipeline_id", metavar="ID", help="pipeline id")
    watch.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
                       help=f"the cluster's Redis (default: $REDIS_URL or {DEFAULT_REDIS_URL})")
    watch.add_argument("--format", choices=("jsonl", "table"), default="jsonl",
                       help="jsonl: one JSON object per result (pipeline_id, id, epoch, frames_metadata, "
                            "outputs); "
                            "table: one line per source per frame (default: %(default)s)")
    watch.add_argument("--from-start", action="store_true",
                       help="begin with the results still buffered (default: only results newer than now)")
    watch.add_argument("--count", type=_positive_int, metavar="N", help="stop after N results")
    watch.add_argument("--timeout", type=_positive_float, metavar="SECONDS", dest="idle_timeout",
                       help="stop (exit 0) after this many seconds without a new result (default: never)")
    watch.add_argument("--exclude", action="append", default=[], metavar="FIELD",
                       help="drop this top-level field from every output (jsonl); repeatable")
    _workflow_parser(commands)
    _worker_parsers(commands)
    return parser


def _worker_parsers(commands: Any) -> None:
    workers = _subparser(
        commands, "workers", "list the workers: pipelines, slots, drain progress (our extension)",
        "  vsim workers            # HOSTNAME  STATE  PIPELINES  SLOTS  DRAIN\n  vsim workers --json")
    _json_flag(workers)
    drain = _subparser(
        commands, "drain", "drain a worker: it takes no new pipeline, its pipelines move to other workers",
        "  vsim drain cpu1@host                 # starts the drain, prints its progress\n"
        "  vsim drain cpu1@host --wait          # ... and waits until the worker can be stopped\n"
        "  vsim drain cpu1@host --wait && docker compose restart worker-1 && vsim undrain cpu1@host",
        description="Drain a worker (rolling upgrades): admission skips it, it stops consuming its queue, and\n"
                    "the manager moves its pipelines to other workers one at a time (each restarted there with\n"
                    "a new epoch; a WebRTC pipeline cannot move and is left running). With --wait, the command\n"
                    "returns once the worker runs no movable pipeline (exit 0), or fails after --wait-timeout.")
    drain.add_argument("hostname", metavar="HOSTNAME", help="the worker's registered name (see `vsim workers`)")
    drain.add_argument("--wait", action="store_true", help="wait until the drain is done, showing its progress")
    drain.add_argument("--wait-timeout", type=_positive_float, default=600.0, metavar="SECONDS",
                       help="longest --wait (default: %(default)s s)")
    _json_flag(drain)
    undrain = _subparser(commands, "undrain", "end a worker's drain: it takes new pipelines again",
                         "  vsim undrain cpu1@host")
    undrain.add_argument("hostname", metavar="HOSTNAME")
    _json_flag(undrain)


def _workflow_parser(commands: Any) -> None:
    workflow = _subparser(
        commands, "workflow", "store, list, show and delete named workflows (our extension of the protocol)",
        "  vsim workflow put acme people people.json          # prints: created acme/people (or replaced)\n"
        "  cat people.json | vsim workflow put acme people -\n"
        "  vsim workflow list                                  # WORKSPACE/ID  UPDATED_AT, one per line\n"
        "  vsim workflow list acme\n"
        "  vsim workflow get acme people > people.json          # the definition, as JSON\n"
        "  vsim workflow delete acme people",
        description="Named Workflows definitions, stored by the manager (in Redis) once they compile.\n"
                    "An INIT names one with processing_configuration.workspace_name + workflow_id.")
    actions = workflow.add_subparsers(dest="workflow_command", required=True, metavar="ACTION")
    put = _subparser(actions, "put", "store (or replace) a definition from a JSON file ('-': stdin)",
                     "  vsim workflow put acme people people.json")
    put.add_argument("workspace_name", metavar="WORKSPACE")
    put.add_argument("workflow_id", metavar="ID")
    put.add_argument("file", metavar="FILE", help="the definition (a JSON object); '-' reads stdin")
    _json_flag(put)
    listing = _subparser(actions, "list", "list named workflows: WORKSPACE/ID and when each was put",
                         "  vsim workflow list\n  vsim workflow list acme --json")
    listing.add_argument("workspace_name", metavar="WORKSPACE", nargs="?", help="only this workspace's")
    _json_flag(listing)
    get = _subparser(actions, "get", "print a named workflow's definition as JSON",
                     "  vsim workflow get acme people > people.json")
    get.add_argument("workspace_name", metavar="WORKSPACE")
    get.add_argument("workflow_id", metavar="ID")
    get.add_argument("--json", action="store_true", help="print the manager's whole reply instead")
    delete = _subparser(actions, "delete", "delete a named workflow", "  vsim workflow delete acme people")
    delete.add_argument("workspace_name", metavar="WORKSPACE")
    delete.add_argument("workflow_id", metavar="ID")
    _json_flag(delete)


# ---------------------------------------------------------------------------------------------
# output helpers


def _out(line: str = "") -> None:
    print(line, flush=True)


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _print_json(value: Any) -> None:
    _out(json.dumps(value, indent=2))


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _local_time(timestamp: str | None) -> str:
    """``HH:MM:SS.mmm`` in the operator's time zone; the raw text when it is not ISO-8601."""
    if not timestamp:
        return "-"
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _summary(output: dict[str, Any]) -> str:
    """Detections per class in one source's output (a prediction dict, or a workflow's outputs)."""
    found = detections_in(output)
    if found is None:
        return "-"  # the predictions were excluded, or a workflow without detection outputs
    counts = collections.Counter(str(p.get("class", "?")) for p in found)
    return ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "nothing"


def frame_lines(outputs: Sequence[Any], frames_metadata: Sequence[Any]) -> list[str]:
    """One line per source that had a frame in this result: ``12:00:01.123 src 0 #  101  5 person, 1 car``."""
    lines = []
    for output, metadata in zip(outputs, frames_metadata, strict=False):
        if not isinstance(output, dict) or not isinstance(metadata, dict):
            continue  # this source contributed no frame to the round
        lines.append(f"{_local_time(metadata.get('frame_timestamp'))} src {metadata.get('source_id', '?')} "
                     f"#{metadata.get('frame_id', '?'):>5}  {_summary(output)}")
    return lines


def _without(outputs: Sequence[Any], excluded: Iterable[str]) -> list[Any]:
    drop = set(excluded)
    if not drop:
        return list(outputs)
    return [{k: v for k, v in o.items() if k not in drop} if isinstance(o, dict) else o for o in outputs]


def _columns(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> list[str]:
    """Rows aligned under their headers; the column indices in ``right`` are right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        cells = (cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row))
        return "  ".join(cells).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.1f}"


def _event_detail(update: StatusUpdate) -> str:
    payload = update.payload
    if update.event_type == "SOURCE_STATE_UPDATE":
        return (f"source {payload.get('source_id', '?')}: {payload.get('previous_state', '?')} -> "
                f"{payload.get('new_state', '?')}")
    detail = " ".join(f"{key}={value}" for key, value in payload.items())
    return redact_text(detail)


def status_table(pipeline_id: str, report: StatusReport, events: int) -> list[str]:
    """The human view of a status report. References and errors are redacted once more here: a report
    from an older worker may not have been, and this text lands in terminals and tickets."""
    lines = [
        f"pipeline    {pipeline_id}",
        f"state       {report.pipeline_state or '-'}",
        f"restarts    {report.restarts if report.restarts is not None else '-'}",
        f"last error  {' '.join(redact_text(report.last_error).split()) if report.last_error else '-'}",
        f"throughput  {report.inference_throughput:.1f} fps",
    ]
    if report.results_dropped:
        lines.append(f"dropped     {report.results_dropped} results trimmed unread")
    latencies = {latency.source_id: latency for latency in report.latency_reports}
    rows = []
    for source in report.sources_metadata:
        latency = latencies.get(source.source_id)
        reference = "-" if source.source_reference is None else str(redact_reference(source.source_reference))
        extra = source.model_extra or {}
        if extra.get("offline_since"):  # a live source between reconnect attempts
            reference += (f"  (offline since {_local_time(str(extra['offline_since']))}, "
                          f"{extra.get('reconnect_attempts', '?')} reconnect attempts)")
        rows.append([
            "-" if source.source_id is None else str(source.source_id),
            source.state or "-",
            _ms(latency.frame_decoding_latency if latency else None),
            _ms(latency.inference_latency if latency else None),
            _ms(latency.e2e_latency if latency else None),
            reference,
        ])
    lines.append("")
    if rows:
        lines.extend(_columns(("source", "state", "decode ms", "inference ms", "e2e ms", "reference"), rows,
                              right=frozenset({2, 3, 4})))
    else:
        lines.append("no sources reported yet")
    recent = report.video_source_status_updates[-events:] if events > 0 else []
    if recent:
        lines.extend(["", "recent events"])
        lines.extend(_columns(
            ("time", "level", "event", "detail"),
            [[_local_time(u.timestamp), logging.getLevelName(u.severity), u.event_type, _event_detail(u)]
             for u in recent]))
    return lines


# ---------------------------------------------------------------------------------------------
# start: payloads


_BUILD_FLAGS = ("video", "model", "max_fps", "confidence", "iou_threshold", "device", "buffer_filling",
                "buffer_consumption", "processing_mode", "max_staleness", "udp", "results_buffer_size",
                "consumption_timeout")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _references(videos: list[str | int]) -> str | int | list[str | int]:
    return videos[0] if len(videos) == 1 else list(videos)


def _older_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The flat (enterprise) generation: the only one with a UDP sink."""
    host, port = args.udp
    payload: dict[str, Any] = {
        "model_id": args.model or DEFAULT_MODEL_ID,
        "video_reference": _references(args.video),
        "sink_configuration": {"type": "udp_sink", "host": host, "port": port},
    }
    model = {k: v for k, v in (("confidence", args.confidence), ("iou_threshold", args.iou_threshold))
             if v is not None}
    if model:
        payload["model_configuration"] = {"type": "object-detection", **model}
    for key, value in (("max_fps", args.max_fps), ("source_buffer_filling_strategy", args.buffer_filling),
                       ("source_buffer_consumption_strategy", args.buffer_consumption),
                       ("processing_mode", args.processing_mode), ("max_staleness", args.max_staleness),
                       ("device", args.device), ("api_key", args.api_key)):
        if value is not None:
            payload[key] = value
    return payload


def _newer_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The workflow generation with an inline one-step object-detection workflow, as its clients send it."""
    video: dict[str, Any] = {"video_reference": _references(args.video)}
    for key, value in (("max_fps", args.max_fps), ("source_buffer_filling_strategy", args.buffer_filling),
                       ("source_buffer_consumption_strategy", args.buffer_consumption),
                       ("processing_mode", args.processing_mode), ("max_staleness", args.max_staleness)):
        if value is not None:
            video[key] = value
    params = {key: value for key, value in (("confidence", args.confidence), ("iou_threshold", args.iou_threshold))
              if value is not None}
    sink = {} if args.results_buffer_size is None else {"results_buffer_size": args.results_buffer_size}
    payload = workflow_init(video, detection_workflow(args.model or DEFAULT_MODEL_ID, **params), sink)
    del payload["type"]  # the client adds it when it sends
    for key, value in (("consumption_timeout", args.consumption_timeout), ("device", args.device),
                       ("api_key", args.api_key)):
        if value is not None:
            payload[key] = value
    return payload


def _read_payload(path: str, stdin: TextIO, what: str = "payload") -> dict[str, Any]:
    name = f"{what} stdin" if path == "-" else f"{what} {path}"
    try:
        text = stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {name}: {exc}", EXIT_USAGE) from exc
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{name} is not valid JSON: {exc}", EXIT_USAGE) from exc
    if not isinstance(payload, dict):
        raise CliError(f"{name} must be a JSON object, got {type(payload).__name__}", EXIT_USAGE)
    return payload


def init_payload(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 stdin: TextIO | None = None) -> dict[str, Any]:
    """The INIT payload ``start`` sends. Contradictory flags are usage errors, not silently dropped."""
    if args.file is not None:
        given = [_flag(name) for name in _BUILD_FLAGS if getattr(args, name) is not None]
        if given:
            parser.error(f"--file sends the payload as written; it cannot be combined with {', '.join(given)}")
        payload = _read_payload(args.file, stdin or sys.stdin)
        if args.api_key is not None and not payload.get("api_key"):
            payload["api_key"] = args.api_key
        return payload
    if not args.video:
        parser.error("give at least one --video (or --file with a payload)")
    if args.udp is not None:
        wrong = [_flag(name) for name in ("results_buffer_size", "consumption_timeout")
                 if getattr(args, name) is not None]
        if wrong:
            parser.error(f"{', '.join(wrong)} apply to results kept in Redis; --udp sends them as datagrams")
        return _older_payload(args)
    return _newer_payload(args)


# ---------------------------------------------------------------------------------------------
# commands


def _client(args: argparse.Namespace) -> ManagerClient:
    addresses = getattr(args, "managers", None)
    if args.timeout is None:
        return ManagerClient(args.host, args.port, token=args.token, addresses=addresses)
    return ManagerClient(args.host, args.port, timeout=args.timeout, init_timeout=args.timeout, token=args.token,
                         addresses=addresses)


def _start(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    payload = init_payload(parser, args)
    reply = _client(args).initialise(payload)
    if args.json:
        _print_json(_dump(reply))
    else:
        _out(str(reply.context.pipeline_id))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    reply = _client(args).list_pipelines()
    if args.json:
        _print_json(_dump(reply))
    else:
        for pipeline_id in reply.pipelines:
            _out(pipeline_id)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    reply = _client(args).status(args.pipeline_id)
    if args.json:
        _print_json(_dump(reply))
    else:
        for line in status_table(args.pipeline_id, reply.report, args.events):
            _out(line)
    return EXIT_OK


_DONE = {"pause": "paused", "resume": "resumed", "terminate": "terminated"}


def _control(args: argparse.Namespace) -> int:
    """pause/resume/terminate every id given; a refused id is reported and the others still handled."""
    client = _client(args)
    method: Callable[[str], BaseModel] = getattr(client, args.command)
    code = EXIT_OK
    for pipeline_id in args.pipeline_ids:
        try:
            reply = method(pipeline_id)
        except (ConnectivityError, CommunicationProtocolError):
            raise  # the manager is gone: the remaining ids would fail the same way
        except ProcessesManagerClientError as exc:
            _note(_error_line(exc))
            code = EXIT_REFUSED
            continue
        if args.json:
            _print_json(_dump(reply))
        else:
            _out(f"{_DONE[args.command]} {pipeline_id}")
    return code


def _consume(args: argparse.Namespace) -> int:
    reply = _client(args).consume(args.pipeline_id, args.exclude, args.max_entries)
    if args.format == "json":
        _print_json(reply.model_dump(mode="json", exclude_none=True))
        return EXIT_OK
    rounds = [(entry.outputs, entry.frames_metadata) for entry in reply.entries or []]
    if reply.entries is None and reply.outputs:  # max_entries 1: the reference's single-result reply
        rounds = [(reply.outputs, reply.frames_metadata)]
    for outputs, frames_metadata in rounds:
        metadata = [m.model_dump(mode="json") if m is not None else None for m in frames_metadata]
        for line in frame_lines(outputs, metadata):
            _out(line)
    if reply.dropped:
        _note(f"{reply.dropped} results were trimmed unread since the last consume")
    return EXIT_OK


def _workflow(args: argparse.Namespace) -> int:
    """``vsim workflow put|list|get|delete``: one manager request each."""
    client = _client(args)
    action = args.workflow_command
    reply: BaseModel
    if action == "put":
        reply = client.put_workflow(args.workspace_name, args.workflow_id,
                                    _read_payload(args.file, sys.stdin, "workflow"))
        human = [f"{'created' if reply.created else 'replaced'} {args.workspace_name}/{args.workflow_id}"]
    elif action == "list":
        reply = client.list_workflows(args.workspace_name)
        human = [f"{w.workspace_name}/{w.workflow_id}  {w.updated_at}" for w in reply.workflows]
    elif action == "get":
        reply = client.get_workflow(args.workspace_name, args.workflow_id)
        human = [json.dumps(reply.specification, indent=2)]
    else:
        reply = client.delete_workflow(args.workspace_name, args.workflow_id)
        human = [f"deleted {args.workspace_name}/{args.workflow_id}"]
    if args.json:
        _print_json(_dump(reply))
    else:
        for line in human:
            _out(line)
    return EXIT_OK


def worker_line(worker: WorkerInfo) -> str:
    """``HOSTNAME  STATE  PIPELINES  SLOTS  DRAIN`` for ``vsim workers``."""
    state = "stopped" if not worker.registered else "draining" if worker.draining else "serving"
    slots = f"{worker.busy_slots}/{worker.concurrency}" if worker.concurrency is not None else "-"
    line = f"{worker.hostname}  {state}  {worker.pipelines} pipelines  slots {slots}"
    drain = worker.drain
    if drain is not None:
        line += f"  drain: {'done' if drain.done else 'in progress'}, {drain.moved} moved, {drain.pipelines_left} left"
        if drain.moving:
            line += f", moving {drain.moving}"
        if drain.unmovable:
            line += f", {len(drain.unmovable)} cannot move"
        if drain.waiting:
            line += f" (waiting: {drain.waiting})"
    return line


def _workers(args: argparse.Namespace) -> int:
    reply = _client(args).list_workers()
    if args.json:
        _print_json(_dump(reply))
    else:
        for worker in reply.workers:
            _out(worker_line(worker))
    return EXIT_OK


def _drain(args: argparse.Namespace) -> int:
    """``vsim drain`` / ``vsim undrain``: one request, then (``--wait``) the listing each second until done."""
    client = _client(args)
    if args.command == "undrain":
        reply = client.undrain_worker(args.hostname)
        if args.json:
            _print_json(_dump(reply))
        else:
            _out(worker_line(reply.worker))
        return EXIT_OK
    worker = client.drain_worker(args.hostname).worker
    shown = worker_line(worker)
    if args.wait:
        _note(shown)
    deadline = time.monotonic() + args.wait_timeout
    while args.wait and not (worker.drain is not None and worker.drain.done):
        if time.monotonic() > deadline:
            raise CliError(f"drain of {args.hostname} not done after {args.wait_timeout:g} s: {shown}", EXIT_REFUSED)
        time.sleep(1.0)
        worker = next((w for w in client.list_workers().workers if w.hostname == args.hostname), worker)
        if worker_line(worker) != shown:
            shown = worker_line(worker)
            _note(shown)
    if args.json:
        _print_json(worker.model_dump(mode="json"))
    else:
        _out(worker_line(worker))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# watch


def _redis_problem(url: str, exc: redis.RedisError) -> CliError:
    return CliError(f"Redis at {redact_reference(url)} unreachable or failing ({exc})", EXIT_UNREACHABLE)


class _Watcher:
    """Follows one results stream with XREAD from a remembered id, so nothing written between two
    reads is skipped (re-reading from ``$`` each time would be)."""

    def __init__(self, client: redis.Redis, args: argparse.Namespace) -> None:
        self.client = client
        self.args = args
        self.pipeline_id: str = args.pipeline_id
        self.stream = keys.results_stream(self.pipeline_id)
        self.record = keys.pipeline_record(self.pipeline_id)
        self.shown = 0

    def state(self) -> str | None:
        """The record's state; None once the record is gone (retired past its TTL, or a failed init)."""
        value = self.client.hget(self.record, "state")
        return None if value is None else (value.decode() if isinstance(value, bytes) else str(value))

    def start_id(self) -> str:
        if self.args.from_start:
            return "0-0"
        last: Any = self.client.xrevrange(self.stream, count=1)
        return _text(last[0][0]) if last else "0-0"  # "$" resolved once: the first read misses nothing

    def read(self, after: str, block_seconds: float | None) -> list[tuple[str, Any]]:
        block = None if block_seconds is None else max(1, int(block_seconds * 1000))  # 0 would block forever
        batch: Any = self.client.xread({self.stream: after}, count=WATCH_BATCH, block=block)
        if not batch:
            return []
        # RESP2 answers [[stream, entries]], RESP3 {stream: entries}: one stream was asked for either way.
        entries = next(iter(batch.values())) if isinstance(batch, dict) else batch[0][1]
        return [(_text(entry_id), fields) for entry_id, fields in entries]

    def show(self, entry_id: str, fields: Any) -> bool:
        """Prints one entry; True when --count has been reached."""
        outputs, frames_metadata = decode_entry(fields)
        outputs = _without(outputs, self.args.exclude)
        if self.args.format == "jsonl":
            item: dict[str, Any] = {"pipeline_id": self.pipeline_id, "id": entry_id}
            epoch = entry_epoch(fields)
            if epoch is not None:  # frame ids start again when a restarted task (a new epoch) takes over
                item["epoch"] = epoch
            item.update(frames_metadata=frames_metadata, outputs=outputs)
            _out(json.dumps(item, separators=(",", ":")))
        else:
            for line in frame_lines(outputs, frames_metadata):
                _out(line)
        self.shown += 1
        return self.args.count is not None and self.shown >= self.args.count

    def run(self) -> int:
        if self.state() is None:
            raise CliError(f"not_found: pipeline {self.pipeline_id} does not exist in Redis at "
                           f"{redact_reference(self.args.redis_url)}", EXIT_REFUSED)
        last_id = self.start_id()
        idle_timeout: float | None = self.args.idle_timeout
        last_entry_at = time.monotonic()
        while True:
            block = WATCH_BLOCK_SECONDS
            if idle_timeout is not None:
                block = min(block, max(0.001, idle_timeout - (time.monotonic() - last_entry_at)))
            entries = self.read(last_id, block)
            for entry_id, fields in entries:
                last_id = entry_id
                if self.show(entry_id, fields):
                    return EXIT_OK
            if entries:
                last_entry_at = time.monotonic()
                continue
            state = self.state()
            if state is None or _is_final(state):
                return self.drain(last_id, state)
            if idle_timeout is not None and time.monotonic() - last_entry_at >= idle_timeout:
                _note(f"watch: no new result for {idle_timeout:g} s; pipeline {self.pipeline_id} is {state}")
                return EXIT_OK

    def drain(self, last_id: str, state: str | None) -> int:
        """Results written between the last read and the record turning final are still shown."""
        while entries := self.read(last_id, None):
            for entry_id, fields in entries:
                last_id = entry_id
                if self.show(entry_id, fields):
                    return EXIT_OK
        ending = "no longer exists" if state is None else f"is {state}"
        _note(f"watch: pipeline {self.pipeline_id} {ending}; {self.shown} results shown")
        return EXIT_OK


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _is_final(state: str) -> bool:
    try:
        return PipelineState(state).is_final
    except ValueError:  # a state this client does not know: a newer manager's, not an end
        return False


def _watch(args: argparse.Namespace) -> int:
    connect_timeout = args.timeout or 5.0
    try:
        client = sync_client(args.redis_url, "--redis-url", socket_connect_timeout=connect_timeout,
                             socket_timeout=connect_timeout + WATCH_BLOCK_SECONDS)
    except RedisUrlError as exc:  # a malformed URL (plain or Sentinel); the message names it, redacted
        raise CliError(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise CliError(f"bad --redis-url {redact_reference(args.redis_url)}: {exc}", EXIT_USAGE) from exc
    try:
        return _Watcher(client, args).run()
    except redis.RedisError as exc:
        raise _redis_problem(args.redis_url, exc) from exc
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# entry point


def _error_line(exc: ProcessesManagerClientError) -> str:
    if isinstance(exc, ConnectivityError):
        return f"error: {exc}"
    if isinstance(exc, CommunicationProtocolError):
        return f"error: protocol error: {exc}"
    return f"error: {exc.error_type or 'failure'}: {exc}"


def _exit_code(exc: ProcessesManagerClientError) -> int:
    return EXIT_UNREACHABLE if isinstance(exc, ConnectivityError | CommunicationProtocolError) else EXIT_REFUSED


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "start":
        return _start(args, parser)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "list": _list, "status": _status, "pause": _control, "resume": _control, "terminate": _control,
        "consume": _consume, "watch": _watch, "workflow": _workflow,
        "workers": _workers, "drain": _drain, "undrain": _drain,
    }
    return handlers[args.command](args)


def _fail(message: str, code: int) -> int:
    _note(f"error: {message}")
    return code


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns its exit code (see :data:`EXIT_CODES`). Usage errors exit via argparse (2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args, parser)
    except ProcessesManagerClientError as exc:
        _note(_error_line(exc))
        return _exit_code(exc)
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        _note("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """After the reader went away, the interpreter's final flush of stdout must not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured in tests)
        pass
