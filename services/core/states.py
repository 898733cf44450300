"""Source and pipeline states and the buffer strategies, spelled exactly as the reference does; our processing modes."""

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


class ProcessingMode(StrEnum):
    """Our extension: a name for the pair of buffer strategies every source of a pipeline uses.

    ``EVERY_FRAME`` processes every decoded frame in order (a live decoder waits for the model, so a
    live camera can fall behind real time); ``FRESHEST`` processes the newest frame each round, and
    with a ``max_staleness`` never one older than that (see the pipeline's theory of operation).
    """

    EVERY_FRAME = "every_frame"
    FRESHEST = "freshest"

    @property
    def filling(self) -> BufferFillingStrategy:
        return BufferFillingStrategy.WAIT if self is ProcessingMode.EVERY_FRAME else BufferFillingStrategy.DROP_OLDEST

    @property
    def consumption(self) -> BufferConsumptionStrategy:
        if self is ProcessingMode.EVERY_FRAME:
            return BufferConsumptionStrategy.LAZY
        return BufferConsumptionStrategy.EAGER

    @classmethod
    def of(cls, filling: BufferFillingStrategy, consumption: BufferConsumptionStrategy) -> "ProcessingMode | None":
        """The mode a pair of strategies amounts to; None for any other pair."""
        return next((mode for mode in cls if (mode.filling, mode.consumption) == (filling, consumption)), None)
