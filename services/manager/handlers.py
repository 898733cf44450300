"""One handler per request type: each turns a parsed request into the reply's ``response``.

Handlers raise ``StreamManagerError``s for failures the server reports with the request's
``pipeline_id``; once ``init`` has made an id, it returns its failures itself so they carry it.
"""

import asyncio
import hmac
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from services.core.control import Command
from services.core.errors import (
    AuthorisationError,
    InvalidPayloadError,
    OperationError,
    StreamManagerError,
    failure_response,
)
from services.core.framing import encode_json
from services.core.keys import reply_list
from services.core.messages import (
    ConsumeResultRequest,
    DeleteWorkflowRequest,
    DrainWorkerRequest,
    GetWorkflowRequest,
    InitRequest,
    ListPipelinesRequest,
    ListWorkersRequest,
    ListWorkflowsRequest,
    MuteRequest,
    PutWorkflowRequest,
    Request,
    ResumeRequest,
    StatusRequest,
    TerminateRequest,
    UndrainWorkerRequest,
    WebRTCRequest,
)
from services.core.networks import DestinationRefusedError, NetworkPolicy
from services.core.plan import PipelineSpec, compile_init, compile_webrtc_init
from services.core.records import DesiredState, PipelineRecord, PipelineState
from services.core.references import ReferencePolicy, check_references
from services.core.tasks import queue_for
from services.infra.destinations import resolve_checked_async
from services.infra.pipeline_reads import status_response, stored_status
from services.manager.admission import AdmissionPolicy, admit, read_registrations
from services.manager.control import Controller, NoListenerError, wait_reply
from services.manager.cursor import ResultEntry, ResultsCursor
from services.manager.dispatch import Dispatcher
from services.manager.drain import drain_worker, list_workers, undrain_worker
from services.manager.settings import ManagerSettings
from services.manager.store import PipelineStore
from services.manager.workflow_store import WorkflowEntry
from services.manager.workflows import WorkflowRegistry

logger = logging.getLogger(__name__)

SUCCESS: dict[str, Any] = {"status": "success"}


@dataclass(frozen=True, slots=True)
class Reply:
    response: dict[str, Any]
    pipeline_id: str | None
    encoded: bytes | None = None  # ``response``'s JSON when it is made once for many replies (a LIST)


@dataclass(frozen=True, slots=True)
class Services:
    """What the handlers talk to, built once by the service."""

    redis: Redis
    blocking: Redis  # the reply waits' own connections (a BLPOP holds one for seconds)
    store: PipelineStore
    cursor: ResultsCursor
    controller: Controller
    dispatcher: Dispatcher
    workflows: WorkflowRegistry


def reference_policy(settings: ManagerSettings) -> ReferencePolicy:
    """The settings' rules for video references; file roots resolved once, against the working directory."""
    return ReferencePolicy(
        allowed_schemes=frozenset(settings.allowed_schemes),
        file_roots=tuple(os.path.realpath(root) for root in settings.file_roots),
        allowed_cameras=frozenset(settings.allowed_cameras),
        max_sources=settings.max_sources,
        resolve=os.path.realpath,
    )


