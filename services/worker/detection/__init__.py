"""Object detection on frames: letterbox pre-processing, output layouts, NMS, the onnxruntime detector."""
