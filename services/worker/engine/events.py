"""Status updates: what sources and the pipeline tell the watchdog about themselves.

Event types and contexts are the reference's, so its status reports read the same.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SOURCE_STATE_UPDATE = "SOURCE_STATE_UPDATE"
SOURCE_ERROR = "SOURCE_ERROR"
SOURCE_RECONNECT_SCHEDULED = "SOURCE_RECONNECT_SCHEDULED"
VIDEO_CONSUMPTION_STARTED = "VIDEO_CONSUMPTION_STARTED"
VIDEO_CONSUMPTION_FINISHED = "VIDEO_CONSUMPTION_FINISHED"
INFERENCE_THREAD_STARTED = "INFERENCE_THREAD_STARTED"
INFERENCE_THREAD_FINISHED = "INFERENCE_THREAD_FINISHED"
INFERENCE_ERROR = "INFERENCE_ERROR"
INFERENCE_RESULTS_DISPATCHING_ERROR = "INFERENCE_RESULTS_DISPATCHING_ERROR"

CONTEXT_SOURCE = "video_source"
CONTEXT_CONSUMER = "video_source.video_consumer"
CONTEXT_PIPELINE = "inference_pipeline"


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    event_type: str
    context: str
    payload: dict[str, Any] = field(default_factory=dict)
    severity: int = logging.INFO
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp.isoformat(),
            "severity": self.severity,
            "event_type": self.event_type,
            "payload": self.payload,
            "context": self.context,
        }


StatusHandler = Callable[[StatusUpdate], None]
