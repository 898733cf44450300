"""The HTTP Stream Management API: FastAPI routes of both reference generations over the TCP manager.

Importing this package loads neither OpenCV, onnxruntime, numpy nor Celery, nor manager or worker code.
"""
