"""What one inference round produces: per source, the prediction of its frame (or nothing)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceResult:
    source_id: int
    frame_id: int
    frame_timestamp: datetime
    decoded_at: float  # time.monotonic() when the frame was decoded
    prediction: dict[str, Any]  # the reference format: {"image": {...}, "predictions": [...]}

    def frame_metadata(self) -> dict[str, Any]:
        return {
            "frame_timestamp": self.frame_timestamp.isoformat(),
            "frame_id": self.frame_id,
            "source_id": self.source_id,
        }


@dataclass(frozen=True, slots=True)
class RoundResult:
    """One round: a slot per source of the pipeline, ``None`` where a source had no frame."""

    slots: tuple[SourceResult | None, ...]

    def outputs(self) -> list[dict[str, Any] | None]:
        return [slot.prediction if slot else None for slot in self.slots]

    def frames_metadata(self) -> list[dict[str, Any] | None]:
        return [slot.frame_metadata() if slot else None for slot in self.slots]

    def present(self) -> list[SourceResult]:
        return [slot for slot in self.slots if slot is not None]
