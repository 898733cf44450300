"""What the heavy Workflows blocks cost per frame: the ones that work on whole images with no detection model
(stitching, deskewing, focus, motion, codes, OCR), which the Workflows section's counting workflow does not cover.

Each configuration is a workflow of that block (and the crops it needs) on ``vtest.avi``'s first frames (768x576),
decoded once beforehand, with a licence-plate-like text pasted on each frame for the OCR rows; the workflow
processor runs it in this process (prepare, infer, finish: the pipeline's own three calls, no decoding, no sink),
each configuration in its own child process. ``ms / frame`` is wall time, ``CPU ms / frame`` the process's CPU
time (above the wall time where OpenCV or onnxruntime use both cores). The first frames of each run are warm-up
(models loaded, per-source state built) and are not counted. ``empty workflow`` is the executor alone: every
other row includes it.

Usage: ``python -m tests.benchmarks.block_costs [--output docs/benchmarks.md] [--frames 60]``
"""

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.report import run_child, stamp, write_section
from tests.support import workflow_definitions as wf

VIDEO = Path("data/media/vtest.avi")
REPOSITORY = Path("data/models")
WARM_UP = 5
PLATE_TEXT = "KX 4821"
PLATE_AT = (420, 40)  # top-left corner of the plate on each frame (on the wall, above the people)
PLATE_CROP = {"x_center": 520, "y_center": 70, "width": 240, "height": 100}  # around the plate


def _workflow(steps: list[dict[str, Any]], outputs: dict[str, str]) -> dict[str, Any]:
    return {"version": "1.0", "inputs": [wf.IMAGE, {"type": "WorkflowVideoMetadata", "name": "video_metadata"}],
            "steps": steps, "outputs": [{"type": "JsonField", "name": name, "selector": selector}
                                        for name, selector in outputs.items()]}


def _on_image(block: str, output: str, **fields: Any) -> dict[str, Any]:
    return _workflow([{"type": block, "name": "block", "image": "$inputs.image", **fields}],
                     {"out": f"$steps.block.{output}"})


CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "empty workflow (the executor alone)": _workflow([], {"video": "$inputs.video_metadata"}),
    "qr_code_detector@v1 (zxing-cpp, no code in view)": _workflow(
        [{"type": "roboflow_core/qr_code_detector@v1", "name": "block", "images": "$inputs.image"}],
        {"out": "$steps.block.predictions"}),
    "motion_detection@v1": _on_image("roboflow_core/motion_detection@v1", "motion"),
    "camera_focus@v2 (Tenengrad, aids drawn)": _on_image("roboflow_core/camera_focus@v2", "image"),
    "auto_rotate_on_edges@v1": _on_image("roboflow_core/auto_rotate_on_edges@v1", "image"),
    "stitch_images@v1 (two 60 % halves, SIFT)": _workflow([
        {"type": "roboflow_core/relative_static_crop@v1", "name": "left", "image": "$inputs.image",
         "x_center": 0.3, "y_center": 0.5, "width": 0.6, "height": 1.0},
        {"type": "roboflow_core/relative_static_crop@v1", "name": "right", "image": "$inputs.image",
         "x_center": 0.7, "y_center": 0.5, "width": 0.6, "height": 1.0},
        {"type": "roboflow_core/stitch_images@v1", "name": "block", "image1": "$steps.left.crops",
         "image2": "$steps.right.crops"}], {"out": "$steps.block.stitched_image"}),
    "pp_ocr@v1 on the whole frame (small det + rec)": _workflow(
        [{"type": "roboflow_core/pp_ocr@v1", "name": "block", "images": "$inputs.image"}],
        {"out": "$steps.block.result"}),
    "pp_ocr@v1 on a 240x100 crop around the plate": _workflow([
        {"type": "roboflow_core/absolute_static_crop@v1", "name": "crop", "images": "$inputs.image", **PLATE_CROP},
        {"type": "roboflow_core/pp_ocr@v1", "name": "block", "images": "$steps.crop.crops"}],
        {"out": "$steps.block.result"}),
    "pp_ocr@v1 recognition only on that crop (text_detection none)": _workflow([
        {"type": "roboflow_core/absolute_static_crop@v1", "name": "crop", "images": "$inputs.image", **PLATE_CROP},
        {"type": "roboflow_core/pp_ocr@v1", "name": "block", "images": "$steps.crop.crops",
         "text_detection": "none"}], {"out": "$steps.block.result"}),
}


