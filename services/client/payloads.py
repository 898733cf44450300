"""INIT payloads of the workflow generation, built as the reference's clients build them.

One home for the shapes every caller of this project writes: the CLI's ``vsim start``, ``make run``
(tools/payloads.py), the HTTP API's documented example and the tests. :func:`detection_workflow` is the
published Workflows definition of one object-detection step whose output ``predictions`` is the
reference's prediction format; :func:`workflow_init` wraps any definition into an INIT payload.
"""

from typing import Any

DETECTION_BLOCK = "roboflow_core/roboflow_object_detection_model@v2"
IMAGE_INPUT = {"type": "WorkflowImage", "name": "image"}


def detection_step(name: str = "model", model_id: str = "yolov3-tiny/coco-416", images: str = "$inputs.image",
                   **params: Any) -> dict[str, Any]:
    """One object-detection step (``confidence``, ``iou_threshold``, ``class_filter`` ... in ``params``)."""
    return {"type": DETECTION_BLOCK, "name": name, "images": images, "model_id": model_id, **params}


def detection_workflow(model_id: str, **params: Any) -> dict[str, Any]:
    """A Workflows definition: the frame -> one detection step -> output ``predictions``."""
    return {"version": "1.0", "inputs": [dict(IMAGE_INPUT)], "steps": [detection_step(model_id=model_id, **params)],
            "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.model.predictions"}]}


def workflow_init(video: dict[str, Any], workflow: dict[str, Any], sink: dict[str, Any] | None = None,
                  parameters: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """An INIT payload: ``video`` is the video_configuration's fields (its ``type`` added), ``sink`` the
    MemorySinkConfiguration's; ``extra`` top-level fields (api_key, device, ...); ``type`` comes last, as the
    reference's client appends it."""
    processing: dict[str, Any] = {"type": "WorkflowConfiguration", "workflow_specification": workflow}
    if parameters is not None:
        processing["workflows_parameters"] = parameters
    return {
        "video_configuration": {"type": "VideoConfiguration", **video},
        "processing_configuration": processing,
        "sink_configuration": {"type": "MemorySinkConfiguration", **(sink or {})},
        **extra,
        "type": "init",
    }
