"""Supervision: retires pipelines that are over and fails those whose task was lost.

Every ``reaper_interval`` it looks at each indexed pipeline. A final record (its files ended, it
was terminated or failed) leaves the index and its keys get ``finished_ttl``, so it drops out of
``list_pipelines`` while its last status stays readable. A running record whose heartbeat has been
missing longer than the grace period, or a PENDING one nobody claimed in time, is lost:
:meth:`Reaper.on_lost` decides what happens to it (today: FAILED; later: redispatch).
"""

import asyncio
import contextlib
import logging
import time

from services.core.records import PipelineRecord, PipelineState
from services.manager.settings import ManagerSettings
from services.manager.store import LiveRecord, PipelineStore

logger = logging.getLogger(__name__)

HEARTBEAT_LOST = "worker lost (no heartbeat)"
NEVER_CLAIMED = "no worker claimed the pipeline in time"
_BEATING = (PipelineState.INITIALISING, PipelineState.RUNNING, PipelineState.MUTED)


class Reaper:
    def __init__(self, settings: ManagerSettings, store: PipelineStore) -> None:
        self._settings = settings
        self._store = store
        self._missing_since: dict[str, float] = {}  # pipeline id -> monotonic time its heartbeat went missing

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps until ``stop`` is set; an error in one sweep (Redis down) is logged, the next retries.

        Stopped by an event rather than cancelled: a cancellation landing inside a redis.asyncio
        call can be swallowed on Python 3.11 (measured), which would leave the loop running.
        """
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:
                logger.warning("reaper sweep failed: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.reaper_interval):
                    await stop.wait()

    async def sweep(self) -> None:
        live = await self._store.live_records()
        seen = {item.record.pipeline_id for item in live}
        self._missing_since = {pid: t for pid, t in self._missing_since.items() if pid in seen}
        for item in live:
            await self._inspect(item)

    async def _inspect(self, item: LiveRecord) -> None:
        record = item.record
        if record.state.is_final:
            if await self._store.retire(record.pipeline_id, only_in_state=record.state):
                logger.info("pipeline %s is over (%s); retired", record.pipeline_id, record.state)
        elif record.state in _BEATING:
            await self._check_heartbeat(record, item.heartbeat)
        elif record.state is PipelineState.PENDING and self._pending_too_long(record):
            await self.on_lost(record, NEVER_CLAIMED)

    async def _check_heartbeat(self, record: PipelineRecord, beating: bool) -> None:
        if beating:
            self._missing_since.pop(record.pipeline_id, None)
            return
        since = self._missing_since.setdefault(record.pipeline_id, time.monotonic())
        if time.monotonic() - since >= self._settings.heartbeat_grace:
            await self.on_lost(record, HEARTBEAT_LOST)

    def _pending_too_long(self, record: PipelineRecord) -> bool:
        deadline = record.created_at + self._settings.init_timeout + self._settings.heartbeat_grace
        return time.time() > deadline

    async def on_lost(self, record: PipelineRecord, reason: str) -> None:
        """What happens to a pipeline no task runs any more: FAILED, out of the index."""
        failed = await self._store.retire(
            record.pipeline_id, PipelineState.FAILED, reason,
            only_without_heartbeat=True, only_in_state=record.state,
        )
        if failed:
            self._missing_since.pop(record.pipeline_id, None)
            logger.warning("pipeline %s failed: %s", record.pipeline_id, reason)
