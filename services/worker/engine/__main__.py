"""Runs one pipeline in this process and prints its detections: ``python -m services.worker.engine VIDEO...``.

The engine without the control plane: handy to try a camera or a model, and what the benchmarks
drive. stdout gets one line per frame with detections; stderr a progress line.
"""

import argparse
import collections
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from services.core import keys
from services.core.redaction import redact_reference
from services.infra.redis_connect import sync_client
from services.worker.cores import usable_cores
from services.worker.detection.detector import DetectionParams, Detector
from services.worker.detection.processor import DetectionProcessor
from services.worker.engine.pipeline import InferencePipeline, PipelineConfig
from services.worker.engine.results import RoundResult
from services.worker.engine.sinks import ResultSink
from services.worker.engine.sinks.redis_stream import RedisStreamSink
from services.worker.engine.sinks.udp import UdpSink
from services.worker.engine.source import SourceConfig
from services.worker.models.repository import ModelRepository
from services.worker.settings import WorkerSettings


class ConsoleSink:
    """Prints a line per source frame: ``[src 0 #  101] 5 person, 1 car``."""

    name = "console"

    def write(self, results: Sequence[RoundResult], dropped: int) -> None:
        for result in results:
            for slot in result.present():
                counts = collections.Counter(p["class"] for p in slot.prediction["predictions"])
                summary = ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "nothing"
                print(f"[src {slot.source_id} #{slot.frame_id:>5}] {summary}", flush=True)

    def close(self) -> None:
        sys.stdout.flush()


def _parse_reference(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def _arguments(settings: WorkerSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.worker.engine", description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="+", type=_parse_reference, help="file, camera index or stream URL")
    parser.add_argument("--model", default=settings.default_model_id, help="model_id in the repository")
    parser.add_argument("--repository", default=settings.model_repository, help="model repository directory")
    parser.add_argument("--device", default=settings.device, choices=["cpu", "gpu", "jetson"])
    workers, threads = settings.inference_sizing(usable_cores().usable)
    parser.add_argument("--workers", type=int, default=workers, help="rounds in session.run at once")
    parser.add_argument("--threads", type=int, default=threads, help="onnxruntime intra-op threads per run")
    parser.add_argument("--confidence", type=float, default=0.5)
    parser.add_argument("--max-fps", type=float, default=None)
    parser.add_argument("--redis-url", default=None, help="also XADD results to this Redis")
    parser.add_argument("--pipeline-id", default="local", help="names the results stream with --redis-url")
    parser.add_argument("--udp", default=None, metavar="HOST:PORT", help="also send reference UDP datagrams")
    parser.add_argument("--quiet", action="store_true", help="no per-frame lines, progress only")
    return parser.parse_args()


def _progress(pipeline: InferencePipeline, started: float) -> str:
    report = pipeline.status_report()
    latency = report["latency_reports"][0]["e2e_latency"]
    dropped = sum(sum(m.get("frames_dropped", {}).values()) for m in report["sources_metadata"])
    states = ",".join(m["state"] for m in report["sources_metadata"])
    return (
        f"{report['frames_processed']:>6} frames | {report['inference_throughput']:5.1f} fps | "
        f"e2e {1000 * latency if latency else 0:6.1f} ms | dropped {dropped} | sources {states} | "
        f"{time.monotonic() - started:6.1f} s"
    )


def main() -> None:
    settings = WorkerSettings()
    args = _arguments(settings)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = ModelRepository(args.repository).resolve(args.model)
    detector = Detector(spec, device=args.device, intra_op_threads=args.threads)
    sinks: list[ResultSink] = [] if args.quiet else [ConsoleSink()]
    client = None
    if args.redis_url:
        client = sync_client(args.redis_url, "--redis-url", socket_timeout=settings.redis_socket_timeout,
                             socket_connect_timeout=settings.redis_connect_timeout)
        sinks.append(RedisStreamSink(client, args.pipeline_id, maxlen=10_000))
    if args.udp:
        host, port = args.udp.rsplit(":", 1)
        sinks.append(UdpSink(host, int(port), on_update=lambda update: None, allowed=settings.udp_sink_networks()))
    config = PipelineConfig(
        video_references=tuple(args.video),
        source=SourceConfig(max_fps=args.max_fps),
        inference_workers=args.workers,
    )
    processor = DetectionProcessor(detector, DetectionParams(confidence=args.confidence))
    pipeline = InferencePipeline(config, processor, sinks)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"model {spec.model_id} on {args.device}; sources: "
          f"{', '.join(str(redact_reference(v)) for v in args.video)}", file=sys.stderr)
    started = time.monotonic()
    pipeline.start()
    while not pipeline.wait(timeout=1.0) and not stop.is_set():
        print(_progress(pipeline, started), file=sys.stderr, flush=True)
    if not pipeline.wait(0):
        pipeline.terminate()
    print(_progress(pipeline, started) + f" | {pipeline.state.value}", file=sys.stderr, flush=True)
    if client is not None:
        print(f"results stream: {keys.results_stream(args.pipeline_id)} "
              f"({client.xlen(keys.results_stream(args.pipeline_id))} entries)", file=sys.stderr)
        client.close()


if __name__ == "__main__":
    main()