# ------------------------------------------------------------------ measurement (run in a child)


def measure(name: str, frames: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    import cv2

    from services.core.workflows import compile_workflow
    from services.worker.engine.frames import VideoFrame
    from services.worker.models.repository import ModelRepository
    from services.worker.workflows.blocks.base import BlockEnvironment
    from services.worker.workflows.models import ModelService
    from services.worker.workflows.processor import WorkflowProcessor
    from tests.support.ocr import paste, plate

    capture = cv2.VideoCapture(str(VIDEO))
    images = []
    sign = plate(PLATE_TEXT)
    while len(images) < frames + WARM_UP:
        ok, image = capture.read()
        if not ok:
            raise RuntimeError(f"{VIDEO} has fewer than {frames + WARM_UP} frames")
        paste(image, sign, *PLATE_AT)
        images.append(image)
    capture.release()

    plan = compile_workflow(CONFIGURATIONS[name])
    models = ModelService(ModelRepository(REPOSITORY))
    processor = WorkflowProcessor(plan, models, lambda source: BlockEnvironment(source, models, None))  # type: ignore[arg-type]
    walls: list[float] = []
    cpus: list[float] = []
    last: list[dict[str, Any]] = []
    for index, image in enumerate(images):
        frame = [VideoFrame(image, index, 0, datetime.now(UTC), time.monotonic(), 10.0, True)]
        started, cpu_started = time.perf_counter(), time.process_time()
        prepared = processor.prepare(frame)
        last = processor.finish(frame, prepared, processor.infer(prepared))
        if index >= WARM_UP:
            walls.append(1000 * (time.perf_counter() - started))
            cpus.append(1000 * (time.process_time() - cpu_started))
    walls.sort()
    return {"frames": len(walls), "ms": statistics.median(walls), "p95": walls[int(0.95 * (len(walls) - 1))],
            "cpu_ms": statistics.median(cpus), "sample": _sample(last)}


def _sample(results: Any) -> str:
    """What the block gave on the last frame, briefly (the OCR rows: the text read)."""
    try:
        out = results[0]["out"]
    except (TypeError, LookupError):
        return ""
    return out if isinstance(out, str) else ""


# ------------------------------------------------------------------ orchestration


def run(frames: int, output: Path) -> None:
    results = {}
    for name in CONFIGURATIONS:
        results[name] = run_child("tests.benchmarks.block_costs", [name, str(frames)], timeout=900)
        print(f"{name}: {results[name]['ms']:.2f} ms/frame", flush=True)
    write_section(output, "block_costs", _markdown(results, frames))


def _markdown(results: dict[str, dict[str, Any]], frames: int) -> str:
    lines = [
        "## Workflows: what the heavy blocks cost",
        "",
        stamp(),
        "",
        f"Each block in a workflow of its own on `{VIDEO}`'s first {frames + WARM_UP} frames (768x576, decoded "
        f"beforehand; the first {WARM_UP} are warm-up and not counted), a white plate reading `{PLATE_TEXT}` pasted "
        "on each; the workflow processor's prepare / infer / finish in one process (no decoding, no sink), each "
        "configuration in its own process. `CPU ms` above `ms` means OpenCV or onnxruntime used both cores. No "
        "load generator: the frames are in memory.",
        "",
        "| block | ms / frame (median) | p95 | CPU ms / frame | frames / s on this host | last frame's text |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        sample = f"`{result['sample']}`" if result["sample"] else ""
        lines.append(f"| {name} | {result['ms']:.2f} | {result['p95']:.2f} | {result['cpu_ms']:.2f} | "
                     f"{1000 / result['ms']:.0f} | {sample} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    run(args.frames, args.output)


if __name__ == "__main__":
    main()
