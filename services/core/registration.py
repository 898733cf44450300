"""A worker's registration: what it publishes about itself every second, and what the manager and the API read.

One schema for the writer (``services.worker.registration``) and both readers (the manager's admission,
the API's /metrics scrape). Capacity fields are optional, so a reader accepts a registration from an
older or newer worker (unknown fields are ignored) and decides what a missing value means.
"""

from pydantic import BaseModel, ConfigDict, Field


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
