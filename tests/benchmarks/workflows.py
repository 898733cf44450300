"""Workflows throughput: what the blocks after the model cost, in one run, interleaved rounds.

Every configuration runs the real pipeline (``InferencePipeline`` on ``vtest.avi``, every frame,
WAIT/LAZY, the default sizing: one single-threaded inference worker per core) with a Redis Stream
sink, in its own subprocess:

- ``plain detection``: the flat payload's processor (one model, no workflow engine): the anchor;
- ``detection workflow``: the same model as a one-step workflow (the engine's own overhead);
- ``+ tracker``, ``+ line counter``, ``+ boxes + labels``: the counting workflow built up step by
  step, outputs ``count_in``/``count_out`` and the tracked detections;
- ``+ annotated image output``: the same, also outputting the drawn frame (a JPEG per frame).

Then the executor's own cost per frame with no steps at all (a workflow that only outputs the
frame's video metadata), measured in-process over many frames.

Usage: ``python -m tests.benchmarks.workflows [--output docs/benchmarks.md] [--rounds 3]``
"""

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.benchmarks.report import run_child, stamp, write_section
from tests.support import workflow_definitions as wf

VIDEO = Path("data/media/vtest.avi")
REPOSITORY = Path("data/models")
LINE = [[0, 300], [768, 300]]


def _counting(steps: int, image_output: bool = False) -> dict[str, Any]:
    """The counting workflow with its first ``steps`` steps (2: + tracker, 3: + line, 5: + drawing)."""
    workflow = wf.counting(LINE, image_output=image_output)
    workflow["steps"] = workflow["steps"][:steps]
    names = {step["name"] for step in workflow["steps"]}
    workflow["outputs"] = [o for o in workflow["outputs"] if o["selector"].split(".")[1] in names]
    return workflow


CONFIGURATIONS: dict[str, dict[str, Any] | None] = {
    "plain detection (no workflow engine)": None,
    "detection workflow": wf.detection_only(),
    "+ tracker (byte_tracker@v3)": _counting(2),
    "+ line counter (line_counter@v2)": _counting(3),
    "+ boxes + labels (bounding_box, label)": _counting(5),
    "+ annotated image output (JPEG per frame)": _counting(5, image_output=True),
}
ANCHOR = "detection workflow"
TARGET = "+ boxes + labels (bounding_box, label)"


# ------------------------------------------------------------------ measurements (run in children)


def measure_pipeline(name: str, redis_url: str) -> dict[str, Any]:
    import redis

    from services.core import keys
    from services.core.workflows import compile_workflow
    from services.worker.detection.detector import DetectionParams, Detector
    from services.worker.detection.processor import DetectionProcessor
    from services.worker.engine.pipeline import InferencePipeline, PipelineConfig, RoundProcessor
    from services.worker.engine.sinks.redis_stream import RedisStreamSink
    from services.worker.models.repository import ModelRepository
    from services.worker.settings import WorkerSettings
    from services.worker.workflows.background import BackgroundRunner
    from services.worker.workflows.blocks.base import BlockEnvironment
    from services.worker.workflows.models import ModelService
    from services.worker.workflows.processor import WorkflowProcessor, model_tasks

    workers, threads = WorkerSettings().inference_sizing(os.cpu_count() or 1)
    repository = ModelRepository(REPOSITORY)
    definition = CONFIGURATIONS[name]
    processor: RoundProcessor
    if definition is None:
        detector = Detector(repository.resolve(wf.MODEL), intra_op_threads=threads)
        processor = DetectionProcessor(detector, DetectionParams(confidence=0.3))
    else:
        plan = compile_workflow(definition)
        models = ModelService(repository, "cpu", threads)
        models.preload(model_tasks(plan))
        background = BackgroundRunner(max_pending=8)
        processor = WorkflowProcessor(plan, models, lambda source: BlockEnvironment(source, models, background),
                                      background=background)
    client = redis.Redis.from_url(redis_url)
    pipeline_id = f"bench-workflows-{os.getpid()}"
    config = PipelineConfig(video_references=(str(VIDEO),), inference_workers=workers)
    pipeline = InferencePipeline(config, processor, [RedisStreamSink(client, pipeline_id, maxlen=1000)])
    cpu_before = os.times()
    started = time.perf_counter()
    pipeline.start()
    pipeline.wait(timeout=900)
    elapsed = time.perf_counter() - started
    cpu_after = os.times()
    frames = pipeline.watchdog.frames_processed
    client.delete(keys.results_stream(pipeline_id))
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {"frames": frames, "fps": frames / elapsed, "cpu_ms_per_frame": 1000 * cpu / max(1, frames),
            "errors": pipeline.watchdog.step_errors()}


