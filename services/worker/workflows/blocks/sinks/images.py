"""The images sinks send (a webhook's files, an e-mail's attachments and inline pictures) as JPEG bytes."""

import cv2

from services.worker.workflows.values import WorkflowImage


def jpeg_bytes(image: WorkflowImage) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image.image)
    if not ok:
        raise ValueError("the image cannot be encoded as JPEG")
    return bytes(encoded.tobytes())
