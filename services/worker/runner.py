"""Runs one pipeline for one dispatch ``(pipeline_id, epoch)``; plain code, no Celery.

Theory of operation
-------------------
1. **Claim.** A Lua script checks that the record exists with our epoch, is not over, and nobody
   was asked to terminate it, then makes us the owner (state INITIALISING). Anything else means
   this task is a stale duplicate: it writes nothing at all and returns None.
2. **Build** the engine from the spec. A failure (unknown model, missing file, bad options...)
   records FAILED with a redacted ``last_error`` and pushes a failure reply onto ``reply_to``.
3. **Start**: the control listener subscribes first (so a command sent right after the init reply
   is heard), then the engine starts, then the success reply goes onto ``reply_to``. A WebRTC
   pipeline negotiates with its peer between the build and the start (the model and workflow are
   ready by then, so a request that cannot run is refused before the peer connects); its success
   reply carries the SDP answer, and the peer connection is closed when the task ends, however it ends.
4. **Supervise** (``supervisor``): a fenced write every second (heartbeat, report, state), desired
   state reconciliation, consumption timeout, until the engine ends, a stop is requested, the
   worker shuts down, or another epoch takes the record over (then we stop writing at once).
   The heartbeat is kept fresh from the claim on (``Ownership.beating`` while building and
   starting), and every results write is fenced too (``RedisStreamSink`` with a ``Fence``).
5. **Redis outages** never stop the pipeline: writes fail and are retried by the next tick, the
   control listener resubscribes and reconciles, and a record that Redis lost with its data (a
   restart without persistence) is restored by this task (``ownership``) and the pipeline goes on.
"""

import dataclasses
import logging
import os
import threading
from typing import Any

import redis

from services.core import keys
from services.core.errors import InvalidPayloadError, OperationError, StreamManagerError, failure_response
from services.core.plan import PipelineSpec
from services.core.records import PipelineState
from services.core.redaction import redact_text
from services.core.results import decode_entry
from services.core.webrtc import advertise
from services.worker import assembly
from services.worker.control_listener import ControlListener
from services.worker.engine import events
from services.worker.engine.events import StatusUpdate
from services.worker.engine.pipeline import InferencePipeline
from services.worker.engine.sinks.redis_stream import Fence
from services.worker.ownership import TERMINATION_REQUESTED, Ownership
from services.worker.replies import SUCCESS, push_reply
from services.worker.settings import WorkerSettings
from services.worker.supervisor import Options, Supervisor

log = logging.getLogger(__name__)

_TERMINATED_BEFORE_START = (TERMINATION_REQUESTED, f"pipeline is already {PipelineState.TERMINATED.value}")
SUBSCRIBE_TIMEOUT = 2.0  # how long the init reply waits for the control listener (seconds)


def run(
    pipeline_id: str,
    epoch: int,
    spec: PipelineSpec,
    reply_to: str,
    redis_client: redis.Redis,
    settings: WorkerSettings,
    hostname: str,
    shutdown: threading.Event | None = None,
) -> PipelineState | None:
    """Runs the pipeline to its end; its last state, or None when this task did not own it."""
    ownership = Ownership(redis_client, pipeline_id, epoch, owner_name(hostname), settings.heartbeat_ttl)
    if ownership.claim() is None:
        if ownership.refusal in _TERMINATED_BEFORE_START:  # the INIT waiting on reply_to answers at once
            _reply(redis_client, reply_to, failure_response(OperationError(
                f"pipeline {pipeline_id} was terminated before it started",
                "The pipeline was terminated before it started.")))
        return None
    secrets = spec.secrets()
    wake = threading.Event()
    fenced = threading.Event()  # set by the results sink when a write is refused (epoch superseded)

    def on_fenced() -> None:
        fenced.set()
        wake.set()

    fence = Fence(epoch, ownership.owner, on_fenced, ownership.restore)
    resume_after = _resume_points(redis_client, pipeline_id) if epoch > 1 else {}
    peer = assembly.webrtc_session(spec, settings) if spec.webrtc is not None else None
    try:
        with ownership.beating():
            try:
                pipeline = assembly.build_pipeline(spec, pipeline_id, redis_client, settings, _waker(wake), fence,
                                                   resume_after, peer)
            except StreamManagerError as exc:
                return _fail(ownership, redis_client, reply_to, exc, secrets)
            answer: dict[str, Any] = {}
            if peer is not None and spec.webrtc is not None:
                try:  # after the build: a model or workflow that cannot run is refused before the peer connects
                    answer = peer.negotiate(spec.webrtc.offer_sdp, spec.webrtc.offer_type,
                                            settings.webrtc_negotiation_timeout)
                    if settings.webrtc_advertised_address:
                        answer["sdp"] = advertise(answer["sdp"], settings.webrtc_advertised_address)
                except Exception as exc:
                    pipeline.terminate()
                    return _fail(ownership, redis_client, reply_to, assembly.as_stream_manager_error(exc, secrets),
                                 secrets)
        options = Options(consumption_timeout=spec.consumption_timeout, secrets=secrets)
        if peer is not None:  # the peer's end is the pipeline's; its statistics go into STATUS
            options = dataclasses.replace(options, end_reason=lambda: peer.end_reason,
                                          report_sections={"webrtc": peer.stats})
        supervisor = Supervisor(pipeline, ownership, wake, shutdown or threading.Event(), options, fenced)
        return _serve(pipeline, supervisor, ownership, redis_client, reply_to, secrets, answer)
    finally:
        if peer is not None:
            peer.close()


