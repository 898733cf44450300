"""Supervises one running pipeline: heartbeat, report, state, desired-state reconciliation, stop.

The loop runs on the task's thread once a second (sooner when woken): one fenced write (see
``ownership``) refreshes the heartbeat, stores the report and the state, and reads back the desired
state and the consumption cursor. Everything that ends the pipeline sets a stop reason and wakes
the loop, which alone terminates the engine and writes the last state. Redis errors only skip a
tick: the engine keeps running through an outage, and ``consumption_timeout`` counts again from
the end of one (nobody could consume meanwhile).
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import redis

from services.core.control import Command
from services.core.records import WORKER_SHUTDOWN, DesiredState, PipelineState
from services.core.redaction import redact_text
from services.core.states import StreamState
from services.worker.engine import events
from services.worker.engine.pipeline import InferencePipeline
from services.worker.ownership import Ownership, Tick
from services.worker.replies import SUCCESS

log = logging.getLogger(__name__)

PERIOD = 1.0  # seconds between ticks
TERMINATE_TIMEOUT = 2.0  # given to the engine's terminate
RELEASE_ATTEMPTS = 5  # the last write is retried this many times, PERIOD apart, through an outage


class StopReason(Enum):
    REQUESTED = "terminated on request"
    CONSUMPTION_TIMEOUT = "consumption_timeout"
    SHUTDOWN = WORKER_SHUTDOWN
    FENCED = "another task took over the pipeline"


@dataclass(frozen=True, slots=True)
class Options:
    consumption_timeout: float | None = None
    secrets: tuple[str, ...] = ()
    # Why the sources ended when that is worth telling (a WebRTC peer left): the ENDED record's last_error.
    end_reason: Callable[[], str | None] = lambda: None
    # Sections added to the status report (a WebRTC pipeline's peer statistics), each read per report.
    report_sections: Mapping[str, Callable[[], Any]] = field(default_factory=dict)


class Supervisor:
    def __init__(
        self,
        pipeline: InferencePipeline,
        ownership: Ownership,
        wake: threading.Event,
        shutdown: threading.Event,
        options: Options,
        fenced: threading.Event | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._ownership = ownership
        self._wake = wake
        self._shutdown = shutdown
        self._options = options
        self._fenced = fenced or threading.Event()  # a results write was refused: we lost the record
        self._apply_lock = threading.Lock()  # desired-state read + apply, against control commands
        self._stop_reason: StopReason | None = None
        self._stop_detail = ""
        self._released = threading.Event()
        self._state = PipelineState.INITIALISING
        self._started_at = time.time()
        self._redis_down = False
        # The latest non-empty consume seen (unix time), kept here too: a Redis that restarted empty
        # lost the cursor that records it, and consumers could not consume while Redis was down.
        self._consumed_at = 0.0

    # ----------------------------------------------------------------- the loop (task thread)

    def supervise(self) -> PipelineState | None:
        """Runs until the pipeline is over; its last state, or None when fenced out (nothing written)."""
        self._started_at = time.time()
        try:
            while True:
                self._wake.clear()
                if self._fenced.is_set():
                    self.request_stop(StopReason.FENCED)
                elif self._shutdown.is_set():
                    self.request_stop(StopReason.SHUTDOWN)
                if self._stop_reason is not None:
                    return self._stop(self._stop_reason)
                if self._pipeline.wait(0):
                    return self._ended()
                self._tick()
                self._wake.wait(PERIOD)
        finally:
            self._released.set()

    def _tick(self) -> None:
        try:
            with self._apply_lock:
                self._state = self._current_state()
                tick = self._ownership.tick(self._state, self._report_json())
                if tick.owned:
                    self._reconcile(tick.desired)
        except redis.RedisError as exc:
            self._on_redis_error(exc)
            return
        self._on_redis_ok()
        if not tick.owned:
            self.request_stop(StopReason.FENCED)
        else:
            self._check_consumption(tick)

    def _check_consumption(self, tick: Tick) -> None:
        timeout = self._options.consumption_timeout
        if timeout is None:
            return
        self._consumed_at = max(self._consumed_at, tick.last_non_empty or 0.0)
        last = max(self._consumed_at, self._started_at)
        if time.time() - last > timeout:
            self.request_stop(StopReason.CONSUMPTION_TIMEOUT, f"no results consumed for {timeout:g} s")

    def _ended(self) -> PipelineState | None:
        """The engine ended by itself: every source finished (ENDED) or failed (FAILED)."""
        sources_failed = all(source.state is StreamState.ERROR for source in self._pipeline.sources)
        if self._pipeline.state is StreamState.ERROR or sources_failed:
            return self._release(PipelineState.FAILED, self._source_errors())
        return self._release(PipelineState.ENDED, self._options.end_reason() or "")

    def _stop(self, reason: StopReason) -> PipelineState | None:
        log.info("pipeline %s: stopping (%s)", self._ownership.pipeline_id, reason.value)
        self._pipeline.terminate(TERMINATE_TIMEOUT)
        if reason is StopReason.FENCED:
            return None
        if reason is StopReason.SHUTDOWN:  # not final: the manager re-dispatches it elsewhere
            return self._release(self._state, reason.value)
        if reason is StopReason.CONSUMPTION_TIMEOUT:
            return self._release(PipelineState.TERMINATED, f"{reason.value}: {self._stop_detail}")
        return self._release(PipelineState.TERMINATED, "")

    def _release(self, state: PipelineState, last_error: str) -> PipelineState | None:
        self._state = state
        error = redact_text(last_error, self._options.secrets)
        for attempt in range(1, RELEASE_ATTEMPTS + 1):
            try:
                if not self._ownership.release(state, error, self._report_json()):
                    log.warning("pipeline %s: fenced out before its last write", self._ownership.pipeline_id)
                    return None
                log.info("pipeline %s: %s %s", self._ownership.pipeline_id, state.value, error)
                return state
            except redis.RedisError as exc:
                log.warning("pipeline %s: last write failed (attempt %d): %s",
                            self._ownership.pipeline_id, attempt, exc)
                time.sleep(PERIOD)
        return state

    # ----------------------------------------------------------------- any thread

    def request_stop(self, reason: StopReason, detail: str = "") -> None:
        """Ends the pipeline: the loop terminates the engine and writes the last state."""
        if self._stop_reason is None:
            self._stop_reason, self._stop_detail = reason, detail
        self._wake.set()

    def handle(self, command: Command) -> dict[str, Any]:
        """A control command's reply ``response`` (runs on the control listener's thread)."""
        if command is Command.STATUS:
            return {"status": "success", "report": self.report()}
        if command is Command.TERMINATE:
            self.request_stop(StopReason.REQUESTED)
            self._released.wait(TERMINATE_TIMEOUT + RELEASE_ATTEMPTS * PERIOD)
            return dict(SUCCESS)
        with self._apply_lock:
            self._reconcile(DesiredState.MUTED if command is Command.MUTE else DesiredState.RUNNING)
        self._wake.set()  # the loop writes the new state at once
        return dict(SUCCESS)

    def reconcile_with_record(self) -> None:
        """Reads the desired state and applies it (after the control channel (re)subscribes).

        A missing record (Redis lost it) is left to the next tick, which restores it with the
        desired state last read: reading "nothing" as RUNNING would resume a muted pipeline.
        """
        with self._apply_lock:
            desired = self._ownership.desired_state()
            if desired is not None:
                self._reconcile(desired)
        self._wake.set()

    def report(self) -> dict[str, Any]:
        report = self._pipeline.status_report()
        report.update(
            pipeline_id=self._ownership.pipeline_id,
            state=self._state.value,
            epoch=self._ownership.epoch,
            owner=self._ownership.owner,
            reported_at=time.time(),  # lets the manager answer STATUS from the stored copy while fresh
        )
        for name, section in self._options.report_sections.items():
            report[name] = section()
        return report

    # ----------------------------------------------------------------- helpers

    def _reconcile(self, desired: DesiredState) -> None:
        if desired is DesiredState.TERMINATED:
            self.request_stop(StopReason.REQUESTED)
        elif desired is DesiredState.MUTED:
            self._pipeline.mute()
        else:
            self._pipeline.resume()

    def _current_state(self) -> PipelineState:
        engine = self._pipeline.state
        if engine is StreamState.MUTED:
            return PipelineState.MUTED
        if engine is StreamState.RUNNING:
            return PipelineState.RUNNING
        return self._state

    def _report_json(self) -> str:
        return json.dumps(self.report(), default=str, separators=(",", ":"))

    def _source_errors(self) -> str:
        errors = [
            f"source {u['payload'].get('source_id')}: {u['payload'].get('error_message')}"
            for u in self._pipeline.watchdog.status_updates()
            if u.get("event_type") == events.SOURCE_ERROR
        ]
        return "; ".join(errors[-3:]) or "every video source failed"

    def _on_redis_error(self, exc: redis.RedisError) -> None:
        if not self._redis_down:
            log.warning("pipeline %s: Redis unavailable, the pipeline keeps running: %s",
                        self._ownership.pipeline_id, exc)
        self._redis_down = True

    def _on_redis_ok(self) -> None:
        if self._redis_down:
            log.info("pipeline %s: Redis reachable again", self._ownership.pipeline_id)
            self._consumed_at = time.time()  # consumers get a whole consumption_timeout after an outage
        self._redis_down = False
