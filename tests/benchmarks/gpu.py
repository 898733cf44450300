"""The GPU path on a CUDA host: onnxruntime's CUDA provider against the CPU, and the engine on the GPU.

Run where onnxruntime-gpu and a CUDA device exist (never in CI, which has no GPU):
``python -m tests.benchmarks.gpu --output gpu.md``. It measures, on the sample video:

- which providers the ``gpu`` device selects (``select_providers``) and that the session uses CUDA;
- agreement: the same frames through the CPU and the GPU sessions give the same detections
  (matched by class, IoU of every matched pair);
- ``session.run`` alone on pre-processed frames, CPU (all cores) vs GPU;
- the engine on the file with ``device=gpu`` (WAIT/LAZY, every frame, no sink), with 1 and 2
  inference workers: decoding and pre-processing stay on the CPU, so this is the end-to-end rate;
- ``--stack``: the whole system on the GPU host: an embedded redis-server, the manager with
  ``gpu`` as its default device, a Celery worker with ``WORKER_DEVICE=gpu`` on ``pipelines.gpu``,
  and a pipeline on the sample video started over TCP and read back with CONSUME_RESULT to its end
  (detection totals compared with the CPU's, in the README's ``make run`` output).
"""

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from services.core.results import detections_in
from tests.benchmarks.report import stamp

VIDEO = Path("data/media/vtest.avi")
MODEL_ID = "yolov3-tiny/coco-416"
REPOSITORY = Path("data/models")


def _frames(limit: int | None = None) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    frames: list[np.ndarray] = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def _detector(device: str) -> Any:
    from services.worker.detection.detector import Detector
    from services.worker.models.repository import ModelRepository

    return Detector(ModelRepository(REPOSITORY).resolve(MODEL_ID), device=device)


def _model_fps(detector: Any, tensors: list[np.ndarray]) -> float:
    for tensor in tensors[:10]:
        detector.infer(tensor)  # warm-up (CUDA kernels, cuDNN algorithm search)
    started = time.perf_counter()
    for tensor in tensors:
        detector.infer(tensor)
    return len(tensors) / (time.perf_counter() - started)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 1.0


def _agreement(cpu: Any, gpu: Any, frames: list[np.ndarray]) -> dict[str, Any]:
    from services.worker.detection.detector import DetectionParams

    params = DetectionParams()
    counts = [0, 0]
    mismatched_frames = 0
    ious: list[float] = []
    for frame in frames:
        results = []
        for detector in (cpu, gpu):
            tensor, transform = detector.preprocess(frame)
            results.append(detector.postprocess(detector.infer(tensor)[0], transform, params))
        a, b = results
        counts[0] += len(a.class_id)
        counts[1] += len(b.class_id)
        if sorted(a.class_id.tolist()) != sorted(b.class_id.tolist()):
            mismatched_frames += 1
            continue
        for box, cls in zip(a.xyxy, a.class_id, strict=True):
            same = [other for other, other_cls in zip(b.xyxy, b.class_id, strict=True) if other_cls == cls]
            ious.append(max(_iou(box, other) for other in same))
    return {"frames": len(frames), "cpu_detections": counts[0], "gpu_detections": counts[1],
            "frames_with_different_classes": mismatched_frames,
            "min_iou": min(ious) if ious else None, "mean_iou": float(np.mean(ious)) if ious else None}


def _engine_fps(workers: int) -> tuple[int, float]:
    from services.worker.detection.processor import DetectionProcessor
    from services.worker.engine.pipeline import InferencePipeline, PipelineConfig

    detector = _detector("gpu")
    detector.infer(detector.preprocess(_frames(1)[0])[0])
    pipeline = InferencePipeline(PipelineConfig(video_references=(str(VIDEO),), inference_workers=workers),
                                 DetectionProcessor(detector), [])
    started = time.perf_counter()
    pipeline.start()
    pipeline.wait(timeout=600)
    elapsed = time.perf_counter() - started
    return pipeline.watchdog.frames_processed, pipeline.watchdog.frames_processed / elapsed