def reject(
    pipeline_id: str,
    epoch: int,
    error: InvalidPayloadError,
    reply_to: str,
    redis_client: redis.Redis,
    hostname: str,
) -> PipelineState | None:
    """A dispatch whose spec does not validate: claimed, then FAILED with a failure reply."""
    ownership = Ownership(redis_client, pipeline_id, epoch, owner_name(hostname))
    if ownership.claim() is None:
        return None
    return _fail(ownership, redis_client, reply_to, error, ())


def _resume_points(client: redis.Redis, pipeline_id: str, scan: int = 256) -> dict[int, int]:
    """Per source, the last frame id a previous epoch wrote to the results stream.

    A restarted pipeline's files resume after it instead of being read again from their start
    (live sources ignore it). Frames the lost task processed but had not written yet are processed
    again; nothing written is repeated. Unreadable: an empty answer, the files start over.
    """
    points: dict[int, int] = {}
    try:
        entries = client.xrevrange(keys.results_stream(pipeline_id), count=scan)
    except redis.RedisError as exc:
        log.warning("pipeline %s: cannot read where to resume: %s", pipeline_id, exc)
        return points
    for _, fields in entries:  # type: ignore[union-attr]
        _, metadata = decode_entry(fields)  # type: ignore[arg-type]
        for item in metadata:
            if item is not None and int(item["source_id"]) not in points:
                points[int(item["source_id"])] = int(item["frame_id"])
    return points


def owner_name(hostname: str) -> str:
    """The owner written into the record: the worker's hostname and this process's pid."""
    return f"{hostname}:{os.getpid()}"


def _serve(
    pipeline: InferencePipeline,
    supervisor: Supervisor,
    ownership: Ownership,
    client: redis.Redis,
    reply_to: str,
    secrets: tuple[str, ...],
    answer: dict[str, Any],
) -> PipelineState | None:
    """Starts the pipeline, replies (with a WebRTC pipeline's SDP ``answer``) and supervises it to its end."""
    listener = ControlListener(
        client, ownership.pipeline_id, ownership.epoch, supervisor.handle, supervisor.reconcile_with_record
    )
    listener.start()
    try:
        if not listener.subscribed.wait(SUBSCRIBE_TIMEOUT):
            log.warning("pipeline %s: control channel not subscribed yet; starting anyway",
                        ownership.pipeline_id)
        try:
            with ownership.beating():  # opening the sources can take seconds
                pipeline.start()
        except Exception as exc:
            pipeline.terminate()
            return _fail(ownership, client, reply_to, exc, secrets)
        _reply(client, reply_to, {**SUCCESS, **answer})
        return supervisor.supervise()
    finally:
        listener.stop()


def _fail(
    ownership: Ownership,
    client: redis.Redis,
    reply_to: str,
    exc: BaseException,
    secrets: tuple[str, ...],
) -> PipelineState | None:
    detail = str(exc) if isinstance(exc, StreamManagerError) else f"{type(exc).__name__}: {exc}"
    error = redact_text(detail, secrets)
    log.warning("pipeline %s epoch %d failed to start: %s", ownership.pipeline_id, ownership.epoch, error)
    try:
        owned = ownership.release(PipelineState.FAILED, error)
    except redis.RedisError as redis_error:
        log.error("pipeline %s: could not record the failure: %s", ownership.pipeline_id, redis_error)
        owned = True
    if owned:
        _reply(client, reply_to, failure_response(exc, secrets))
    return PipelineState.FAILED if owned else None


def _reply(client: redis.Redis, reply_to: str, response: dict[str, Any]) -> None:
    try:
        push_reply(client, reply_to, reply_to, response)
    except redis.RedisError as exc:  # the manager times out and reads the record instead
        log.error("could not push the init reply onto %s: %s", reply_to, exc)


def _waker(wake: threading.Event) -> "events.StatusHandler":
    """A status handler that wakes the supervisor as soon as the engine has finished."""

    def on_update(update: StatusUpdate) -> None:
        if update.event_type == events.INFERENCE_THREAD_FINISHED:
            wake.set()

    return on_update