def measure_executor(frames: int = 5000) -> dict[str, Any]:
    """The executor and the processor's per-frame work with no steps: a workflow of inputs only."""
    from datetime import UTC, datetime

    import numpy as np

    from services.core.workflows import compile_workflow
    from services.worker.engine.frames import VideoFrame
    from services.worker.models.repository import ModelRepository
    from services.worker.workflows.blocks.base import BlockEnvironment
    from services.worker.workflows.models import ModelService
    from services.worker.workflows.processor import WorkflowProcessor

    plan = compile_workflow({"version": "1.0", "inputs": [wf.IMAGE, {"type": "WorkflowVideoMetadata",
                                                                      "name": "video_metadata"}],
                             "steps": [], "outputs": [{"type": "JsonField", "name": "video",
                                                       "selector": "$inputs.video_metadata"}]})
    models = ModelService(ModelRepository(REPOSITORY))
    processor = WorkflowProcessor(plan, models, lambda source: BlockEnvironment(source, models, None))  # type: ignore[arg-type]
    image = np.zeros((576, 768, 3), np.uint8)
    batch = [[VideoFrame(image, i, 0, datetime.now(UTC), time.monotonic(), 10.0, True)] for i in range(frames)]
    started = time.perf_counter()
    for frame in batch:
        processor.finish(frame, processor.prepare(frame), processor.infer({}))
    return {"frames": frames, "ms_per_frame": 1000 * (time.perf_counter() - started) / frames}


# ------------------------------------------------------------------ orchestration


def _spawn(args: list[str]) -> dict[str, Any]:
    return run_child("tests.benchmarks.workflows", args, timeout=1200)


def run(rounds: int, redis_url: str, output: Path, log: Callable[[str], None]) -> None:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGURATIONS}
    for index in range(rounds):  # interleaved: every configuration once per round
        for name in CONFIGURATIONS:
            runs[name].append(_spawn(["pipeline", name, redis_url]))
            log(f"round {index + 1}/{rounds} {name}: {runs[name][-1]['fps']:.1f} fps")
    executor = _spawn(["executor"])
    log(f"executor overhead: {executor['ms_per_frame']:.3f} ms/frame")
    write_section(output, "workflows", _markdown(runs, executor, rounds))


def _markdown(runs: dict[str, list[dict[str, Any]]], executor: dict[str, Any], rounds: int) -> str:
    medians = {name: statistics.median(r["fps"] for r in results) for name, results in runs.items()}
    anchor = medians[ANCHOR]
    lines = [
        "## Workflows",
        "",
        stamp(),
        "",
        f"The pipeline on `{VIDEO}` (795 frames, every frame, WAIT/LAZY), yolov3-tiny 416, Redis Stream sink; "
        f"median of {rounds} interleaved rounds, each configuration in its own process. "
        "`x detection workflow` compares with the one-step detection workflow of the same run. "
        "No load generator: the source is the file, decoded by the pipeline itself.",
        "",
        "| configuration | fps (median) | fps (all rounds) | x detection workflow | CPU ms / frame | step errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        all_fps = ", ".join(f"{r['fps']:.1f}" for r in results)
        cpu = statistics.median(r["cpu_ms_per_frame"] for r in results)
        errors = sum(sum(r["errors"].values()) for r in results)
        lines.append(f"| {name} | {medians[name]:.1f} | {all_fps} | {medians[name] / anchor:.2f} | {cpu:.1f} | "
                     f"{errors} |")
    ratio = medians[TARGET] / anchor
    lines += [
        "",
        f"Tracker + line counter + bounding box + label: **{ratio:.2f}x** the detection workflow "
        f"(goal ≥ 0.90x: {'met' if ratio >= 0.9 else 'NOT met'}).",
        f"Executor overhead with no steps (building the frame's image and metadata, walking an empty graph, "
        f"serialising one output): **{executor['ms_per_frame']:.3f} ms per frame** over {executor['frames']} "
        f"frames (goal ≤ 0.2 ms: {'met' if executor['ms_per_frame'] <= 0.2 else 'NOT met'}).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "pipeline":
            print(json.dumps(measure_pipeline(args.child[1], args.child[2])))
        else:
            print(json.dumps(measure_executor()))
        return
    from tests.support.redis_server import running_redis

    with running_redis() as server:
        run(args.rounds, server.url, args.output, lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
