"""Celery task and queue names and the Celery configuration shared by the manager and the workers.

The manager dispatches by name (``send_task``) with JSON, so it never imports worker code.
Configuration: early ack, no prefetch, one task per child process, no time
limits — a pipeline task runs for days and must never be redelivered while it runs.
"""

from typing import Any

RUN_PIPELINE = "vsim.run_pipeline"
DEFAULT_DEVICES = ("cpu", "gpu", "jetson")


def queue_for(device: str) -> str:
    return f"pipelines.{device}"


def celery_config(broker_url: str, visibility_timeout: int = 3600) -> dict[str, Any]:
    """The one Celery configuration of manager and workers.

    ``visibility_timeout``: Redis redelivers an unacknowledged message after this long; messages
    are acknowledged on receipt (early ack, no prefetch), so a pipeline running for days is still
    delivered once (tested with a 3 s timeout: tests/e2e/test_supervision.py).
    """
    return {
        "broker_url": broker_url,
        "broker_transport_options": {"visibility_timeout": visibility_timeout},
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_acks_late": False,  # early ack: a redelivered long task would run twice
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
        "worker_max_tasks_per_child": 1,  # every pipeline gets a fresh process
        "task_time_limit": None,
        "task_soft_time_limit": None,
        "task_create_missing_queues": True,
        "task_default_queue": queue_for("cpu"),
        "broker_connection_retry_on_startup": True,
        "worker_send_task_events": True,  # Flower shows tasks
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        # A pipeline process imports the engine (OpenCV, onnxruntime, supervision: about 2 s on 2
        # cores) as soon as it is forked, before any task reaches it; Celery's default of 4 s for a
        # new process to report alive is too tight for that on a loaded host.
        "worker_proc_alive_timeout": 60.0,
    }
