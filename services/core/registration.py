"""A worker's registration: what it publishes about itself every second, and what the manager and the API read.

One schema for the writer (``services.worker.registration``) and both readers (the manager's admission,
the API's /metrics scrape). Capacity fields are optional, so a reader accepts a registration from an
older or newer worker (unknown fields are ignored) and decides what a missing value means.

``format_version`` follows the rule of ``services.core.formats``: a registration without it is
``1.0`` (a worker from before format versions); :func:`check_format` refuses a newer major. ``1.1``
adds the drain fields: ``draining`` (the worker saw its drain flag, ``services.core.drain``) and
``consuming`` (whether it still takes tasks from its queues; None: a worker that does not say,
which therefore cannot be drained).
"""

from pydantic import BaseModel, ConfigDict, Field

from services.core import formats


class WorkerRegistration(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    hostname: str
    queues: tuple[str, ...] = ()
    concurrency: int | None = Field(default=None, ge=0)
    busy_slots: int | None = Field(default=None, ge=0)
    free_slots: int | None = Field(default=None, ge=0)
    device: str | None = None
    pid: int | None = None
    ram_total_mb: int | None = Field(default=None, ge=0)
    ram_available_mb: int | None = Field(default=None, ge=0)
    pipelines_ram_mb: int = Field(default=0, ge=0)  # PSS of the pipeline processes together
    largest_pipeline_ram_mb: int | None = Field(default=None, ge=0)  # None: no pipeline ran there yet
    inference_service_ram_mb: int | None = Field(default=None, ge=0)  # not charged to the budget
    max_ram_mb: int | None = Field(default=None, ge=0)  # None: no budget
    format_version: str = str(formats.LEGACY)  # absent: a worker from before format versions
    draining: bool = False  # the worker saw its drain flag at its last beat
    consuming: bool | None = None  # it consumes its queues; None: an older worker that does not report it


def check_format(registration: WorkerRegistration) -> None:
    """Raises ``FormatError`` when ``registration`` is of a newer major than this release reads."""
    formats.readable(f"worker registration of {registration.hostname}", registration.format_version,
                     formats.REGISTRATION)
