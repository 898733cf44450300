"""OpenCV 4's own Darknet reader on frames: the oracle of the Darknet -> ONNX converter.

Runs in the OpenCV 4 environment (``tools/opencv4_env.py``), never in the project's: it imports only
OpenCV and numpy, nothing of the project. Reads one JSON request on stdin::

    {"cfg": path, "weights": path, "frames": [PNG paths], "size": 416, "confidence": 0.3, "iou": 0.45}

and prints, for each frame, its detections in the frame's pixels as JSON:
``[[{"xyxy": [x1, y1, x2, y2], "class_id": 0, "confidence": 0.93}, ...], ...]``.

Each frame is letterboxed as the detector documents its input (aspect kept, linear resize, centred on a
(114, 114, 114) canvas), then ``cv2.dnn.blobFromImage`` makes the RGB/255 blob. OpenCV's YOLO layers
give rows of cx, cy, w, h (fractions of the input), objectness and class scores already multiplied by
the objectness; a row's best class score is its confidence. Per-class NMS is ``cv2.dnn.NMSBoxesBatched``.
"""

import json
import sys
from typing import Any

import cv2
import numpy as np

PAD = 114


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, int, int]:
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR) if (new_w, new_h) != (
        width, height) else image
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    boxed = cv2.copyMakeBorder(resized, pad_y, size - new_h - pad_y, pad_x, size - new_w - pad_x,
                               cv2.BORDER_CONSTANT, value=(PAD, PAD, PAD))
    return boxed, scale, pad_x, pad_y


def detect(net: Any, image: np.ndarray, size: int, confidence: float, iou: float) -> list[dict[str, Any]]:
    boxed, scale, pad_x, pad_y = letterbox(image, size)
    net.setInput(cv2.dnn.blobFromImage(boxed, 1 / 255.0, (size, size), swapRB=True, crop=False))
    rows = np.concatenate([out.reshape(-1, out.shape[-1]) for out in net.forward(net.getUnconnectedOutLayersNames())])
    class_ids = rows[:, 5:].argmax(axis=1)
    scores = rows[np.arange(len(rows)), 5 + class_ids]
    chosen = scores >= confidence
    rows, class_ids, scores = rows[chosen], class_ids[chosen], scores[chosen]
    centres, sizes = rows[:, 0:2] * size, rows[:, 2:4] * size
    xywh = np.concatenate([centres - sizes / 2, sizes], axis=1)
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), class_ids.tolist(), confidence, iou)
    height, width = image.shape[:2]
    detections = []
    for index in np.asarray(keep, dtype=np.int64).reshape(-1):
        x, y, w, h = xywh[index]
        x1, x2 = np.clip([(x - pad_x) / scale, (x + w - pad_x) / scale], 0, width)
        y1, y2 = np.clip([(y - pad_y) / scale, (y + h - pad_y) / scale], 0, height)
        detections.append({"xyxy": [float(x1), float(y1), float(x2), float(y2)],
                           "class_id": int(class_ids[index]), "confidence": float(scores[index])})
    return detections


def main() -> None:
    request = json.load(sys.stdin)
    # OpenCV 4's API (this runs in the OpenCV 4 environment; the project's OpenCV 5 stubs lack it).
    net = cv2.dnn.readNetFromDarknet(request["cfg"], request["weights"])  # type: ignore[attr-defined]
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    results = []
    for path in request["frames"]:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {path}")
        results.append(detect(net, image, request["size"], request["confidence"], request["iou"]))
    json.dump({"opencv": cv2.__version__, "detections": results}, sys.stdout)


if __name__ == "__main__":
    main()
