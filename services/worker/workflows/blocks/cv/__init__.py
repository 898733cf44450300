"""Classical computer vision blocks (OpenCV, no model)."""
