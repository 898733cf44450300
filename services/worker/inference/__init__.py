"""The per-device inference service (one process per worker) and its client; see ``service``.

This package's ``__init__`` and ``process`` import nothing heavy: the worker's main process uses them.
"""

SOCKET_ENV = "VSIM_INFERENCE_SOCKET"  # set by the worker's main process for the pipelines it forks
