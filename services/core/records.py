"""The pipeline record kept in Redis (a HASH at ``keys.pipeline_record``), as typed values.

Field ownership: the manager writes ``desired_state``, ``epoch``, ``device``, ``created_at``,
``restarts``, ``failures``, ``restart_at``, ``dispatched_at``, ``crash_signature``, ``confirm_by``;
the task holding the current epoch writes ``state``, ``owner``, ``updated_at``, ``last_error``. A
task only writes while the record's epoch is its own (the claim script checks).

``format_version`` (written once, at INIT) says which format the record has; :meth:`PipelineRecord.from_hash`
reads every older version and newer minors (unknown fields ignored, missing ones defaulted) and
raises ``FormatError`` for a newer major (the compatibility rule: ``services.core.formats``).
"""

from dataclasses import dataclass, fields
from enum import StrEnum

from services.core import formats

# What a task writes as ``last_error`` when it lets go of a pipeline because its worker is shutting
# down: the pipeline is not over, and the manager re-dispatches it at once (no heartbeat grace).
WORKER_SHUTDOWN = "worker shutting down"
# What the manager writes as ``last_error`` when it moves a pipeline off a draining worker (``vsim
# drain``): not a crash (no failure counted, no backoff); the pipeline goes on on another worker.
WORKER_DRAINING = "worker draining"


class DesiredState(StrEnum):
    """What the user last asked for; the task reconciles its pipeline with it."""

    RUNNING = "RUNNING"
    MUTED = "MUTED"
    TERMINATED = "TERMINATED"


class PipelineState(StrEnum):
    """The actual state of a pipeline as a whole (sources keep the reference's StreamState)."""

    PENDING = "PENDING"  # dispatched, no task has claimed it yet
    INITIALISING = "INITIALISING"  # claimed; sources opening, model loading
    RUNNING = "RUNNING"
    MUTED = "MUTED"
    ENDED = "ENDED"  # every source finished (files)
    TERMINATED = "TERMINATED"  # ended on request
    FAILED = "FAILED"  # could not start or crashed; see last_error

    @property
    def is_final(self) -> bool:
        return self in (PipelineState.ENDED, PipelineState.TERMINATED, PipelineState.FAILED)


@dataclass(slots=True)
class PipelineRecord:
    pipeline_id: str
    format_version: str = str(formats.RECORD)  # as written; "1.0" for a record from before versions
    desired_state: DesiredState = DesiredState.RUNNING
    state: PipelineState = PipelineState.PENDING
    epoch: int = 1
    device: str = "cpu"
    owner: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    restarts: int = 0  # re-dispatches after the task was lost (crashes and worker shutdowns)
    failures: int = 0  # of which crashes: counted against the restart limit
    # A re-dispatch scheduled for this time (epoch already bumped); 0 = none pending. Kept in the
    # record, not in the manager's memory, so a manager restart still carries it out.
    restart_at: float = 0.0
    # When the manager last sent the current epoch to a worker (its clock; 0 = unknown, a record
    # written before this field existed), and how the previous task was lost when that was a crash
    # soon after its dispatch ("" otherwise): the reaper's evidence for "died twice the same way".
    dispatched_at: float = 0.0
    crash_signature: str = ""
    last_error: str = ""
    # False for a pipeline no other worker can take over (a WebRTC peer is connected to its worker):
    # when its task is lost it is retired FAILED with the reason instead of being re-dispatched.
    movable: bool = True
    # An INIT's record is unconfirmed until its success reply is handed back to the client: here the
    # deadline (manager's clock) after which the reaper terminates and removes it, its manager being
    # gone. 0 = confirmed (a record written before this field existed reads as confirmed); -1 = being
    # abandoned by the reaper (it can no longer be confirmed).
    confirm_by: float = 0.0

    def to_hash(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes] | dict[str, str]) -> "PipelineRecord":
        data = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in raw.items()}
        version = formats.readable("pipeline record", data.get("format_version"), formats.RECORD)
        return cls(
            pipeline_id=data["pipeline_id"],
            format_version=str(version),
            desired_state=DesiredState(data.get("desired_state", DesiredState.RUNNING)),
            state=PipelineState(data.get("state", PipelineState.PENDING)),
            epoch=int(data.get("epoch", 1)),
            device=data.get("device", "cpu"),
            owner=data.get("owner", ""),
            created_at=float(data.get("created_at", 0.0)),
            updated_at=float(data.get("updated_at", 0.0)),
            restarts=int(data.get("restarts", 0)),
            failures=int(data.get("failures", 0)),
            restart_at=float(data.get("restart_at", 0.0)),
            dispatched_at=float(data.get("dispatched_at", 0.0)),
            crash_signature=data.get("crash_signature", ""),
            last_error=data.get("last_error", ""),
            movable=data.get("movable", "True") != "False",
            confirm_by=float(data.get("confirm_by", 0.0)),
        )
