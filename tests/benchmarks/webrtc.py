"""WebRTC pipelines: glass-to-glass latency on loopback, frame sent -> its annotated frame received.

The real stack in processes (redis-server, `python -m services.manager`, one `python -m services.worker`
with one slot, the inference service on); this process is the peer (tests/support/webrtc_peer.py, aiortc):
it streams vtest.avi's frames (768x576) at 15 and 30 fps, each stamped with its index in a band of
blocks, to a WEBRTC pipeline running detect -> draw boxes (the annotated image comes back as video,
the detections on the data channel). A frame that comes back is matched with the one sent by its stamp;
latency = its arrival - the moment its frame left the peer's track (both on this host's clock), so it
includes both VP8 encodes and decodes, the pipeline and the network stack. Frames sent but never
received back are dropped (realtime mode drops stale frames on purpose: the pipeline keeps up with the
freshest). CPU in cores over the window: the worker's whole tree, and this process (the peer: the load
generator, two VP8 codecs of its own).

Usage: ``python -m tests.benchmarks.webrtc [--output docs/benchmarks.md] [--seconds 20]``
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from services.core.plan import REALTIME_MAX_STALENESS
from tests.benchmarks.report import cpu_seconds, process_tree, stamp, write_section
from tests.manager.fakes import call
from tests.support import workflow_definitions as wf
from tests.support.redis_server import running_redis
from tests.support.stack import running_stack
from tests.support.webrtc_peer import BITS, ClientPeer, vtest_frames

VIDEO = Path("data/media/vtest.avi")
SECTION = "webrtc"
RUNS = ((15, True), (30, True), (15, False))  # (fps, webrtc_realtime_processing)
WARM_UP = 3.0  # seconds before the window: negotiation, the first frames, the codecs' start
Log = Callable[[str], None]


def annotated_workflow() -> dict[str, Any]:
    return {"version": "1.0", "inputs": [wf.IMAGE], "steps": [
        wf.detect(confidence=0.3),
        {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
         "predictions": "$steps.model.predictions"},
    ], "outputs": [
        {"type": "JsonField", "name": "predictions", "selector": "$steps.model.predictions"},
        {"type": "JsonField", "name": "annotated", "selector": "$steps.boxes.image"},
    ]}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(port: int, worker: psutil.Process, frames: list[np.ndarray], fps: int, realtime: bool,
            seconds: float, max_staleness: float | None = None) -> dict[str, Any]:
    with closing(ClientPeer(frames, fps=fps, keep_images=0)) as peer:
        payload = wf.init("", annotated_workflow())
        payload.update(type="webrtc", webrtc_offer={"type": "offer", "sdp": peer.offer()},
                       webrtc_realtime_processing=realtime,
                       stream_output=["annotated"], data_output=["predictions"], webcam_fps=fps)
        if max_staleness is not None:
            payload["video_configuration"]["max_staleness"] = max_staleness
        reply = call(port, payload)
        if reply["response"]["status"] != "success":
            raise RuntimeError(f"webrtc request failed: {reply}")
        peer.accept(reply["response"])
        pipeline_id = reply["pipeline_id"]
        time.sleep(WARM_UP)
        me = psutil.Process()
        tree = process_tree(worker)
        cpu_before = (cpu_seconds(tree), cpu_seconds([me]))
        begin, first_sent, first_received = time.monotonic(), peer.sent(), len(peer.received_arrivals())
        time.sleep(seconds)
        end, last_sent = time.monotonic(), peer.sent()
        cpu_after = (cpu_seconds(tree), cpu_seconds([me]))
        window = [(index, at) for index, at in peer.received_arrivals()[first_received:] if at <= end]
        messages = len(peer.received_messages())
        report = call(port, {"type": "status", "pipeline_id": pipeline_id})["response"]["report"]
        call(port, {"type": "terminate", "pipeline_id": pipeline_id})
    sent_indices = [index % (1 << BITS) for index in range(first_sent, last_sent)]
    received_indices = {index for index, _ in window}
    latencies = [1000 * (at - peer.sent_at[index]) for index, at in window if index in peer.sent_at]
    elapsed = end - begin
    return {
        "fps": fps, "realtime": realtime, "sent": len(sent_indices), "received": len(window),
        "dropped": sum(1 for index in sent_indices if index not in received_indices),
        "p50_ms": statistics.median(latencies), "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies),
        "received_fps": len(window) / elapsed, "messages": messages,
        "worker_cores": sum(cpu_after[0].values()) - sum(cpu_before[0].values()),
        "peer_cores": sum(cpu_after[1].values()) - sum(cpu_before[1].values()),
        "elapsed": elapsed, "drops_by_cause": report.get("webrtc", {}).get("frames_dropped", {}),
        "source_drops": report["sources_metadata"][0]["frames_dropped"],
    }


def measure_transport(frames: list[np.ndarray], fps: int, seconds: float) -> dict[str, Any]:
    """The same peer against a bare WebRTC session in this process that sends each frame straight back
    (no pipeline, no model): what the WebRTC transport alone costs (two VP8 encodes and decodes, RTP,
    aiortc's receive paths)."""
    from services.worker.engine.capture import CaptureOptions
    from services.worker.engine.frames import VideoFrame
    from services.worker.engine.results import RoundResult, SourceResult
    from services.worker.webrtc import WebRTCOptions, WebRTCSession

    session = WebRTCSession(WebRTCOptions(stream_output=None, data_output=None, realtime=True, peer_timeout=5))
    with closing(ClientPeer(frames, fps=fps, keep_images=0)) as peer:
        try:
            peer.accept(session.negotiate(peer.offer(), "offer", 10.0))
            capture = session.open_capture("webrtc:peer", CaptureOptions())
            begin = time.monotonic()
            while time.monotonic() < begin + WARM_UP + seconds:
                ok, image = capture.read()
                if not ok or image is None:
                    raise RuntimeError(f"the transport run lost its peer: {capture.end_reason}")
                frame = VideoFrame(image, 0, 0, datetime.now(UTC), time.monotonic(), fps, False)
                session.observer.observe([frame], RoundResult((SourceResult(0, 0, frame.frame_timestamp,
                                                                            frame.decoded_at, {}),)))
        finally:
            session.close()
        window = [(index, at) for index, at in peer.received_arrivals() if at >= begin + WARM_UP]
    latencies = [1000 * (at - peer.sent_at[index]) for index, at in window if index in peer.sent_at]
    return {"fps": fps, "received": len(window), "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies)}


def render(runs: list[dict[str, Any]], transport: list[dict[str, Any]], seconds: float) -> str:
    lines = [
        "## WebRTC: glass-to-glass latency on loopback", "", stamp(), "",
        __doc__.split("\n\n")[1].replace("\n", " "), "",
        f"Window {seconds:g} s per run after {WARM_UP:g} s of warm-up; workflow detect (`{wf.MODEL}`) -> bounding "
        "boxes; one pipeline on a worker with one slot.", "",
        "| peer fps | mode | frames sent | received back | dropped | latency p50 ms | p99 ms | max ms "
        "| back fps | data messages | worker CPU (cores) | peer CPU (cores) | drops by cause (source) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        window = run["elapsed"]
        causes = ", ".join(f"{k} {v}" for k, v in sorted(run["source_drops"].items()) if v) or "none"
        lines.append(
            f"| {run['fps']} | {'realtime' if run['realtime'] else 'every frame'} | {run['sent']} | "
            f"{run['received']} | {run['dropped']} | {run['p50_ms']:.0f} | {run['p99_ms']:.0f} | "
            f"{run['max_ms']:.0f} | "
            f"{run['received_fps']:.1f} | {run['messages']} | {run['worker_cores'] / window:.2f} | "
            f"{run['peer_cores'] / window:.2f} | {causes} |")
    lines += ["", "Dropped = frames sent in the window whose annotated frame never came back. The peer's CPU is "
              "this benchmark's own (encoding what it sends, decoding what comes back) on the same 2 cores. "
              "Realtime runs use the default `max_staleness` of a realtime WebRTC pipeline "
              f"({REALTIME_MAX_STALENESS:g} s).", "",
              "The WebRTC transport alone, for comparison (measure_transport: the same peer and frames against a "
              "bare session in the benchmark's process that sends each received frame straight back; no pipeline, "
              "no model):", "",
              "| peer fps | frames back | round trip p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    lines += [f"| {run['fps']} | {run['received']} | {run['p50_ms']:.0f} | {run['p99_ms']:.0f} | {run['max_ms']:.0f} |"
              for run in transport]
    lines += ["", "aiortc's receiver passes a video frame on once the next frame's first packet shows it complete, "
              "so each direction costs about one frame interval of the sender: the transport's share falls as the "
              "frame rate rises, and the frames sent back leave at the pipeline's rate."]
    return "\n".join(lines)


def run(seconds: float, log: Log) -> str:
    frames = vtest_frames(150)
    runs = []
    with running_redis() as server, running_stack(server.url) as stack:
        stack.start_manager(MANAGER_LOG_LEVEL="WARNING")
        stack.start_worker("webrtc", "pipelines.cpu", concurrency=1)
        worker = psutil.Process(stack.workers["webrtc"].pid)
        for fps, realtime in RUNS:
            result = measure(stack.port, worker, frames, fps, realtime, seconds)
            log(f"{fps} fps {'realtime' if realtime else 'every frame'}: p50 {result['p50_ms']:.0f} ms, "
                f"p99 {result['p99_ms']:.0f} ms, {result['received']}/{result['sent']} back")
            runs.append(result)
            time.sleep(2.0)  # the finished slot is replaced by a fresh process
    transport = []
    for fps in sorted({fps for fps, _ in RUNS}):
        transport.append(measure_transport(frames, fps, seconds))
        log(f"transport alone at {fps} fps: p50 {transport[-1]['p50_ms']:.0f} ms")
    return render(runs, transport, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    markdown = run(args.seconds, lambda text: print(text, file=sys.stderr, flush=True))
    write_section(args.output, SECTION, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