class Handlers:
    def __init__(self, settings: ManagerSettings, services: Services) -> None:
        self._settings = settings
        self._s = services
        self._references = reference_policy(settings)
        self._udp_sinks = NetworkPolicy.parse(settings.udp_sink_allowed_networks, "MANAGER_UDP_SINK_ALLOWED_NETWORKS")
        self._routes: dict[type[Any], Callable[[Any, str], Awaitable[Reply]]] = {
            ListPipelinesRequest: self.list_pipelines,
            InitRequest: self.init,
            WebRTCRequest: self.webrtc,
            MuteRequest: self.mute,
            ResumeRequest: self.resume,
            StatusRequest: self.status,
            TerminateRequest: self.terminate,
            ConsumeResultRequest: self.consume_result,
            PutWorkflowRequest: self.put_workflow,
            GetWorkflowRequest: self.get_workflow,
            ListWorkflowsRequest: self.list_workflows,
            DeleteWorkflowRequest: self.delete_workflow,
            DrainWorkerRequest: self.drain_worker,
            UndrainWorkerRequest: self.undrain_worker,
            ListWorkersRequest: self.list_workers,
        }
        self._listed: tuple[tuple[str, ...] | None, Reply] = (None, Reply({}, None))  # ids, their LIST reply

    async def handle(self, request: Request, request_id: str) -> Reply:
        self._authorise(request)
        return await self._routes[type(request)](request, request_id)

    def answer_at_once(self, request: Request) -> Reply | None:
        """The reply to ``request`` when it can be made from memory, without waiting for anything (a LIST
        while the pipelines' index has not changed since it was read); None when :meth:`handle` must
        answer it. Raises as :meth:`handle` does (a wrong token)."""
        self._authorise(request)
        if type(request) is ListPipelinesRequest:
            ids = self._s.store.known_live_ids()
            if ids is not None:
                return self._listing(ids)
        return None

    def _listing(self, ids: tuple[str, ...]) -> Reply:
        """The LIST reply for ``ids``, its JSON encoded once while the ids stay the same (thousands of them
        at fleet scale: encoding them was most of a LIST's cost)."""
        if ids != self._listed[0]:
            response = {"status": "success", "pipelines": list(ids)}
            self._listed = (ids, Reply(response, None, encode_json(response)))
        return self._listed[1]

    def _authorise(self, request: Request) -> None:
        expected = self._settings.auth_token
        if expected is None:
            return
        given = (request.token or "").encode()
        if not hmac.compare_digest(given, expected.get_secret_value().encode()):
            raise AuthorisationError("missing or wrong token", "The request carries no valid token.")

    async def list_pipelines(self, request: ListPipelinesRequest, request_id: str) -> Reply:
        return self._listing(await self._s.store.live_ids())

    async def webrtc(self, request: WebRTCRequest, request_id: str) -> Reply:
        """An INIT whose video is the peer's track; the reply carries the task's SDP answer."""
        spec = compile_webrtc_init(request.payload, await self._s.workflows.resolver_for(request.payload))
        await self._check_udp_sink(spec)
        return await self._launch(spec, request_id)

    async def init(self, request: InitRequest, request_id: str) -> Reply:
        spec = compile_init(request.payload, await self._s.workflows.resolver_for(request.payload))
        check_references(spec.video_references, self._references)
        await self._check_udp_sink(spec)
        return await self._launch(spec, request_id)

    async def _check_udp_sink(self, spec: PipelineSpec) -> None:
        """Refuses, before anything is written, a udp_sink whose host resolves to an address outside
        MANAGER_UDP_SINK_ALLOWED_NETWORKS (the worker checks again with its own resolver and settings)."""
        if spec.udp_sink is None:
            return
        try:
            await resolve_checked_async(spec.udp_sink.host, spec.udp_sink.port, self._udp_sinks)
        except DestinationRefusedError as exc:
            raise InvalidPayloadError(
                f"field 'sink_configuration.host': {exc}",
                "The UDP sink's host (sink_configuration.host) is not an allowed destination.",
            ) from None

    async def _launch(self, spec: PipelineSpec, request_id: str) -> Reply:
        """Records and dispatches the pipeline; its task's reply, or a failure that leaves nothing behind.

        The task's success reply is passed on as it came: ``{"status": "success"}`` for an INIT, with the
        SDP answer (``sdp``, ``type``) for a WEBRTC request.

        All or nothing even when this manager dies midway: the record is written unconfirmed, with a
        deadline (``confirm_by``: init_timeout + heartbeat_grace from now), and confirmed in one script
        only as the success reply is handed back. A manager killed before that leaves a record the reaper
        (of any manager) terminates and removes once the deadline passes (``services.manager.reaper``);
        a confirmation that finds the reaper already abandoning it turns the reply into a failure.
        """
        self._check_sizes(spec)
        device = self._device_of(spec)
        await self._require_device_room(device)
        await self._require_worker(queue_for(device))
        now = time.time()
        record = PipelineRecord(str(uuid.uuid4()), device=device, created_at=now, updated_at=now,
                                dispatched_at=now, movable=spec.movable,
                                confirm_by=now + self._settings.init_timeout + self._settings.heartbeat_grace)
        payload = {**spec.task_payload(), "device": device}
        await self._s.store.create(record, payload)
        started = False
        try:
            response = await self._start(record, payload, request_id)
            started = response.get("status") == "success" and await self._confirm(record)
        except Exception as exc:
            logger.warning("init of pipeline %s failed: %s", record.pipeline_id, type(exc).__name__)
            response = failure_response(exc, spec.secrets())
        finally:
            if not started:
                await asyncio.shield(self._abandon(record, request_id))
        return Reply(response, record.pipeline_id)

    def _check_sizes(self, spec: PipelineSpec) -> None:
        """Refuses a buffer larger than this manager allows (the spec itself holds the workers' ceilings)."""
        limits = (
            ("decoding_buffer_size", "decoding_buffer_size", self._settings.max_decoding_buffer_size),
            ("predictions_queue_size", "predictions_queue_size", self._settings.max_predictions_queue_size),
            ("results_buffer_size", "sink_configuration.results_buffer_size", self._settings.max_results_buffer_size),
        )
        for name, path, limit in limits:
            value = getattr(spec, name)
            if value > limit:
                raise InvalidPayloadError(f"field '{path}': {value} is above the maximum of {limit} "
                                          f"(MANAGER_MAX_{name.upper()})")

    def _device_of(self, spec: PipelineSpec) -> str:
        device = spec.device or self._settings.default_device
        if device not in self._settings.devices:
            raise InvalidPayloadError(
                f"field 'device': unknown device {device!r}; configured devices: "
                + ", ".join(self._settings.devices)
            )
        return device

    async def _require_device_room(self, device: str) -> None:
        """Refuses, before anything is written, an INIT beyond MANAGER_MAX_PIPELINES_PER_DEVICE live
        pipelines on ``device`` (advisory like admission: two INITs at once may both pass)."""
        limit = self._settings.max_pipelines_per_device
        if not limit:
            return
        live = sum(1 for live in await self._s.store.live_records()
                   if live.record.device == device and not live.record.state.is_final)
        if live >= limit:
            raise OperationError(f"limit: {limit} pipelines on device {device} (MANAGER_MAX_PIPELINES_PER_DEVICE)",
                                 "The device already runs as many pipelines as allowed.")

    async def _require_worker(self, queue: str) -> None:
        """Refuses, before anything is written, an INIT that no live worker of ``queue`` has room for."""
        policy = AdmissionPolicy(pipeline_ram_estimate_mb=self._settings.pipeline_ram_estimate_mb,
                                 min_free_ram_mb=self._settings.min_free_ram_mb)
        admit(queue, await read_registrations(self._s.redis), policy)

    async def _start(self, record: PipelineRecord, payload: dict[str, Any], request_id: str) -> dict[str, Any]:
        """The task's init reply, or a failure when none comes within ``init_timeout`` of the record's
        creation (``heartbeat_grace`` before the deadline at which the reaper would abandon it)."""
        await self._s.dispatcher.dispatch(record.pipeline_id, record.epoch, payload,
                                          reply_list(request_id), record.device)
        remaining = record.created_at + self._settings.init_timeout - time.time()
        response = await wait_reply(self._s.blocking, request_id, max(0.001, remaining))
        if response is None:
            raise OperationError(
                f"no worker started pipeline {record.pipeline_id} within {self._settings.init_timeout:g} s",
                "The pipeline did not start in time.",
            )
        return response

    async def _confirm(self, record: PipelineRecord) -> bool:
        """Confirms the record as its success reply goes back; raises when the reaper is abandoning it."""
        if await self._s.store.confirm(record.pipeline_id):
            return True
        raise OperationError(
            f"pipeline {record.pipeline_id} started after its deadline and was abandoned (it was not "
            f"confirmed within MANAGER_INIT_TIMEOUT + MANAGER_HEARTBEAT_GRACE)",
            "The pipeline did not start in time.",
        )

    async def _abandon(self, record: PipelineRecord, request_id: str) -> None:
        """A failed init leaves nothing behind; a task that claims it late is told to stop."""
        try:
            await self._s.store.request_state(record.pipeline_id, DesiredState.TERMINATED)
            await self._s.controller.send(record.pipeline_id, record.epoch, Command.TERMINATE,
                                          f"{request_id}:abandon")
        except (NoListenerError, StreamManagerError):
            pass
        finally:
            await self._s.store.remove(record.pipeline_id)

    async def mute(self, request: MuteRequest, request_id: str) -> Reply:
        return await self._command(request.pipeline_id, DesiredState.MUTED, Command.MUTE, request_id)

    async def resume(self, request: ResumeRequest, request_id: str) -> Reply:
        return await self._command(request.pipeline_id, DesiredState.RUNNING, Command.RESUME, request_id)

    async def _command(self, pipeline_id: str, desired: DesiredState, command: Command,
                       request_id: str) -> Reply:
        record = await self._s.store.request_state(pipeline_id, desired)
        if record.state.is_final or record.desired_state is DesiredState.TERMINATED:
            raise OperationError(f"pipeline {pipeline_id} has ended or is terminating (state {record.state})",
                                 "The pipeline has ended.")
        try:
            response = await self._s.controller.send(pipeline_id, record.epoch, command, request_id)
        except NoListenerError:
            raise OperationError(
                f"pipeline {pipeline_id} has no running task (state {record.state}); "
                "the request is recorded and applies when it runs",
                "The pipeline has no running task; the request applies when it runs.",
            ) from None
        return Reply(response, pipeline_id)

    async def terminate(self, request: TerminateRequest, request_id: str) -> Reply:
        pipeline_id = request.pipeline_id
        record = await self._s.store.request_state(pipeline_id, DesiredState.TERMINATED)
        try:
            await self._s.controller.send(pipeline_id, record.epoch, Command.TERMINATE, request_id)
        except NoListenerError:
            logger.info("terminate: pipeline %s has no running task (state %s)", pipeline_id, record.state)
        except StreamManagerError as exc:
            logger.warning("terminate: pipeline %s: %s", pipeline_id, exc)
        await self._s.store.retire(pipeline_id, PipelineState.TERMINATED)
        return Reply(SUCCESS, pipeline_id)

    async def status(self, request: StatusRequest, request_id: str) -> Reply:
        """The task's report, from the copy it stores every second while that is fresh enough
        (``MANAGER_STATUS_MAX_AGE``): record, report and dropped count in one Redis round trip; else
        asked of the running task; else the last stored report (a pipeline that is over)."""
        pipeline_id = request.pipeline_id
        snapshot = await self._s.store.snapshot(pipeline_id)
        stored = stored_status(snapshot, self._settings.status_max_age)
        if stored is not None:
            return Reply(stored, pipeline_id)
        response = await self._ask_status(snapshot.record, request_id)
        if response is not None and response.get("status") != "success":
            return Reply(response, pipeline_id)
        asked = response.get("report") if response is not None else None
        snapshot = await self._s.store.snapshot(pipeline_id)  # the record as of after the answer
        return Reply(status_response(snapshot, asked if isinstance(asked, dict) else snapshot.report), pipeline_id)

    async def _ask_status(self, record: PipelineRecord, request_id: str) -> dict[str, Any] | None:
        """The running task's status reply; None when no task answers (the stored report serves)."""
        try:
            return await self._s.controller.send(record.pipeline_id, record.epoch, Command.STATUS, request_id)
        except NoListenerError:
            return None
        except OperationError as exc:
            logger.warning("status: %s; answering the last stored report", exc)
            return None

    async def consume_result(self, request: ConsumeResultRequest, request_id: str) -> Reply:
        await self._s.store.get(request.pipeline_id)
        batch = await self._s.cursor.consume(request.pipeline_id, request.max_entries, time.time())
        entries = [_entry_response(entry, request.excluded_fields) for entry in batch.entries]
        response: dict[str, Any] = {"status": "success",
                                    **(entries[0] if entries else {"outputs": [], "frames_metadata": []})}
        if request.max_entries > 1:
            response["entries"] = entries
        response["dropped"] = batch.dropped
        response["remaining"] = batch.remaining
        return Reply(response, request.pipeline_id)

    async def put_workflow(self, request: PutWorkflowRequest, request_id: str) -> Reply:
        stored, created = await self._s.workflows.put(request.workspace_name, request.workflow_id,
                                                      request.specification)
        return Reply({"status": "success", **_entry(stored.entry), "created": created}, None)

    async def get_workflow(self, request: GetWorkflowRequest, request_id: str) -> Reply:
        stored = await self._s.workflows.get(request.workspace_name, request.workflow_id)
        return Reply({"status": "success", "workspace_name": stored.workspace_name, "workflow_id": stored.workflow_id,
                      "specification": stored.specification, "updated_at": stored.updated_at}, None)

    async def list_workflows(self, request: ListWorkflowsRequest, request_id: str) -> Reply:
        entries = await self._s.workflows.entries(request.workspace_name)
        return Reply({"status": "success", "workflows": [_entry(entry) for entry in entries]}, None)

    async def delete_workflow(self, request: DeleteWorkflowRequest, request_id: str) -> Reply:
        await self._s.workflows.delete(request.workspace_name, request.workflow_id)
        return Reply(SUCCESS, None)


    async def drain_worker(self, request: DrainWorkerRequest, request_id: str) -> Reply:
        """Our extension (rolling upgrades): see ``services.manager.drain``."""
        return Reply({"status": "success", "worker": await drain_worker(self._s.redis, self._s.store,
                                                                        request.hostname)}, None)

    async def undrain_worker(self, request: UndrainWorkerRequest, request_id: str) -> Reply:
        return Reply({"status": "success", "worker": await undrain_worker(self._s.redis, self._s.store,
                                                                          request.hostname)}, None)

    async def list_workers(self, request: ListWorkersRequest, request_id: str) -> Reply:
        return Reply({"status": "success", "workers": await list_workers(self._s.redis, self._s.store)}, None)


def _entry(entry: WorkflowEntry) -> dict[str, Any]:
    return {"workspace_name": entry.workspace_name, "workflow_id": entry.workflow_id, "updated_at": entry.updated_at}




def _entry_response(entry: ResultEntry, excluded_fields: list[str]) -> dict[str, Any]:
    excluded = set(excluded_fields)
    outputs = [
        {k: v for k, v in output.items() if k not in excluded} if output is not None else None
        for output in entry.outputs
    ]
    return {"outputs": outputs, "frames_metadata": entry.frames_metadata}