def _stack_run(device: str = "gpu") -> list[str]:
    """The sample video through manager + GPU Celery worker + Redis; every result read back."""
    import collections

    from services.client import ManagerClient
    from tests.support.stack import running_stack
    from tools.embedded_redis import running_redis
    from tools.payloads import newer_init

    with running_redis() as server, running_stack(server.url, devices=device) as stack:
        stack.start_manager(MANAGER_DEFAULT_DEVICE=device)
        stack.start_worker_with_env(device, f"pipelines.{device}", {"WORKER_DEVICE": device}, concurrency=1)
        client = ManagerClient(port=stack.port, timeout=60, init_timeout=120)
        started = time.perf_counter()
        pipeline_id = client.initialise(newer_init(str(VIDEO), results_buffer_size=1000)).context.pipeline_id
        assert pipeline_id is not None
        counts: collections.Counter[str] = collections.Counter()
        frames = 0
        while True:
            batch = client.consume(pipeline_id, max_entries=500)
            for entry in batch.entries or []:
                for output in entry.outputs:
                    if output is not None:
                        frames += 1
                        counts.update(p["class"] for p in detections_in(output) or [])
            if not batch.entries:
                status = client.status(pipeline_id).report
                if status.pipeline_state in ("ENDED", "FAILED", "TERMINATED"):
                    break
                time.sleep(0.2)
        elapsed = time.perf_counter() - started
        report = client.status(pipeline_id).report
        registration = stack.registration(f"{device}@test") or {}
    totals = ", ".join(f"{count} {name}" for name, count in counts.most_common())
    return [
        f"- Whole stack on the GPU host (redis-server, manager, Celery worker `WORKER_DEVICE=gpu` on "
        f"`pipelines.gpu`, worker registered with device `{registration.get('device')}`): pipeline "
        f"{report.pipeline_state}, {frames} frames read back with CONSUME_RESULT in {elapsed:.1f} s from INIT "
        f"(model load included), {report.inference_throughput:.1f} fps reported; detections: {totals}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--stack", action="store_true", help="also run the whole stack with a GPU worker")
    args = parser.parse_args()

    import onnxruntime as ort

    from services.worker.detection.detector import select_providers

    available = ort.get_available_providers()
    cpu, gpu = _detector("cpu"), _detector("gpu")
    frames = _frames()
    tensors = [cpu.preprocess(frame)[0] for frame in frames]
    agreement = _agreement(cpu, gpu, frames[:200])
    cpu_fps, gpu_fps = _model_fps(cpu, tensors), _model_fps(gpu, tensors)
    engine = {workers: _engine_fps(workers) for workers in (1, 2)}
    lines = [
        f"{stamp()}; host: {platform.node()}, {os.cpu_count()} cores; onnxruntime {ort.__version__}; "
        f"available providers: {', '.join(available)}.",
        "",
        f"- `device=gpu` selects {select_providers('gpu', available)}; the session runs with "
        f"{gpu.providers[:2]}.",
        f"- Agreement on the first {agreement['frames']} frames: {agreement['cpu_detections']} detections on the "
        f"CPU, {agreement['gpu_detections']} on the GPU, {agreement['frames_with_different_classes']} frames "
        f"whose classes differ; IoU of matched boxes: min {agreement['min_iou']:.4f}, "
        f"mean {agreement['mean_iou']:.5f}.",
        "",
        "| run | frames | fps |",
        "|---|---|---|",
        f"| session.run alone, CPU ({os.cpu_count()} cores) | {len(tensors)} | {cpu_fps:.1f} |",
        f"| session.run alone, GPU (CUDA provider) | {len(tensors)} | {gpu_fps:.1f} |",
    ]
    for workers, (count, fps) in engine.items():
        lines.append(f"| engine on the file, device=gpu, {workers} inference worker(s), no sink | {count} "
                     f"| {fps:.1f} |")
    if args.stack:
        lines += ["", *_stack_run()]
    text = "\n".join(lines) + "\n"
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
