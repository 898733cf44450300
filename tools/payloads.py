"""INIT payloads as reference clients send them (newer generation: inline object-detection workflow).

Used by `make run` and by the tests and benchmarks that drive the real stack.
"""

from typing import Any

from services.client.payloads import detection_workflow, workflow_init

MODEL_ID = "yolov3-tiny/coco-416"


def newer_init(video: str | int, max_fps: float | None = None, results_buffer_size: int = 64, confidence: float = 0.3,
               model_id: str = MODEL_ID, **extra: Any) -> dict[str, Any]:
    return workflow_init({"video_reference": video, "max_fps": max_fps},
                         detection_workflow(model_id, confidence=confidence),
                         {"results_buffer_size": results_buffer_size}, **extra)
