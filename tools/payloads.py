"""INIT payloads as reference clients send them (newer generation: inline object-detection workflow).

Used by `make run` and by the tests and benchmarks that drive the real stack.
"""

from typing import Any

MODEL_ID = "yolov3-tiny/coco-416"


def newer_init(video: str | int, max_fps: float | None = None, results_buffer_size: int = 64, confidence: float = 0.3,
               model_id: str = MODEL_ID, **extra: Any) -> dict[str, Any]:
    return {
        "video_configuration": {"type": "VideoConfiguration", "video_reference": video, "max_fps": max_fps},
        "processing_configuration": {
            "type": "WorkflowConfiguration",
            "workflow_specification": {
                "version": "1.0",
                "inputs": [{"type": "WorkflowImage", "name": "image"}],
                "steps": [{"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model",
                           "images": "$inputs.image", "model_id": model_id, "confidence": confidence}],
                "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.model.predictions"}],
            },
        },
        "sink_configuration": {"type": "MemorySinkConfiguration", "results_buffer_size": results_buffer_size},
        **extra,
        "type": "init",  # the reference client appends it last
    }
