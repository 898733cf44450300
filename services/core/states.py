"""Source and pipeline states and the buffer strategies, spelled exactly as the reference does."""

from enum import StrEnum


class StreamState(StrEnum):
    NOT_STARTED = "NOT_STARTED"
    INITIALISING = "INITIALISING"
    RESTARTING = "RESTARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    MUTED = "MUTED"
    TERMINATING = "TERMINATING"
    ENDED = "ENDED"
    ERROR = "ERROR"

    @property
    def is_final(self) -> bool:
        return self in (StreamState.ENDED, StreamState.ERROR)


class BufferFillingStrategy(StrEnum):
    """What a source does with a decoded frame when its buffer is full."""

    WAIT = "WAIT"
    DROP_OLDEST = "DROP_OLDEST"
    DROP_LATEST = "DROP_LATEST"
    ADAPTIVE_DROP_OLDEST = "ADAPTIVE_DROP_OLDEST"
    ADAPTIVE_DROP_LATEST = "ADAPTIVE_DROP_LATEST"

    @property
    def is_adaptive(self) -> bool:
        return self in (
            BufferFillingStrategy.ADAPTIVE_DROP_OLDEST,
            BufferFillingStrategy.ADAPTIVE_DROP_LATEST,
        )


class BufferConsumptionStrategy(StrEnum):
    """LAZY takes the oldest buffered frame; EAGER takes the newest and drops the rest."""

    LAZY = "LAZY"
    EAGER = "EAGER"
