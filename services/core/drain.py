"""Draining a worker: what is stored about it, shared by the manager (which drains) and the readers.

A drain is one field of the HASH ``keys.worker_drains()``: the worker's hostname, with its
:class:`DrainProgress` as JSON. The manager's ``drain_worker`` adds it, ``undrain_worker`` removes
it; the reaper (``services.manager.drain``) advances the drain each sweep and rewrites the progress.
The worker reads only whether its field exists (``services.worker.drain``). A pipeline runs on the
worker named before the ``:`` of its record's ``owner`` (``<hostname>:<pid>``, see
:func:`owner_host`).
"""

from pydantic import BaseModel, ConfigDict


class DrainProgress(BaseModel):
    """One drain as the reaper last left it (the value of the worker's field in ``keys.worker_drains``)."""

    model_config = ConfigDict(extra="ignore")

    requested_at: float  # unix time of the drain request
    moving: str | None = None  # the pipeline being handed over right now (at most one per worker)
    moving_from_epoch: int = 0  # its epoch on the draining worker: a higher one running elsewhere is the move done
    moving_since: float = 0.0  # unix time the move started (its epoch was bumped)
    moved: int = 0  # pipelines handed over so far
    last_move_s: float | None = None  # how long the last move took: restart -> RUNNING on another worker
    waiting: str | None = None  # why the drain is not progressing right now (None: it is, or it is done)
    unmovable: list[str] = []  # pipelines that cannot move (WebRTC): left running on the worker
    updated_at: float = 0.0  # unix time of the reaper's last write


def owner_host(owner: str) -> str:
    """The worker hostname of a record's ``owner`` (``<hostname>:<pid>``; "" for no owner)."""
    return owner.rsplit(":", 1)[0] if ":" in owner else owner
